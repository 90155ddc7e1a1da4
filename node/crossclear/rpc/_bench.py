"""`crossclear bench api`: GetMargin latency and throughput against one node's gRPC server.

The server holds a clearing state of `--accounts` synthetic accounts (margin computed by the
kernel) and runs in this process on 127.0.0.1; the load comes from a separate client process
so client and server do not share a GIL:

- latency: an open-loop schedule of `--rate` GetMargin calls per second for `--seconds`
  (each call starts on time whether or not earlier ones finished), p50 and p99;
- throughput: a closed loop of `--concurrency` callers for `--seconds`, calls per second;
- claim credit: on a one-chain devnet with 4 node processes, `--claims` deposits are proven
  first (snarkjs, not timed), then each claim is submitted to one node and timed until all
  four nodes report the collateral credited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import sys
import time
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import InstrumentKind, parse_inputs
from crossclear.node.clearing import ClearingState, PositionRecord
from crossclear.v1 import node_pb2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("api", help="GetMargin latency at a fixed rate and sustained throughput")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts loaded in the node (default 100,000)")
    parser.add_argument("--rate", type=float, default=500.0, help="GetMargin calls per second for the latency run (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="callers in the throughput run (default 32)")
    parser.add_argument("--claims", type=int, default=8, help="claims timed from submission to credit on all 4 nodes (default 8; 0 skips)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def synthetic_state(accounts: int, seed: int = 3) -> tuple[ClearingState, list[str]]:
    """A clearing state of `accounts` accounts, each with collateral and two positions."""
    risk = {
        "underlyings": {"ETH": {"price": 3000, "vol": 0.6, "scan_range": 0.15}, "BTC": {"price": 60000, "vol": 0.5, "scan_range": 0.12}},
        "assets": {"USDC": {"price": 1, "base_haircut": 0, "depth": 1e9, "vol_daily": 0.0005}, "WETH": {"price": 3000, "base_haircut": 0.02, "depth": 5e8, "vol_daily": 0.04}},
    }
    inputs = parse_inputs(risk, {"accounts": []})
    state = ClearingState(inputs.params, inputs.market, {}, {"USDC": 6, "WETH": 18})
    rng = np.random.default_rng(seed)
    names = [f"0x{index:040x}" for index in range(1, accounts + 1)]
    expiry = time.time() + 30 * 86400
    for index, account in enumerate(names):
        state.set_collateral(account, 31001 + index % 3, "USDC", int(rng.uniform(1_000, 50_000) * 10**6))
        state.set_position(account, "perp", PositionRecord(31001 + (index + 1) % 3, "ETH", InstrumentKind.PERP, float(rng.normal(0, 3)), 3000.0))
        state.set_position(account, "option", PositionRecord(31002, "BTC", InstrumentKind.PUT, -0.1, 1500.0, strike=55000.0, expiry_timestamp=expiry))
    return state, names


def _client(target: str, accounts: list[str], rate: float, seconds: float, concurrency: int, results: Any) -> None:
    import grpc

    from crossclear.v1 import margin_pb2, margin_pb2_grpc

    async def main() -> dict[str, Any]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = margin_pb2_grpc.MarginServiceStub(channel)
            await stub.GetMargin(margin_pb2.GetMarginRequest(account=accounts[0]), timeout=30)
            rng = np.random.default_rng(11)
            latencies: list[float] = []
            errors = 0

            async def one(account: str) -> None:
                nonlocal errors
                start = time.perf_counter()
                try:
                    await stub.GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                except grpc.aio.AioRpcError:
                    errors += 1
                    return
                latencies.append(time.perf_counter() - start)

            tasks = []
            begin = time.perf_counter()
            for k in range(int(rate * seconds)):
                delay = begin + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(accounts[int(rng.integers(len(accounts)))])))
            await asyncio.gather(*tasks)
            achieved_rate = len(tasks) / (time.perf_counter() - begin)

            completed = 0
            stop_at = time.perf_counter() + seconds

            async def caller(offset: int) -> None:
                nonlocal completed
                k = offset
                while time.perf_counter() < stop_at:
                    await stub.GetMargin(margin_pb2.GetMarginRequest(account=accounts[k % len(accounts)]), timeout=5)
                    completed += 1
                    k += concurrency

            throughput_start = time.perf_counter()
            await asyncio.gather(*(caller(i) for i in range(concurrency)))
            throughput = completed / (time.perf_counter() - throughput_start)
            ordered = sorted(latencies)
            return {
                "p50": statistics.median(ordered) * 1000,
                "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
                "calls": len(ordered),
                "errors": errors,
                "achieved_rate": achieved_rate,
                "rps": throughput,
            }

    results.put(asyncio.run(main()))


def _claim_credit_latencies(count: int) -> list[float]:
    """Milliseconds from SubmitClaim at node 0 to the collateral shown by all four nodes."""
    import secrets
    import tempfile
    from pathlib import Path

    from eth_account import Account

    from crossclear.devnet.accounts import funded_accounts, node_keys
    from crossclear.devnet.deploy import connect, transact
    from crossclear.devnet.nodes import DEVNET_CLEARINGHOUSE_DOMAIN, deployed_chains, start_nodes
    from crossclear.devnet.runner import start_devnet
    from crossclear.rpc.client import get_margin, submit_claim
    from crossclear.v1 import claim_pb2
    from crossclear.zk import IncrementalMerkleTree, secret_hash
    from crossclear.zk.groth16 import proof_to_json
    from crossclear.zk.prover import ClaimStatement, Deposit, prove_claim

    state_dir = Path(tempfile.mkdtemp(prefix="crossclear-bench-"))
    devnet = start_devnet(1, state_dir, progress=lambda line: None)
    nodes = None
    try:
        nodes = start_nodes(deployed_chains(devnet.chains), node_keys(4), funded_accounts()[9], state_dir, progress=lambda line: None)
        targets = [node.details["rpc"] for node in nodes.nodes]
        plan, anvil, deployment = devnet.chains[0]
        web3 = connect(anvil.rpc_url)
        usdc = next(token for token in deployment.tokens if token.symbol == "USDC")
        depositors = [Account.create() for _ in range(count)]
        deposits = []
        for index, depositor in enumerate(depositors):
            web3.provider.make_request("anvil_setBalance", [depositor.address, hex(10**18)])  # type: ignore[arg-type]
            web3.provider.make_request("anvil_impersonateAccount", [depositor.address])  # type: ignore[arg-type]
            transact(web3, "MockERC20", usdc.address, "mint", depositor.address, 1_000 * 10**6)
            transact(web3, "MockERC20", usdc.address, "approve", deployment.vault, 1_000 * 10**6, sender=depositor.address)
            secret = secrets.randbelow(2**200)
            transact(web3, "CollateralVault", deployment.vault, "deposit", usdc.address, 1_000 * 10**6, secret_hash(secret), sender=depositor.address)
            deposits.append(Deposit(secret, int(depositor.address, 16), int(usdc.address, 16), 1_000 * 10**6, index, plan.chain_id, int(deployment.vault, 16)))
        tree = IncrementalMerkleTree()
        for deposit in deposits:
            tree.insert(deposit.leaf)
        proofs = [prove_claim(deposit, tree.path(deposit.leaf_index), ClaimStatement(deposit.amount, DEVNET_CLEARINGHOUSE_DOMAIN)) for deposit in deposits]

        async def measure() -> list[float]:
            latencies = []
            for depositor, (proof, claim) in zip(depositors, proofs):
                account = depositor.address.lower()
                while True:  # wait (untimed) until the root is final and certified
                    start = time.perf_counter()
                    reply = await submit_claim(targets[0], proof_to_json(proof), claim.to_json())
                    if reply.status != claim_pb2.CLAIM_STATUS_UNCERTIFIED_ROOT:
                        break
                    await asyncio.sleep(0.2)
                if reply.status != claim_pb2.CLAIM_STATUS_ACCEPTED:
                    raise RuntimeError(f"claim refused: {reply.detail}")
                pending = set(targets)
                while pending:
                    for target in list(pending):
                        try:
                            margin = await get_margin(target, account)
                        except UsageError:
                            continue
                        if margin.collateral:
                            pending.discard(target)
                    if pending:
                        await asyncio.sleep(0.005)
                latencies.append((time.perf_counter() - start) * 1000)
            return latencies

        return asyncio.run(measure())
    finally:
        if nodes is not None:
            nodes.stop()
        devnet.stop()


def run(args: argparse.Namespace) -> int:
    if args.accounts < 1 or args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1 or args.claims < 0:
        raise UsageError("--accounts, --rate, --seconds and --concurrency must be positive, --claims not negative")
    from crossclear.rpc._server import ApiServer

    build_start = time.perf_counter()
    state, accounts = synthetic_state(args.accounts)
    snapshot = state.publish()  # the first full kernel pass, outside the timed runs
    load_seconds = time.perf_counter() - build_start

    async def main() -> dict[str, Any]:
        server = ApiServer(lambda: snapshot, lambda: node_pb2.NodeStatus())
        port = await server.start(0)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        client = context.Process(target=_client, args=(f"127.0.0.1:{port}", accounts, args.rate, args.seconds, args.concurrency, results))
        client.start()
        try:
            while True:
                try:
                    return dict(results.get_nowait())
                except Exception:
                    if not client.is_alive() and results.empty():
                        raise RuntimeError("the load client died before reporting") from None
                    await asyncio.sleep(0.2)
        finally:
            client.join(timeout=10)
            await server.stop(0)

    measured = asyncio.run(main())
    credit = _claim_credit_latencies(args.claims) if args.claims > 0 else []
    figures = {
        "get_margin_ms": {"p50": round(measured["p50"], 3), "p99": round(measured["p99"], 3)},
        "get_margin_rps": round(measured["rps"]),
        "claim_credit_ms": {"p50": round(statistics.median(credit), 1), "p99": round(max(credit), 1), "claims": len(credit)} if credit else None,
        "latency_run": {"rate": args.rate, "achieved_rate": round(measured["achieved_rate"], 1), "calls": measured["calls"], "errors": measured["errors"]},
        "accounts": args.accounts,
        "state_load_seconds": round(load_seconds, 2),
    }
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0

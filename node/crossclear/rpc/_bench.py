"""`crossclear bench api`: GetMargin latency and throughput, margin under price ticks, claims.

The server holds a clearing state of `--accounts` synthetic accounts (margin computed by the
kernel) and runs in this process on 127.0.0.1; the load comes from a separate client process
so client and server do not share a GIL:

- claim CPU: `crossclear.zk.measure_claim_cpu` on the first fixture proof (tests/zk/fixtures,
  the committed circuit's verification key), before anything else runs in this process;
- latency: an open-loop schedule of `--rate` GetMargin calls per second for `--seconds`
  (each call starts on time whether or not earlier ones finished), p50 and p99;
- throughput: a closed loop of `--concurrency` callers for `--seconds`, calls per second;
- ticks: a second state of `--tick-accounts` accounts (same shape) behind a fresh server.
  Certified price ticks, alternating ETH and BTC moves of 1%, are applied back to back the way
  the processor applies them (`set_price`, then `publish` on a worker thread through
  `asyncio.to_thread`, then the server's snapshot is swapped), at least `--ticks` of them and
  for at least long enough that 100 GetMargin calls start meanwhile. `publish_ms` is the time
  from `set_price` to the swap; the client process keeps its open-loop `--rate` schedule
  throughout, and `get_margin_*` covers the calls started between the first tick and the last
  swap. `full_rebuild_ms` is the state's first publication (what any structural change, i.e.
  a trade or a collateral change, or re-keying option expiries costs instead of a tick);
- claim credit: on a one-chain devnet with 4 node processes, `--claims` deposits (one
  depositor, secret and nullifier each) are proven first with snarkjs, `--provers` at a time
  (not timed in the latencies; `claim_proving` says how long it took), then each claim is
  submitted to one node and timed until all four nodes report the collateral credited.

Percentiles are nearest-rank; a p99 is only reported over at least 100 samples and a p90 over
at least 10 (null otherwise), so a maximum of a few samples is never called a p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from crossclear._errors import UsageError
from crossclear.margin import InstrumentKind, parse_inputs
from crossclear.node.clearing import ClearingState, PositionRecord
from crossclear.v1 import node_pb2

#: Ticks at least, and calls started during them at least, for the tick figures.
DEFAULT_TICKS = 20
MIN_TICK_CALLS = 100
#: Relative price move of each tick.
TICK_MOVE = 0.01
#: The issue's targets for the tick run.
PUBLISH_TARGET_MS = 1000.0
GET_MARGIN_TICK_TARGET_MS = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from crossclear.zk._bench import DEFAULT_PROOFS_DIR

    parser = subparsers.add_parser("api", help="GetMargin latency at a fixed rate and sustained throughput")
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts loaded in the node (default 100,000)")
    parser.add_argument("--rate", type=float, default=500.0, help="GetMargin calls per second for the latency and tick runs (default 500)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="callers in the throughput run (default 32)")
    parser.add_argument("--tick-accounts", type=int, default=1_000_000, help="accounts loaded for the price-tick run (default 1,000,000; 0 skips)")
    parser.add_argument("--ticks", type=int, default=DEFAULT_TICKS, help=f"price ticks published at least (default {DEFAULT_TICKS})")
    parser.add_argument("--claims", type=int, default=100, help="claims timed from submission to credit on all 4 nodes (default 100; 0 skips)")
    parser.add_argument("--provers", type=int, default=os.cpu_count() or 1, help="snarkjs provers run at once before the claim run (default: CPU count)")
    parser.add_argument("--proofs", type=Path, default=DEFAULT_PROOFS_DIR, help="folder of NN/proof.json + public.json for claim_cpu_ms")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(len(ordered) * fraction))
    return ordered[rank - 1]


def summary(samples: list[float], digits: int = 1, count_key: str = "count") -> dict[str, Any]:
    """{"p50", "p90", "p99", count_key}: p90 needs 10 samples and p99 100, else null."""
    ordered = sorted(samples)
    return {
        "p50": round(percentile(ordered, 0.5), digits),
        "p90": round(percentile(ordered, 0.9), digits) if len(ordered) >= 10 else None,
        "p99": round(percentile(ordered, 0.99), digits) if len(ordered) >= 100 else None,
        count_key: len(ordered),
    }


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


def _account_name(index: int) -> str:
    """The name `synthetic_state` gives its account number `index` (0-based)."""
    return f"0x{index + 1:040x}"


def _tick_client(target: str, account_count: int, rate: float, ready: Any, stop: Any, results: Any) -> None:
    """Open-loop GetMargin at `rate` per second until `stop` is set; puts the list of
    (start on the monotonic clock, seconds, or -1.0 for a failed call)."""
    import grpc

    from crossclear.v1 import margin_pb2, margin_pb2_grpc

    async def main() -> list[tuple[float, float]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = margin_pb2_grpc.MarginServiceStub(channel)
            for index in range(min(account_count, 200)):  # warm the channel and both processes
                await stub.GetMargin(margin_pb2.GetMarginRequest(account=_account_name(index)), timeout=30)
            rng = np.random.default_rng(13)
            calls: list[tuple[float, float]] = []

            async def one(account: str) -> None:
                start = time.monotonic()
                try:
                    await stub.GetMargin(margin_pb2.GetMarginRequest(account=account), timeout=5)
                except grpc.aio.AioRpcError:
                    calls.append((start, -1.0))
                    return
                calls.append((start, time.monotonic() - start))

            tasks = []
            ready.set()
            begin = time.monotonic()
            k = 0
            while not stop.is_set():
                delay = begin + k / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(one(_account_name(int(rng.integers(account_count))))))
                k += 1
            await asyncio.gather(*tasks)
            return calls

    results.put(asyncio.run(main()))


async def _tick_run(state: ClearingState, account_count: int, rate: float, ticks: int) -> dict[str, Any]:
    """Ticks published back to back while a client process calls GetMargin (see module doc)."""
    from crossclear.rpc._server import ApiServer

    current = [state.publish(state.stale_feeds())]
    server = ApiServer(lambda: current[0], lambda: node_pb2.NodeStatus())
    port = await server.start(0)
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    client = context.Process(target=_tick_client, args=(f"127.0.0.1:{port}", account_count, rate, ready, stop, results))
    client.start()
    try:
        while not ready.is_set():
            if not client.is_alive():
                raise RuntimeError("the tick client died before it was ready")
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the open-loop schedule is running
        base = {name: state.price(name).price for name in ("ETH", "BTC")}
        updated_at = max(state.price(name).updated_at for name in base)
        updated_at = 1_800_000_000.0 if not math.isfinite(updated_at) else updated_at
        publish: list[float] = []
        window_start = time.monotonic()
        minimum_window = MIN_TICK_CALLS / rate
        while len(publish) < ticks or time.monotonic() - window_start < minimum_window:
            index = len(publish)
            name = ("ETH", "BTC")[index % 2]
            move = 1.0 + (TICK_MOVE if (index // 2) % 2 == 0 else -TICK_MOVE)
            updated_at += 1.0
            started = time.monotonic()
            # What the processor does for a certified PriceUpdated, then `_publish`.
            state.set_price(name, base[name] * move, updated_at)
            snapshot = await asyncio.to_thread(state.publish, state.stale_feeds())
            current[0] = snapshot
            server.watch.notify(snapshot)
            publish.append((time.monotonic() - started) * 1000)
        window_end = time.monotonic()
        stop.set()
        calls: list[tuple[float, float]] | None = None
        while calls is None:
            try:
                calls = results.get_nowait()
            except Exception:
                if not client.is_alive() and results.empty():
                    raise RuntimeError("the tick client died before reporting") from None
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        client.join(timeout=30)
        await server.stop(0)
    during = [seconds for start, seconds in calls if window_start <= start <= window_end]
    answered = sorted(seconds * 1000 for seconds in during if seconds >= 0)
    errors = len(during) - len(answered)
    ordered = sorted(publish)
    p99 = round(percentile(answered, 0.99), 3) if len(answered) >= MIN_TICK_CALLS else None
    return {
        "accounts": account_count,
        "ticks": len(publish),
        "publish_ms": {"p50": round(percentile(ordered, 0.5), 1), "max": round(ordered[-1], 1)},
        "get_margin_p99_ms": p99,
        "get_margin_p50_ms": round(percentile(answered, 0.5), 3) if answered else None,
        "get_margin_max_ms": round(answered[-1], 3) if answered else None,
        "get_margin_calls": len(answered),
        "get_margin_errors": errors,
        "window_seconds": round(window_end - window_start, 2),
        "targets_met": ordered[-1] <= PUBLISH_TARGET_MS and p99 is not None and p99 <= GET_MARGIN_TICK_TARGET_MS and errors == 0,
    }


def _tick_figures(account_count: int, rate: float, ticks: int) -> dict[str, Any]:
    build_start = time.perf_counter()
    state, _ = synthetic_state(account_count)
    build_seconds = time.perf_counter() - build_start
    rebuild_start = time.perf_counter()
    state.publish(state.stale_feeds())  # the first, full pass: what every structural change costs
    rebuild_ms = (time.perf_counter() - rebuild_start) * 1000
    figures = asyncio.run(_tick_run(state, account_count, rate, ticks))
    figures["full_rebuild_ms"] = round(rebuild_ms, 1)
    figures["state_load_seconds"] = round(build_seconds, 2)
    return figures


def _claim_cpu(folder: Path) -> dict[str, float] | None:
    """`measure_claim_cpu` on the first proof of `folder` with the native backend (None when
    the native backend is not built: py_ecc would take minutes for the sample count)."""
    from crossclear.zk._bench import CLAIM_SAMPLES, load_claim_documents
    from crossclear.zk.artifacts import default_artifacts
    from crossclear.zk.backends import available_backends, get_backend
    from crossclear.zk.claim_cost import measure_claim_cpu
    from crossclear.zk.groth16 import MalformedProof, load_verification_key

    if "native" not in available_backends():
        return None
    if not folder.is_dir():
        raise UsageError(f"--proofs {folder}: not a folder")
    try:
        key = load_verification_key(default_artifacts().verification_key)
        proof_document, public_document = load_claim_documents(folder)
        return measure_claim_cpu(proof_document, public_document, key, CLAIM_SAMPLES, get_backend("native"))
    except (MalformedProof, ValueError, IndexError) as error:
        raise UsageError(f"claim benchmark: {error}") from None


def _make_deposits(web3: Any, vault_address: str, token_address: str, chain_id: int, count: int) -> list[Any]:
    """`count` deposits of 1,000 USDC into the vault, one fresh depositor and secret each, in
    leaf order. Transactions of one step go out together (the devnet mines a block a second,
    so waiting for each one would take minutes); leaf indices come from the Deposited events."""
    import secrets

    from eth_account import Account
    from web3 import Web3
    from web3.logs import DISCARD

    from crossclear.chains.artifacts import load_artifact
    from crossclear.devnet.deploy import transact
    from crossclear.zk import IncrementalMerkleTree, secret_hash
    from crossclear.zk.prover import Deposit

    amount = 1_000 * 10**6
    token = web3.eth.contract(address=Web3.to_checksum_address(token_address), abi=list(load_artifact("MockERC20").abi))
    vault = web3.eth.contract(address=Web3.to_checksum_address(vault_address), abi=list(load_artifact("CollateralVault").abi))
    depositors = [Account.create().address for _ in range(count)]
    secrets_by_depositor = {depositor: secrets.randbelow(2**200) for depositor in depositors}

    def wait_all(hashes: list[Any], step: str) -> list[Any]:
        receipts = [web3.eth.wait_for_transaction_receipt(tx_hash, timeout=120) for tx_hash in hashes]
        if any(receipt["status"] != 1 for receipt in receipts):
            raise RuntimeError(f"a {step} transaction of the claim bench failed")
        return receipts

    for depositor in depositors:
        web3.provider.make_request("anvil_setBalance", [depositor, hex(10**18)])
        web3.provider.make_request("anvil_impersonateAccount", [depositor])
    transact(web3, "MockERC20", token_address, "mintEach", depositors, amount)
    wait_all([token.functions.approve(vault.address, amount).transact({"from": depositor}) for depositor in depositors], "approve")
    first = vault.functions.deposit(token.address, amount, secret_hash(secrets_by_depositor[depositors[0]]))
    gas = 2 * int(first.estimate_gas({"from": depositors[0]}))  # later leaves may touch other slots
    receipts = wait_all(
        [vault.functions.deposit(token.address, amount, secret_hash(secrets_by_depositor[d])).transact({"from": d, "gas": gas}) for d in depositors],
        "deposit",
    )
    deposits = []
    roots = {}
    for receipt in receipts:
        event = vault.events.Deposited().process_receipt(receipt, errors=DISCARD)[0]["args"]
        depositor = Web3.to_checksum_address(event["account"])
        deposits.append(Deposit(secrets_by_depositor[depositor], int(depositor, 16), int(token.address, 16), amount, int(event["leafIndex"]), chain_id, int(vault.address, 16)))
        roots[int(event["leafIndex"])] = int(event["root"])
    deposits.sort(key=lambda deposit: deposit.leaf_index)
    tree = IncrementalMerkleTree()
    for deposit in deposits:
        tree.insert(deposit.leaf)
    if [d.leaf_index for d in deposits] != list(range(count)) or tree.root != roots[count - 1]:
        raise RuntimeError("the vault's tree does not match the bench's deposits (was the vault used before?)")
    return deposits


def _claim_credit_latencies(count: int, provers: int) -> tuple[list[float], dict[str, Any]]:
    """Milliseconds from SubmitClaim at node 0 to the collateral shown by all four nodes, per
    claim, and how the proofs were made."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    from crossclear.devnet.accounts import funded_accounts, node_keys
    from crossclear.devnet.deploy import connect
    from crossclear.devnet.nodes import DEVNET_CLEARINGHOUSE_DOMAIN, deployed_chains, start_nodes
    from crossclear.devnet.runner import start_devnet
    from crossclear.rpc.client import get_margin, submit_claim
    from crossclear.v1 import claim_pb2
    from crossclear.zk import IncrementalMerkleTree
    from crossclear.zk.groth16 import proof_to_json
    from crossclear.zk.prover import ClaimStatement, prove_claim

    state_dir = Path(tempfile.mkdtemp(prefix="crossclear-bench-"))
    devnet = start_devnet(1, state_dir, progress=lambda line: None)
    nodes = None
    try:
        nodes = start_nodes(deployed_chains(devnet.chains), node_keys(4), funded_accounts()[9], state_dir, progress=lambda line: None)
        targets = [node.details["rpc"] for node in nodes.nodes]
        plan, anvil, deployment = devnet.chains[0]
        web3 = connect(anvil.rpc_url)
        usdc = next(token for token in deployment.tokens if token.symbol == "USDC")
        deposits = _make_deposits(web3, deployment.vault, usdc.address, plan.chain_id, count)
        depositors = [f"0x{deposit.account:040x}" for deposit in deposits]
        tree = IncrementalMerkleTree()
        for deposit in deposits:
            tree.insert(deposit.leaf)
        if len({deposit.nullifier for deposit in deposits}) != count:
            raise RuntimeError("two deposits share a nullifier")
        # snarkjs runs in its own process per proof, so threads are enough to prove in parallel.
        proving_start = time.perf_counter()
        with ThreadPoolExecutor(max(1, provers)) as pool:
            proofs = list(pool.map(
                lambda deposit: prove_claim(deposit, tree.path(deposit.leaf_index), ClaimStatement(deposit.amount, DEVNET_CLEARINGHOUSE_DOMAIN)),
                deposits,
            ))
        proving_seconds = time.perf_counter() - proving_start
        proving = {"proofs": count, "provers": max(1, provers), "seconds": round(proving_seconds, 1), "seconds_per_proof": round(proving_seconds / count, 2)}

        async def measure() -> list[float]:
            latencies = []
            for account, (proof, claim) in zip(depositors, proofs):
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

        return asyncio.run(measure()), proving
    finally:
        if nodes is not None:
            nodes.stop()
        devnet.stop()


def _latency_run(accounts: int, rate: float, seconds: float, concurrency: int) -> tuple[dict[str, Any], float]:
    from crossclear.rpc._server import ApiServer

    build_start = time.perf_counter()
    state, names = synthetic_state(accounts)
    snapshot = state.publish()  # the first full kernel pass, outside the timed runs
    load_seconds = time.perf_counter() - build_start

    async def main() -> dict[str, Any]:
        server = ApiServer(lambda: snapshot, lambda: node_pb2.NodeStatus())
        port = await server.start(0)
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        client = context.Process(target=_client, args=(f"127.0.0.1:{port}", names, rate, seconds, concurrency, results))
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

    return asyncio.run(main()), load_seconds


def run(args: argparse.Namespace) -> int:
    if args.accounts < 1 or args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1 or args.claims < 0:
        raise UsageError("--accounts, --rate, --seconds and --concurrency must be positive, --claims not negative")
    if args.tick_accounts < 0 or args.ticks < 1 or args.provers < 1:
        raise UsageError("--tick-accounts must not be negative, --ticks and --provers must be positive")
    claim_cpu = _claim_cpu(args.proofs)  # first: nothing else runs in this process yet
    measured, load_seconds = _latency_run(args.accounts, args.rate, args.seconds, args.concurrency)
    tick = _tick_figures(args.tick_accounts, args.rate, args.ticks) if args.tick_accounts > 0 else None
    credit, proving = _claim_credit_latencies(args.claims, args.provers) if args.claims > 0 else ([], None)
    figures = {
        "get_margin_ms": {"p50": round(measured["p50"], 3), "p99": round(measured["p99"], 3)},
        "get_margin_rps": round(measured["rps"]),
        "tick": tick,
        "claim_cpu_ms": claim_cpu,
        "claim_credit_ms": summary(credit, 1, "claims") if credit else None,
        "claim_proving": proving,
        "latency_run": {"rate": args.rate, "achieved_rate": round(measured["achieved_rate"], 1), "calls": measured["calls"], "errors": measured["errors"]},
        "accounts": args.accounts,
        "state_load_seconds": round(load_seconds, 2),
    }
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0

"""`crossclear bench api`: GetMargin latency and throughput against one node's gRPC server.

The server holds a clearing state of `--accounts` synthetic accounts (margin computed by the
kernel) and runs in this process on 127.0.0.1; the load comes from a separate client process
so client and server do not share a GIL:

- latency: an open-loop schedule of `--rate` GetMargin calls per second for `--seconds`
  (each call starts on time whether or not earlier ones finished), p50 and p99;
- throughput: a closed loop of `--concurrency` callers for `--seconds`, calls per second.
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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def synthetic_state(accounts: int, seed: int = 3) -> tuple[ClearingState, list[str]]:
    """A clearing state of `accounts` accounts, each with collateral and two positions."""
    risk = {
        "underlyings": {"ETH": {"price": 3000, "vol": 0.6, "scan_range": 0.15}, "BTC": {"price": 60000, "vol": 0.5, "scan_range": 0.12}},
        "assets": {"USDC": {"price": 1, "base_haircut": 0, "depth": 1e9, "vol_daily": 0.0005}, "WETH": {"price": 3000, "base_haircut": 0.02, "depth": 5e8, "vol_daily": 0.04}},
    }
    inputs = parse_inputs(risk, {"accounts": []})
    state = ClearingState(inputs.params, inputs.market, {}, starting_prices_fresh=True)
    rng = np.random.default_rng(seed)
    names = [f"0x{index:040x}" for index in range(1, accounts + 1)]
    expiry = time.time() + 30 * 86400
    for index, account in enumerate(names):
        state.credit_collateral(account, 31001 + index % 3, "USDC", float(rng.uniform(1_000, 50_000)))
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


def run(args: argparse.Namespace) -> int:
    if args.accounts < 1 or args.rate <= 0 or args.seconds <= 0 or args.concurrency < 1:
        raise UsageError("--accounts, --rate, --seconds and --concurrency must be positive")
    from crossclear.rpc._server import ApiServer

    build_start = time.perf_counter()
    state, accounts = synthetic_state(args.accounts)
    state.margin(accounts[0])  # the first full kernel pass, outside the timed runs
    load_seconds = time.perf_counter() - build_start

    async def main() -> dict[str, Any]:
        server = ApiServer(state, lambda: node_pb2.NodeStatus())
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
    figures = {
        "get_margin_ms": {"p50": round(measured["p50"], 3), "p99": round(measured["p99"], 3)},
        "get_margin_rps": round(measured["rps"]),
        "latency_run": {"rate": args.rate, "achieved_rate": round(measured["achieved_rate"], 1), "calls": measured["calls"], "errors": measured["errors"]},
        "accounts": args.accounts,
        "state_load_seconds": round(load_seconds, 2),
    }
    json.dump(figures, sys.stdout, indent=None if args.json else 2)
    sys.stdout.write("\n")
    return 0

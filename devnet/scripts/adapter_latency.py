"""Measure the EVM adapter's event-to-observation latency on a devnet-like chain.

    .venv/bin/python devnet/scripts/adapter_latency.py [--deposits 10] [--confirmations 2]
        [--block-time 1] [--poll-interval 1.0]

Starts its own anvil (1 s blocks by default, as the devnet), deploys the contracts, sends
deposits at irregular moments and times each one from the moment its transaction is sent to
the moment the adapter delivers its DepositObserved. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time

from crossclear.chains.conformance import StreamFollower
from crossclear.chains.config import Finality
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.interface import Cursor, DepositObserved
from crossclear.devnet.chain import DevChain
from crossclear.devnet.deploy import transact
from crossclear.zk import secret_hash


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deposits", type=int, default=10)
    parser.add_argument("--confirmations", type=int, default=2)
    parser.add_argument("--block-time", type=int, default=1)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args)), indent=2))


async def measure(args: argparse.Namespace) -> dict[str, object]:
    with DevChain.start(chain_id=39001) as chain:
        depositor = chain.accounts[1].address
        vault = chain.deployment.vault
        transact(chain.web3, "MockERC20", chain.token("USDC"), "approve", vault, 2**255, sender=depositor)
        chain.anvil.rpc("evm_setAutomine", [False])
        chain.anvil.rpc("evm_setIntervalMining", [args.block_time])
        config = chain.adapter_config(
            "latency", finality=Finality(confirmations=args.confirmations), poll_interval_seconds=args.poll_interval
        )
        adapter = EvmChainAdapter(config)
        await adapter.connect()
        follower = StreamFollower(adapter, Cursor.before(chain.anvil.chain_id, chain.deployment.deploy_block))
        arrivals: dict[bytes, float] = {}
        sent: dict[bytes, float] = {}
        vault_contract = chain.vault

        async def record_arrivals() -> None:
            seen = 0
            while True:
                for batch in follower.batches[seen:]:
                    for observation in batch.observations:
                        if isinstance(observation, DepositObserved):
                            arrivals.setdefault(observation.tx_hash, time.monotonic())
                seen = len(follower.batches)
                await asyncio.sleep(0.005)

        recorder = asyncio.ensure_future(record_arrivals())
        for number in range(args.deposits):
            await asyncio.sleep(random.uniform(0.3, 1.7))
            call = vault_contract.functions.deposit(chain.token("USDC"), 10**6, secret_hash(number + 1))
            tx_hash = await asyncio.to_thread(lambda: bytes(call.transact({"from": depositor, "gas": 3_000_000})))
            sent[tx_hash] = time.monotonic()
        deadline = time.monotonic() + 60
        while not set(sent) <= set(arrivals) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        recorder.cancel()
        await follower.stop()
        await adapter.close()
    latencies = sorted((arrivals[tx] - sent[tx]) * 1000 for tx in sent if tx in arrivals)
    return {
        "deposits": len(sent),
        "observed": len(latencies),
        "confirmations": args.confirmations,
        "block_time_s": args.block_time,
        "poll_interval_s": args.poll_interval,
        "latency_ms": {
            "min": round(latencies[0]),
            "p50": round(statistics.median(latencies)),
            "max": round(latencies[-1]),
            "mean": round(statistics.fmean(latencies)),
        },
    }


if __name__ == "__main__":
    main()

"""`crossclear liquidator`: collect the nodes' seize orders and submit quorum-backed ones."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections import Counter
from pathlib import Path

from crossclear._errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("liquidator", help="submit seizes the node set signed to the vaults")
    parser.add_argument("--node", action="append", required=True, metavar="HOST:PORT", help="a node's gRPC address (repeat for each node)")
    parser.add_argument("--signer", action="append", required=True, metavar="0xADDRESS", help="a node-set signer (repeat for each)")
    parser.add_argument("--chain", action="append", required=True, metavar="CHAIN_ID=RPC_URL", help="where each chain's vault is (repeat)")
    parser.add_argument("--key-file", required=True, type=Path, help="private key (hex) that pays for the seize transactions")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between rounds (default 2)")
    parser.add_argument("--once", action="store_true", help="run one round and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossclear.node.liquidator import Liquidator
    from crossclear.rpc.client import read_key_file

    chains = {}
    for entry in args.chain:
        chain_id, _, url = entry.partition("=")
        if not chain_id.isdigit() or not url.startswith("http://127.0.0.1:"):
            raise UsageError(f"--chain must be CHAIN_ID=http://127.0.0.1:PORT, got {entry!r}")
        chains[int(chain_id)] = url
    liquidator = Liquidator(args.node, args.signer, chains, read_key_file(args.key_file))
    # Failed seizes are logged (one line each) by crossclear.liquidator; send them to stderr next to
    # the submissions printed on stdout (the devnet writes both to liquidator.log).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("crossclear.liquidator")

    async def main() -> None:
        while True:
            failed_before = sum(liquidator.errors.values())
            try:
                taken = await liquidator.close_out_once()
                submissions = await liquidator.run_once()
            except Exception as error:  # one bad round must not end the liquidator
                log.warning("round failed: %s: %s", type(error).__name__, " ".join(str(error).split()))
                taken, submissions = [], []
            for close_out in taken:
                print(f"closed out {close_out.order.account_size} of {close_out.order.underlying} for {close_out.order.account} on chain {close_out.domain.chain_id} "
                      f"(signed by {len(close_out.signers)} nodes), transaction {close_out.transaction_hash}", flush=True)
            for submission in submissions:
                order = submission.order
                print(f"seized {order.amount} of {order.token} from {order.account} on chain {submission.domain.chain_id} "
                      f"(signed by {len(submission.signers)} nodes), transaction {submission.transaction_hash}", flush=True)
            failed = sum(liquidator.errors.values()) - failed_before
            if submissions or taken or failed:
                print(f"round: {len(taken)} closed out, {len(submissions)} seized, {failed} failed; since start: {liquidator.submitted} seized, "
                      f"errors {_counts(liquidator.errors)}, skipped {_counts(liquidator.skipped)}", flush=True)
            if args.once:
                return
            await asyncio.sleep(args.interval)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{reason}={count}" for reason, count in sorted(counter.items())) or "none"

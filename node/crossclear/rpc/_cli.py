"""Integrator commands against a running node: claims, releases and status.

`crossclear margin get ACCOUNT --node HOST:PORT` lives with the margin command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from pathlib import Path

from crossclear._errors import UsageError

DEFAULT_NODE = "127.0.0.1:50051"


def _node_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--node", default=None, metavar="HOST:PORT",
        help=f"a node's gRPC address (default: a node of the running devnet, else {DEFAULT_NODE})",
    )


def _node(args: argparse.Namespace) -> str:
    """--node, or a node of the running devnet (saying which on standard error)."""
    from crossclear.rpc.client import resolve_node

    return resolve_node(args.node)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    claim = subparsers.add_parser("claim", help="submit or look up a collateral claim at a node")
    claim_actions = claim.add_subparsers(dest="claim_action", metavar="ACTION", required=True)
    submit = claim_actions.add_parser("submit", help="submit a proof (snarkjs proof.json and public.json)")
    submit.add_argument("--proof", required=True, type=Path)
    submit.add_argument("--public", required=True, type=Path)
    _node_argument(submit)
    submit.set_defaults(handler=run_claim_submit)
    get = claim_actions.add_parser("get", help="a credited claim by nullifier")
    get.add_argument("nullifier")
    _node_argument(get)
    get.set_defaults(handler=run_claim_get)

    release = subparsers.add_parser("release", help="ask the node set to release collateral (a withdrawal)")
    release.add_argument("--key-file", required=True, type=Path, help="the account owner's private key (hex); it signs the request")
    release.add_argument("--chain", required=True, type=int, help="chain id whose vault pays")
    release.add_argument("--token", required=True, help="0x address of the token the vault pays")
    release.add_argument("--amount", required=True, type=int, help="amount in the token's smallest unit")
    release.add_argument("--recipient", required=True, help="address the vault pays")
    release.add_argument("--domain", required=True, type=int, help="the clearinghouse domain the nodes serve")
    release.add_argument("--valid-for", type=int, default=3600, metavar="SECONDS", help="the release's deadline, from now (default 3600; at most 86400)")
    _node_argument(release)
    release.set_defaults(handler=run_release)

    status = subparsers.add_parser("status", help="a node's status: peers, chains, certificates, feeds")
    _node_argument(status)
    status.set_defaults(handler=run_status)


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: cannot read JSON ({error})") from None


def run_claim_submit(args: argparse.Namespace) -> int:
    from crossclear.rpc.client import submit_claim
    from crossclear.v1 import claim_pb2

    public = _read_json(args.public)
    if not isinstance(public, list):
        raise UsageError(f"{args.public}: public signals must be a JSON list")
    reply = asyncio.run(submit_claim(_node(args), _read_json(args.proof), [str(value) for value in public]))
    status = claim_pb2.ClaimStatus.Name(reply.status).removeprefix("CLAIM_STATUS_").lower()
    print(f"{status}: {reply.detail}")
    return 0 if reply.status == claim_pb2.CLAIM_STATUS_ACCEPTED else 1


def run_claim_get(args: argparse.Namespace) -> int:
    from crossclear.rpc.client import get_claim

    claim = asyncio.run(get_claim(_node(args), args.nullifier))
    print(json.dumps({"nullifier": claim.nullifier, "account": claim.account, "chain_id": claim.chain_id, "asset": claim.asset, "amount_units": claim.amount_units, "decimals": claim.decimals}, indent=2))
    return 0


def run_release(args: argparse.Namespace) -> int:
    from crossclear.rpc.client import read_key_file, request_release

    release = asyncio.run(
        request_release(_node(args), read_key_file(args.key_file), args.chain, args.token, args.amount, args.recipient, secrets.token_bytes(32), args.domain, args.valid_for)
    )
    json.dump(
        {
            "chain_id": release.chain_id,
            "vault": release.vault,
            "release_id": "0x" + release.release_id.hex(),
            "account": release.account,
            "token": release.token,
            "amount": release.amount,
            "recipient": release.recipient,
            "deadline": release.deadline,
            "signatures": ["0x" + s.hex() for s in release.signatures],
            "signers": list(release.signers),
        },
        sys.stdout,
        indent=2,
    )
    print()
    return 0


def run_status(args: argparse.Namespace) -> int:
    from crossclear.rpc.client import node_status

    status = asyncio.run(node_status(_node(args)))
    print(f"crossclear {status.version}  node {status.node_address}  peers {status.connected_peers}  state height {status.state_height}  accounts {status.accounts}")
    print(f"certificates {status.certificate_count}  equivocation evidence {status.equivocation_count}")
    for chain in status.chains:
        print(
            f"  chain {chain.network} ({chain.chain_id}): head {chain.head}, final {chain.finalized} ({chain.finality}), health {chain.health},"
            f" applied to {chain.applied_block} (chain time {chain.chain_time}), {chain.waiting_blocks} waiting for a certificate"
        )
    if status.signing_halted:
        print(f"SIGNING HALTED: {status.signing_halted}")
    for feed in status.feeds:
        print(f"  feed {feed.name}: {feed.price:,.2f}{'  STALE' if feed.stale else ''}")
    return 0

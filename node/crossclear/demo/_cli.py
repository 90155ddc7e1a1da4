"""`crossclear demo`: play the story against the devnet `crossclear devnet up` started."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from crossclear._errors import UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("demo", help="play the whole story (deposits, claims, margin, liquidation, withdrawal) on the running devnet")
    parser.add_argument("--state-dir", type=Path, default=None, help="the devnet's state folder (default devnet/.state)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from crossclear.demo.story import play
    from crossclear.devnet.manifest import default_state_dir, read_manifest

    state_dir = args.state_dir or default_state_dir()
    manifest = read_manifest(state_dir)
    if manifest is None:
        raise UsageError(f"no devnet is running (no manifest in {state_dir}); start one with `crossclear devnet up` or `make devnet`")
    asyncio.run(play(manifest, lambda line: print(line, flush=True)))
    return 0

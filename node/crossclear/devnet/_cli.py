"""`crossclear devnet up | status | down`."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType
from typing import Any

from crossclear._errors import UsageError
from crossclear.devnet.anvil import AnvilError
from crossclear.devnet.manifest import (
    LOCK_NAME,
    DevnetLock,
    default_state_dir,
    devnet_running,
    kill_named_processes,
    lock_holder_pid,
    manifest_path,
    read_manifest,
    remove_manifest,
    write_manifest,
)
from crossclear.devnet.accounts import funded_accounts, node_keys
from crossclear.devnet.nodes import DEVNET_CLEARINGHOUSE_DOMAIN, deployed_chains, start_nodes
from crossclear.devnet.runner import DEVNET_DASH_PORT, DEVNET_NODE_SET_SIZE, MAX_CHAINS, start_dashboard, start_devnet

MAX_NODES = 16

_DOWN_TIMEOUT_SECONDS = 20.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    devnet = subparsers.add_parser("devnet", help="run local anvil chains with the clearinghouse contracts")
    commands = devnet.add_subparsers(dest="devnet_command", metavar="ACTION", required=True)

    up = commands.add_parser("up", help="start the chains and deploy the contracts (foreground; Ctrl-C stops)")
    up.add_argument("--chains", type=int, default=3, help="number of chains (default 3)")
    up.add_argument("--nodes", type=int, default=4, help="number of nodes, each its own process (default 4; 0 runs chains only)")
    up.add_argument("--block-time", type=int, default=1, help="whole seconds between blocks (default 1)")
    up.add_argument(
        "--dash-port", type=int, default=DEVNET_DASH_PORT,
        help=f"port of the web dashboard (default {DEVNET_DASH_PORT}, or a free one when taken; 0 picks a free one; -1: no dashboard)",
    )
    _state_dir_argument(up)
    up.set_defaults(handler=_up)

    status = commands.add_parser("status", help="show what the running devnet runs where")
    _state_dir_argument(status)
    status.set_defaults(handler=_status)

    down = commands.add_parser("down", help="stop the running devnet; leaves no process behind")
    _state_dir_argument(down)
    down.set_defaults(handler=_down)


def _state_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the manifest and logs go (default devnet/.state, or $CROSSCLEAR_DEVNET_STATE)",
    )


def _state_dir(args: argparse.Namespace) -> Path:
    state_dir: Path = args.state_dir if args.state_dir is not None else default_state_dir()
    return state_dir


class _StopRequested(Exception):
    """SIGTERM (from `devnet down`) or SIGHUP arrived."""


def _raise_stop(signal_number: int, frame: FrameType | None) -> None:
    raise _StopRequested(signal.Signals(signal_number).name)


def _up(args: argparse.Namespace) -> int:
    if not 1 <= args.chains <= MAX_CHAINS:
        raise UsageError(f"--chains {args.chains}: choose between 1 and {MAX_CHAINS}")
    if not 0 <= args.nodes <= MAX_NODES:
        raise UsageError(f"--nodes {args.nodes}: choose between 0 and {MAX_NODES}")
    if args.block_time <= 0:
        raise UsageError(f"--block-time {args.block_time}: must be a positive whole number of seconds")
    if not -1 <= args.dash_port <= 65535:
        raise UsageError(f"--dash-port {args.dash_port}: a TCP port, 0 for any free one, or -1 for no dashboard")
    state_dir = _state_dir(args)
    lock = DevnetLock(state_dir / LOCK_NAME)
    if not lock.try_acquire():
        manifest = read_manifest(state_dir) or {}
        print(
            f"crossclear: a devnet is already running (pid {manifest.get('pid', '?')}, manifest {manifest_path(state_dir)}); "
            "stop it with `crossclear devnet down`",
            file=sys.stderr,
        )
        return 1
    previous = {number: signal.signal(number, _raise_stop) for number in (signal.SIGTERM, signal.SIGHUP)}
    running = None
    nodes = None
    dash = None
    try:
        remove_manifest(state_dir)
        began = time.monotonic()
        print(f"crossclear devnet: starting {args.chains} chain(s), block time {args.block_time} s, {args.nodes} node(s)", flush=True)
        running = start_devnet(
            args.chains, state_dir, block_time=args.block_time, progress=_progress, node_set_size=args.nodes or DEVNET_NODE_SET_SIZE
        )
        extra: dict[str, Any] = {"nodes": [], "liquidator": None}
        if args.nodes:
            keys = node_keys(args.nodes)
            liquidator, fund = funded_accounts()[9], funded_accounts()[8]
            nodes = start_nodes(deployed_chains(running.chains), keys, liquidator, state_dir, progress=_progress, insurance_fund=fund.address)
            extra = nodes.manifest() | {"clearinghouse_domain": DEVNET_CLEARINGHOUSE_DOMAIN, "insurance_fund": fund.address}
        elapsed = time.monotonic() - began
        manifest = running.manifest | extra | {"pid": os.getpid(), "started_at": time.time(), "startup_seconds": round(elapsed, 2)}
        path = write_manifest(state_dir, manifest)
        if args.nodes and args.dash_port >= 0:
            # The dashboard reads the manifest just written; the manifest then names it too.
            dash = start_dashboard(state_dir, args.dash_port, progress=_progress)
            if dash is not None:
                manifest["dash"] = dash.details
                write_manifest(state_dir, manifest)
        print(f"crossclear devnet: up in {elapsed:.1f} s; manifest {path}", flush=True)
        print(_table(manifest), flush=True)
        print("running; Ctrl-C or `crossclear devnet down` stops it", flush=True)
        while all(anvil.running for _, anvil, _ in running.chains):
            time.sleep(0.5)
        print("crossclear: a chain process exited unexpectedly; stopping the devnet", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _StopRequested):
        print("\ncrossclear devnet: stopping", flush=True)
        return 0
    except (AnvilError, OSError, RuntimeError) as error:
        # A chain that would not start or a deployment that failed: one line, nothing left running.
        print(f"crossclear: error: {error}", file=sys.stderr)
        return 1
    finally:
        # Signals during cleanup must not interrupt it half way.
        for number in previous:
            signal.signal(number, signal.SIG_IGN)
        if dash is not None:
            dash.stop()
        if nodes is not None:
            nodes.stop()
        if running is not None:
            running.stop()
        remove_manifest(state_dir)
        lock.release()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _progress(line: str) -> None:
    print(line, flush=True)


def _status(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    manifest = read_manifest(state_dir)
    if not devnet_running(state_dir) or manifest is None:
        print("no devnet is running" + (" (it is still starting)" if devnet_running(state_dir) else ""))
        return 1
    age = time.time() - float(manifest.get("started_at", time.time()))
    print(f"devnet up for {age:.0f} s (pid {manifest.get('pid')}); manifest {manifest_path(state_dir)}")
    print(_table(manifest, with_heads=True))
    return 0


def _down(args: argparse.Namespace) -> int:
    state_dir = _state_dir(args)
    manifest = read_manifest(state_dir) or {}
    if not devnet_running(state_dir):
        kill_named_processes(manifest)
        _kill_dashboard(manifest)
        remove_manifest(state_dir)
        print("no devnet is running")
        return 0
    pid = manifest.get("pid", lock_holder_pid(state_dir))
    if not isinstance(pid, int):
        raise UsageError(f"{state_dir / LOCK_NAME}: a devnet holds the lock but no file names its pid")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + _DOWN_TIMEOUT_SECONDS
    while devnet_running(state_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    if devnet_running(state_dir):
        # It did not stop by itself: take it and its chains down by force.
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    kill_named_processes(manifest)
    _kill_dashboard(manifest)
    remove_manifest(state_dir)
    print(f"devnet stopped ({len(manifest.get('chains', []))} chain(s))")
    return 0


def _kill_dashboard(manifest: dict[str, Any]) -> None:
    """Kill the dashboard's process group a manifest names (it also dies with `devnet up`)."""
    pid = (manifest.get("dash") or {}).get("pid")
    if isinstance(pid, int):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _head(rpc_url: str) -> str:
    request = urllib.request.Request(
        rpc_url,
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return str(int(json.loads(response.read())["result"], 16))
    except (OSError, ValueError, KeyError):
        return "down"


def _table(manifest: dict[str, Any], with_heads: bool = False) -> str:
    header = ("network", "chain id", "rpc", "vault", "market", "finality") + (("head",) if with_heads else ())
    rows = [header]
    for chain in manifest.get("chains", []):
        row = (
            chain["network"],
            str(chain["chain_id"]),
            chain["rpc_url"],
            chain["contracts"]["vault"],
            chain["contracts"]["market"],
            f"{chain['adapter_config']['finality']} conf",
        )
        rows.append(row + ((_head(chain["rpc_url"]),) if with_heads else ()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    node_set = manifest.get("node_set", {})
    tokens = manifest["chains"][0]["contracts"]["tokens"] if manifest.get("chains") else {}
    lines.append("")
    lines.append(f"tokens per chain: {', '.join(tokens)} (with a PriceFeed each)")
    lines.append(
        f"node set: {len(node_set.get('signers', []))} signers, threshold {node_set.get('threshold')}; "
        f"{len(manifest.get('accounts', []))} funded accounts; nodes running: {len(manifest.get('nodes', []))}"
    )
    if manifest.get("nodes"):
        node_rows = [("node", "signer", "grpc", "p2p", "metrics", "process")]
        for node in manifest["nodes"]:
            node_rows.append((node["name"], node["address"], node["rpc"], node["p2p"], node["metrics"], _process_state(node.get("pid"))))
        node_widths = [max(len(row[i]) for row in node_rows) for i in range(len(node_rows[0]))]
        lines.append("")
        for index, row in enumerate(node_rows):
            lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, node_widths)).rstrip())
            if index == 0:
                lines.append("  ".join("-" * width for width in node_widths))
        liquidator = manifest.get("liquidator") or {}
        lines.append("")
        lines.append(f"liquidator: pays seized collateral to {liquidator.get('recipient')} ({_process_state(liquidator.get('pid'))})")
        lines.append(f"clearinghouse domain {manifest.get('clearinghouse_domain')}; try `crossclear demo` in another terminal")
        if manifest.get("dash"):
            lines.append(f"dashboard: {manifest['dash'].get('url')} ({_process_state(manifest['dash'].get('pid'))})")
    return "\n".join(lines)


def _process_state(pid: object) -> str:
    if not isinstance(pid, int):
        return "-"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return f"pid {pid} exited"
    except PermissionError:
        pass
    return f"pid {pid}"

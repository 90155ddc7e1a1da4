"""`crossclear dash`: serve the dashboard for a node set (or the running devnet's)."""

from __future__ import annotations

import argparse
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from crossclear._errors import UsageError

if TYPE_CHECKING:
    from crossclear.dash.config import DashConfig

DEFAULT_PORT = 8700


def default_report() -> Path:
    from crossclear._paths import repo_root

    return repo_root() / "docs" / "risk-v2" / "report.json"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dash",
        help="serve the web dashboard (node set, accounts, capital efficiency, orders, risk)",
        description="Serve a live web dashboard of a node set, read over the nodes' gRPC API and /metrics. "
        "Without --nodes it watches the running devnet's nodes (devnet/.state/devnet.json). See docs/dashboard.md.",
    )
    parser.add_argument("--nodes", metavar="HOST:PORT[,...]", help="the nodes' gRPC addresses (default: every node of the running devnet)")
    parser.add_argument("--metrics", metavar="URL[,...]", help="the nodes' metrics URLs, in the order of --nodes (http://HOST:PORT/metrics)")
    parser.add_argument("--chain", action="append", default=[], metavar="CHAIN_ID=RPC_URL,VAULT", help="a chain whose vault events show executed orders (repeatable; the devnet's are known)")
    parser.add_argument("--threshold", type=int, default=0, help="signatures an order needs (default floor(2n/3)+1 of the nodes, or the devnet's)")
    parser.add_argument("--report", type=Path, default=None, help="the risk backtest report JSON (default docs/risk-v2/report.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1; the page has no login)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--poll", type=float, default=1.0, metavar="SECONDS", help="how often each node's status and metrics are read (default 1)")
    parser.add_argument("--state-dir", type=Path, default=None, help="the devnet's state folder (default devnet/.state, or $CROSSCLEAR_DEVNET_STATE)")
    parser.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> tuple[DashConfig, str]:
    """The DashConfig for the arguments, and a line saying where the nodes came from."""
    from dataclasses import replace

    from crossclear.dash.config import DashConfig, from_manifest, parse_chain, parse_nodes  # noqa: F811
    from crossclear.devnet.manifest import default_state_dir, manifest_path, read_manifest

    report = args.report if args.report is not None else default_report()
    if not 0.1 <= args.poll <= 60:
        raise UsageError(f"--poll {args.poll}: choose between 0.1 and 60 seconds")
    if args.threshold < 0:
        raise UsageError("--threshold must not be negative")
    chains = tuple(parse_chain(text) for text in args.chain)
    if args.nodes:
        config = DashConfig(nodes=parse_nodes(args.nodes, args.metrics), chains=chains, threshold=args.threshold, report_path=report, source="--nodes")
        origin = f"{len(config.nodes)} node(s) from --nodes"
    else:
        if args.metrics:
            raise UsageError("--metrics goes with --nodes (the devnet's metrics URLs are in its manifest)")
        state_dir = args.state_dir or default_state_dir()
        manifest = read_manifest(state_dir)
        if manifest is None:
            raise UsageError(f"no --nodes given and no devnet is running (no manifest in {state_dir}); start one with `crossclear devnet up` or pass --nodes HOST:PORT[,...]")
        config = from_manifest(manifest, manifest_path(state_dir), report)
        if chains:
            config = replace(config, chains=config.chains + chains)
        if args.threshold:
            config = replace(config, threshold=args.threshold)
        origin = f"{len(config.nodes)} node(s) from the devnet manifest {manifest_path(state_dir)}"
    config = replace(config, poll_seconds=args.poll)
    return config, origin


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from crossclear.dash.app import create_app

    config, origin = build_config(args)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a TCP port")
    listener = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((args.host, args.port))
    except OSError as error:
        listener.close()
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {error.strerror or error} (choose another --port, or 0)") from None
    listener.listen(128)
    port = listener.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"crossclear dash: serving http://{host}:{port}/ ({origin}); Ctrl-C stops it", flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2))
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handler
    # it found: a quiet one makes `devnet down` (SIGTERM) an ordinary exit with status 0.
    previous = signal.signal(signal.SIGTERM, lambda number, frame: None)
    try:
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    print("crossclear dash: stopped", file=sys.stderr, flush=True)
    return 0

"""`crossclear node --config node.toml`: run one node until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from crossclear._errors import UsageError
from crossclear.chains import ChainAdapterError, ChainConfigError
from crossclear.node.config import NodeConfig


class JsonLogFormatter(logging.Formatter):
    """Structured logs: one JSON object per line."""

    def __init__(self, node_name: str) -> None:
        super().__init__()
        self._node = node_name

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "node": self._node,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("node", help="run a clearinghouse node", description="Run one crossclear node (configuration: docs/node-config.md).")
    parser.add_argument("--config", required=True, type=Path, metavar="NODE.toml", help="the node's configuration file")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.set_defaults(handler=run)


async def _check_chains(config: NodeConfig, source: Path) -> None:
    """Build every chain's adapter through the registry (any kind) and connect it once."""
    from crossclear.chains.registry import build_adapters

    logging.getLogger("crossclear.chains").setLevel(logging.ERROR)
    try:
        adapters = build_adapters(config.chains)
    except ChainConfigError as error:
        raise UsageError(f"{source}: {error}") from None
    try:
        for adapter in adapters.values():
            await adapter.connect()
    except ChainAdapterError as error:
        raise UsageError(str(error)) from None
    finally:
        for adapter in adapters.values():
            await adapter.close()
    logging.getLogger("crossclear.chains").setLevel(logging.NOTSET)


def run(args: argparse.Namespace) -> int:
    from crossclear.node.config import load_config
    from crossclear.node.wiring import Node

    config = load_config(args.config)
    # Before any state or log exists: an unknown or broken adapter kind, an unreachable chain,
    # a wrong chain id or a missing contract is one line and a non-zero exit, and leaves no
    # data folder behind.
    asyncio.run(_check_chains(config, args.config))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter(config.name))
    logging.basicConfig(level=args.log_level, handlers=[handler])

    async def main() -> None:
        node = Node(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        try:
            ports = await node.start()
        except ChainAdapterError as error:
            await node.stop()
            raise UsageError(str(error)) from None
        print(f"node {config.name} ({config.address}) serving gRPC on 127.0.0.1:{ports.rpc}, sync on 127.0.0.1:{ports.sync}"
              + (f", metrics on 127.0.0.1:{ports.metrics}" if ports.metrics else ""), flush=True)
        try:
            await stop.wait()
        finally:
            await node.stop()

    asyncio.run(main())
    return 0

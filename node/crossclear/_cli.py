"""The `crossclear` command line.

Each concern owns its subcommands in its own `_cli` module with a `register(subparsers)`
function; this file only lists them, so adding a command never touches another concern.
Benchmarks follow the same pattern under `crossclear bench`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from crossclear import __version__
from crossclear._errors import UsageError

#: Top-level command modules, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "crossclear.margin._cli",
    "crossclear.zk._cli",
    "crossclear.devnet._cli",
    "crossclear.node._cli",
    "crossclear.demo._cli",
)

#: Modules that add a `crossclear bench <name>` subcommand.
BENCH_MODULES: tuple[str, ...] = (
    "crossclear.margin._bench",
    "crossclear.zk._bench",
    "crossclear.attest._bench",
    "crossclear.rpc._bench",
)


class _Registrar(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


Handler = Callable[[argparse.Namespace], int]


def _present(module_name: str) -> bool:
    # A command whose package is not built yet is simply absent from the CLI; an import
    # error inside a package that does exist must still surface, so only probe existence.
    try:
        return importlib.util.find_spec(module_name) is not None
    except ModuleNotFoundError:
        return False


def _load(module_name: str) -> _Registrar:
    module: _Registrar = importlib.import_module(module_name)  # type: ignore[assignment]
    return module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossclear",
        description="Cross-chain clearinghouse node: attested chain state, ZK collateral claims, portfolio margin.",
    )
    parser.add_argument("--version", action="version", version=f"crossclear {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        if _present(module_name):
            _load(module_name).register(subparsers)

    bench = subparsers.add_parser("bench", help="run a benchmark and print its figures as JSON")
    bench_subparsers = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    for module_name in BENCH_MODULES:
        if _present(module_name):
            _load(module_name).register(bench_subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as error:
        print(f"crossclear: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

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
from typing import Protocol, cast

from crossclear import __version__
from crossclear._errors import UsageError

#: Top-level commands and the module that registers each, in the order `--help` lists them.
COMMAND_MODULES: dict[str, str] = {
    "margin": "crossclear._margin_cli",
    "risk": "crossclear.risk._cli",
    "zk": "crossclear.zk._cli",
    "devnet": "crossclear.devnet._cli",
    "node": "crossclear.node._cli",
    "claim": "crossclear.rpc._cli",
    "release": "crossclear.rpc._cli",
    "status": "crossclear.rpc._cli",
    "liquidator": "crossclear.node._liquidator_cli",
    "demo": "crossclear.demo._cli",
    "dash": "crossclear.dash._cli",
}

#: `crossclear bench <name>` benchmarks and the module that registers each.
BENCH_MODULES: dict[str, str] = {
    "margin": "crossclear.margin._bench",
    "risk": "crossclear.risk._bench",
    "zk": "crossclear.zk._bench",
    "attest": "crossclear.attest._bench",
    "api": "crossclear.rpc._bench",
}


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
    return cast(_Registrar, importlib.import_module(module_name))


def _wanted(registry: dict[str, str], name: str | None) -> list[str]:
    # Importing a command pulls in its dependencies (web3, libp2p, py_ecc...), which costs
    # seconds; when the command is known from argv, load only that one.
    if name in registry:
        return [registry[name]]
    return list(dict.fromkeys(registry.values()))  # a module may register several commands


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser, or (when argv names a command) just enough of it to run that command."""
    words = [word for word in argv if not word.startswith("-")]
    command = words[0] if words else None
    parser = argparse.ArgumentParser(
        prog="crossclear",
        description="Cross-chain clearinghouse node: attested chain state, ZK collateral claims, portfolio margin.",
    )
    parser.add_argument("--version", action="version", version=f"crossclear {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    if command != "bench":
        for module_name in _wanted(COMMAND_MODULES, command):
            if _present(module_name):
                _load(module_name).register(subparsers)

    bench = subparsers.add_parser("bench", help="run a benchmark and print its figures as JSON")
    bench_subparsers = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)
    if command in (None, "bench"):
        for module_name in _wanted(BENCH_MODULES, words[1] if len(words) > 1 else None):
            if _present(module_name):
                _load(module_name).register(bench_subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as error:
        print(f"crossclear: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

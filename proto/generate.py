"""Generate the Python stubs for every .proto under proto/ into node/ (or another folder).

Run with the venv's python from anywhere: `.venv/bin/python proto/generate.py`. The stubs land
in node/crossclear/v1/ and import as `crossclear.v1.<name>_pb2`. grpcio-tools is pinned to
1.81.0 because newer generators emit code that needs protobuf 7, which py-libp2p 0.8.1 cannot
load; tests/p2p/test_generated_fresh.py regenerates into a temporary folder and fails when the
committed stubs differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_ROOT = Path(__file__).resolve().parent
DEFAULT_OUTPUT = PROTO_ROOT.parent / "node"
PACKAGE_DOCSTRING = '"""Generated protobuf and gRPC stubs (package crossclear.v1). Do not edit: run proto/generate.py."""\n'


def proto_files() -> list[Path]:
    return sorted(PROTO_ROOT.rglob("*.proto"))


def generate(output_root: Path) -> None:
    sources = [str(path.relative_to(PROTO_ROOT)) for path in proto_files()]
    # The mypy plugins are console scripts next to the running interpreter; naming them
    # explicitly keeps generation independent of PATH (an unactivated venv).
    scripts = Path(sys.executable).parent
    arguments = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--plugin=protoc-gen-mypy={scripts / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={scripts / 'protoc-gen-mypy_grpc'}",
        f"--python_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *sources,
    ]
    status = protoc.main(arguments)
    if status != 0:
        raise SystemExit(f"proto/generate.py: protoc failed with status {status} on {', '.join(sources)}")
    for package in {Path(source).parent for source in sources}:
        (output_root / package / "__init__.py").write_text(PACKAGE_DOCSTRING)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUTPUT, help="folder the crossclear/v1 stubs go under")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

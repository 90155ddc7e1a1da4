"""Compiled contract artifacts (ABI and bytecode) from `devnet/artifacts/`.

`devnet/scripts/compile.mjs` writes one JSON file per contract; adapters need the ABIs to
decode events, the devnet needs the bytecode to deploy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    """Artifact name (the .sol file stem, or Poseidon2 / Poseidon4)."""
    abi: tuple[dict[str, Any], ...]
    """The contract ABI."""
    bytecode: str
    """0x-prefixed creation bytecode."""


def artifacts_dir() -> Path:
    """`CROSSCLEAR_ARTIFACTS`, else `<repo>/devnet/artifacts`."""
    configured = os.environ.get("CROSSCLEAR_ARTIFACTS")
    if configured:
        return Path(configured)
    from crossclear._paths import repo_root

    return repo_root() / "devnet" / "artifacts"


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact `<name>.json`; FileNotFoundError names the file when it is missing."""
    path = artifacts_dir() / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"contract artifact {path} is missing: run `node devnet/scripts/compile.mjs`")
    document = json.loads(path.read_text())
    return Artifact(name=name, abi=tuple(document["abi"]), bytecode=document["bytecode"])


def has_artifact(name: str) -> bool:
    """True when `<name>.json` exists (the ZK verifier is optional)."""
    return (artifacts_dir() / f"{name}.json").is_file()

"""Where the circuit artifacts and the JavaScript toolchain live.

The committed DEV-ONLY artifacts are in `circuits/artifacts/` of the repository (built by
`circuits/build.py`); `CROSSCLEAR_CIRCUIT_ARTIFACTS` points elsewhere (e.g. a production
ceremony's output). snarkjs runs through `node` from the repository's `node_modules`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
ARTIFACTS_ENVIRONMENT_VARIABLE = "CROSSCLEAR_CIRCUIT_ARTIFACTS"
CIRCUIT_NAME = "collateral_claim"


@dataclass(frozen=True)
class CircuitArtifacts:
    """Paths to one build of the collateral-claim circuit."""

    directory: Path
    """The artifacts folder."""

    @property
    def wasm(self) -> Path:
        return self.directory / f"{CIRCUIT_NAME}.wasm"

    @property
    def zkey(self) -> Path:
        return self.directory / f"{CIRCUIT_NAME}.zkey"

    @property
    def verification_key(self) -> Path:
        return self.directory / "vkey.json"

    @property
    def solidity_verifier(self) -> Path:
        return self.directory / "CollateralClaimVerifier.sol"

    @property
    def manifest(self) -> Path:
        return self.directory / "manifest.json"


def default_artifacts() -> CircuitArtifacts:
    override = os.environ.get(ARTIFACTS_ENVIRONMENT_VARIABLE)
    directory = Path(override) if override else REPOSITORY_ROOT / "circuits" / "artifacts"
    return CircuitArtifacts(directory)


@dataclass(frozen=True)
class JavaScriptTools:
    """The node binary and the snarkjs entry point."""

    node: str
    """Path of the `node` executable."""
    snarkjs: Path
    """snarkjs' CLI script (run as `node <snarkjs> ...`)."""


def javascript_tools() -> JavaScriptTools:
    """Locate node and snarkjs, or raise FileNotFoundError saying what is missing."""
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("`node` is not on PATH (snarkjs needs Node.js)")
    snarkjs = REPOSITORY_ROOT / "node_modules" / "snarkjs" / "build" / "cli.cjs"
    if not snarkjs.exists():
        raise FileNotFoundError(f"snarkjs not found at {snarkjs} (run `make setup`)")
    return JavaScriptTools(node=node, snarkjs=snarkjs)

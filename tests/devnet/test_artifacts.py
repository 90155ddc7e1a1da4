"""The committed contract artifacts are exactly what the compile script produces now."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from crossclear.devnet import repo_root


@pytest.mark.slow
def test_committed_artifacts_are_fresh(tmp_path: Path) -> None:
    root = repo_root()
    result = subprocess.run(
        ["node", str(root / "devnet" / "scripts" / "compile.mjs"), "--out", str(tmp_path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    fresh = sorted(path.name for path in tmp_path.glob("*.json"))
    committed = sorted(path.name for path in (root / "devnet" / "artifacts").glob("*.json"))
    assert fresh == committed, "artifact set changed: run `node devnet/scripts/compile.mjs`"
    for name in fresh:
        assert json.loads((tmp_path / name).read_text()) == json.loads((root / "devnet" / "artifacts" / name).read_text()), (
            f"devnet/artifacts/{name} is stale: run `node devnet/scripts/compile.mjs`"
        )


def test_every_contract_source_has_an_artifact() -> None:
    root = repo_root()
    sources = {path.stem for path in (root / "devnet" / "contracts").glob("*.sol")}
    artifacts = {path.stem for path in (root / "devnet" / "artifacts").glob("*.json")}
    assert sources <= artifacts
    assert {"Poseidon2", "Poseidon4"} <= artifacts
    if (root / "circuits" / "artifacts" / "CollateralClaimVerifier.sol").exists():
        assert "CollateralClaimVerifier" in artifacts

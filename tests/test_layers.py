"""Layers point one way: the import-linter contract in pyproject.toml holds (domain packages
never import the node, the API, the command line, the devnet, the demo or the dashboard)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_domain_packages_do_not_import_upper_layers() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout

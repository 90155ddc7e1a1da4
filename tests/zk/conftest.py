"""Fixtures for the ZK tests: the repository root and a `node` runner for JS references."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from collections.abc import Callable
from typing import Any

import pytest

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).resolve().parent / "js"


def run_node_json(script: str, payload: Any, timeout: float = 120.0) -> Any:
    """Run tests/zk/js/<script> with `payload` as JSON on stdin; return its JSON stdout."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH; the ZK tests need it (make setup installs the npm toolchain)")
    completed = subprocess.run(
        [node, str(JS_DIR / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPOSITORY_ROOT,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


NodeRunner = Callable[[str, Any], Any]


@pytest.fixture(scope="session")
def node_json() -> NodeRunner:
    return run_node_json

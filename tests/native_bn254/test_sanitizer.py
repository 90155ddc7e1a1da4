"""Runs `make sanitize` once: the C verifier rebuilt with AddressSanitizer and UBSan, and this
folder's tests run against that build in a child pytest. Any sanitizer report aborts it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("CROSSCLEAR_BN254_EXTENSION")), reason="already the sanitized run")
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_sanitizer_run_is_clean() -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    completed = subprocess.run(
        ["make", "--no-print-directory", "sanitize"],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = (completed.stdout + completed.stderr)[-4000:]
    assert completed.returncode == 0, report
    assert "ERROR: AddressSanitizer" not in report and "runtime error:" not in report, report
    assert " passed" in completed.stdout, report

"""Runs `make sanitize` once: the C verifier rebuilt with AddressSanitizer and UBSan, and this
folder's tests run against that build in a child pytest. Any sanitizer report aborts it. A
canary then proves the sanitizer is live: an over-read it must catch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
SANITIZED_BUILD = REPOSITORY / "build" / "sanitize" / "bn254" / "crossclear" / "zk"

#: Hands bn254_op_g1 a 40-byte buffer where it reads 64: a heap over-read.
CANARY = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("crossclear.zk._bn254", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
out = module.ffi.new("uint8_t[64]")
module.lib.bn254_op_g1(module.lib.BN254_OP_DOUBLE, out, bytes(40), bytes(64), bytes(32))
"""


def _environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}


@pytest.mark.slow
@pytest.mark.skipif(bool(os.environ.get("CROSSCLEAR_BN254_EXTENSION")), reason="already the sanitized run")
@pytest.mark.skipif(shutil.which("make") is None or shutil.which("cc") is None, reason="make or cc missing")
def test_sanitizer_run_is_clean() -> None:
    completed = subprocess.run(
        ["make", "--no-print-directory", "sanitize"],
        cwd=REPOSITORY,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = (completed.stdout + completed.stderr)[-4000:]
    assert completed.returncode == 0, report
    assert "ERROR: AddressSanitizer" not in report and "runtime error:" not in report, report
    assert " passed" in completed.stdout, report

    library = next(SANITIZED_BUILD.glob("_bn254*.so"))
    asan = subprocess.run(["cc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True).stdout.strip()
    canary = subprocess.run(
        [sys.executable, "-c", CANARY, str(library)],
        env={**_environment(), "LD_PRELOAD": asan, "PYTHONMALLOC": "malloc", "ASAN_OPTIONS": "detect_leaks=0"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert canary.returncode != 0 and "heap-buffer-overflow" in canary.stderr, canary.stderr[-2000:]

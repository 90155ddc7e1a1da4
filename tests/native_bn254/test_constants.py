"""The committed constants header is exactly what its generator derives from p, r and x."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NATIVE = Path(__file__).resolve().parents[2] / "native" / "bn254"


def test_constants_header_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, str(NATIVE / "gen_constants.py")], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert generated == (NATIVE / "bn254_constants.h").read_text(), "run native/bn254/gen_constants.py > bn254_constants.h"

"""Hypothesis settings for this folder: few examples (py_ecc is the slow side of each
comparison), fewer still under the sanitizer build."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

SANITIZED = bool(os.environ.get("CROSSCLEAR_BN254_EXTENSION"))


def examples(count: int) -> settings:
    return settings(
        max_examples=max(2, count // 4) if SANITIZED else count,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )

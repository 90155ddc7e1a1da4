"""The benchmark command runs and reports every figure the issue names (timings are not asserted)."""

from __future__ import annotations

import contextlib
import io
import json

from crossclear._cli import main


def test_bench_margin_reports_its_figures() -> None:
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert main(["bench", "margin", "--accounts", "2000", "--positions-per-account", "4", "--repeat", "1", "--json"]) == 0
    figures = json.loads(output.getvalue())
    for key in ("accounts", "positions", "scenarios", "kernel_seconds", "numpy_seconds", "accounts_per_second", "speedup_vs_numpy", "peak_rss_mb"):
        assert key in figures
    assert figures["accounts"] == 2000 and figures["positions"] == 8000 and figures["scenarios"] == 29
    assert figures["max_relative_disagreement_required"] < 1e-9
    incremental = figures["incremental"]
    assert incremental["accounts_recomputed"] == incremental["holders"] < 2000
    assert incremental["accounts_changed_outside_holders"] == 0

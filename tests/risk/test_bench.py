"""`crossclear bench risk --json` prints the figures the methodology docs quote."""

from __future__ import annotations

import json

import pytest

from crossclear._cli import main


def test_bench_risk_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    status = main([
        "bench", "risk", "--json", "--accounts", "3000", "--scenarios", "200", "--repeat", "1",
        "--backtest-accounts", "200", "--backtest-days", "20", "--workers", "2",
        "--distributed-accounts", "50", "--distributed-days", "20", "--forecast-underlyings", "2", "--forecast-days", "900",
    ])
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["accounts"] == 3000 and figures["scenarios"] == 200 and figures["tail_count"] == 2
    assert figures["es_kernel_seconds"] > 0 and figures["es_numpy_seconds"] > 0
    assert figures["threads_bitwise_identical"] is True
    assert figures["es_numpy_seconds_one_thread"] > 0 and figures["speedup_vs_numpy_one_core"] > 0 and figures["speedup_vs_numpy_all_cores"] > 0
    assert figures["max_relative_disagreement_mm"] <= 1e-9
    assert figures["backtest"]["account_days"] == 4000 and figures["backtest"]["account_days_per_second"] > 0
    forecast = figures["forecast"]
    assert forecast["underlyings"] == 2 and set(forecast["fit_seconds"]) == set(forecast["predict_ms"]) == {"ewma", "gjr_garch", "har", "lightgbm"}
    assert all(value >= 0 for value in forecast["fit_seconds"].values())
    distributed = figures["distributed"]
    assert distributed["workers"] == 2 and distributed["bitwise_identical"] is True and distributed["speedup_vs_one"] > 0
    assert distributed["cpu_seconds"] > 0 and 0 < distributed["core_share"] and len(distributed["load_average"]) == 2

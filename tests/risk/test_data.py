"""Real closes from arch, and the synthetic crypto generator against its calibration targets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crossclear._cli import main
from crossclear.risk import read_history
from crossclear.risk.data import load_arch_history
from crossclear.risk.synthetic import generate, statistics


def test_arch_closes_cover_the_crises() -> None:
    history = load_arch_history()
    assert history.names == ("SPX", "NDX", "WTI")
    assert history.dates[0] == "1999-01-04" and history.dates[-1] >= "2018-12-20"
    assert len(history.dates) > 4900
    assert np.all(np.isfinite(history.closes)) and np.all(history.closes > 0)
    spx = history.closes[:, 0]
    dates = np.array(history.dates)
    # 2008: the S&P 500 lost more than a third between September and the end of November.
    autumn = (dates >= "2008-09-01") & (dates <= "2008-11-30")
    assert spx[autumn].min() / spx[autumn][0] < 0.65
    # 2014-16: WTI fell from above 100 to below 30.
    wti = history.closes[:, 2]
    assert wti[(dates >= "2014-06-01") & (dates <= "2014-07-01")].max() > 100
    assert wti[(dates >= "2016-01-01") & (dates <= "2016-03-01")].min() < 30


def test_history_command_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "history.csv"
    assert main(["risk", "history", "arch", "--out", str(out), "--series", "SPX,WTI", "--from", "2008-01-01", "--to", "2008-12-31"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] > 240
    history = read_history(out)
    reference = load_arch_history(("SPX", "WTI"), "2008-01-01", "2008-12-31")
    assert history.dates == reference.dates and np.array_equal(history.closes, reference.closes)
    assert main(["risk", "history", "arch", "--out", str(out), "--series", "BTC"]) == 2
    assert "unknown series 'BTC'" in capsys.readouterr().err


def test_generator_is_seeded() -> None:
    a, b, c = generate(500, 1).history, generate(500, 1).history, generate(500, 2).history
    assert a.closes.tobytes() == b.closes.tobytes()
    assert a.closes.tobytes() != c.closes.tobytes()


def test_synthetic_paths_meet_the_calibration_targets() -> None:
    # The targets of docs/risk-v2.md, on the median over ten seeds of 3,000-day paths (about
    # eight years, the span the targets were read from), so no single lucky seed passes them.
    figures = [statistics(generate(3000, seed).history) for seed in range(10)]
    median = lambda values: float(np.median(values))  # noqa: E731
    assert 0.05 <= median([f.daily_std["ETH"] for f in figures]) <= 0.06
    assert 0.03 <= median([f.daily_std["BTC"] for f in figures]) <= 0.045
    assert median([f.kurtosis["ETH"] for f in figures]) > 10
    assert median([f.kurtosis["BTC"] for f in figures]) > 10
    assert -0.55 <= median([f.worst_day["ETH"] for f in figures]) <= -0.35
    assert min(f.worst_day["ETH"] for f in figures) <= -0.43
    assert 0.75 <= median([f.correlation["BTC/ETH"] for f in figures]) <= 0.9
    # The default seed's path, the one the docs' crypto backtest uses, meets them on its own.
    default = statistics(generate(3000, 2020).history)
    assert 0.045 <= default.daily_std["ETH"] <= 0.065 and default.kurtosis["ETH"] > 10 and default.worst_day["ETH"] <= -0.3


def test_synthetic_history_for_a_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "h.csv"
    assert main(["risk", "history", "synthetic", "--out", str(out), "--days", "50", "--columns", "ETH,BTC,WETH=ETH",
                 "--end-prices", "ETH=3000,BTC=60000", "--last-date", "2026-11-29"]) == 0
    history = read_history(out)
    assert history.names == ("ETH", "BTC", "WETH") and history.dates[-1] == "2026-11-29" and len(history.dates) == 50
    assert history.closes[-1, 0] == pytest.approx(3000.0) and history.closes[-1, 1] == pytest.approx(60000.0)
    plain = generate(50, 2020).history
    eth = plain.closes[:, plain.column("ETH")]
    assert np.allclose(np.diff(np.log(history.closes[:, 0])), np.diff(np.log(eth)), rtol=0, atol=1e-12)
    assert np.array_equal(history.closes[:, 2], eth)  # a copy, not rescaled
    capsys.readouterr()
    assert main(["risk", "history", "synthetic", "--out", str(out), "--columns", "DOGE"]) == 2
    assert "'DOGE' is not a generated series" in capsys.readouterr().err

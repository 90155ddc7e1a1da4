"""Backtests on arch's real closes: the report, its figures, and identical results however split."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from crossclear._cli import main
from crossclear.risk import books
from crossclear.risk._backtest_cli import load_spec
from crossclear.risk.backtest import run_local
from crossclear.risk.data import load_arch_history
from crossclear.risk._history import write_history


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """2007-2009 closes, the standard books and a RISK file with a one-year lookback (fast)."""
    root = tmp_path_factory.mktemp("backtest")
    history = load_arch_history(("SPX", "NDX", "WTI"), "2006-01-01", "2009-12-31")
    write_history(root / "history.csv", history.dates, history.names, history.closes)
    risk = books.standard_risk(history.names)
    risk["params"] = {"fhs_lookback_days": 250}
    (root / "risk.json").write_text(json.dumps(risk))
    (root / "accounts.json").write_text(json.dumps(books.standard_accounts(history.names)))
    return {"history": root / "history.csv", "risk": root / "risk.json", "accounts": root / "accounts.json", "root": root}


def test_backtest_writes_the_report(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["root"] / "report"
    status = main(["risk", "backtest", "--history", str(files["history"]), "--accounts", str(files["accounts"]), "--risk", str(files["risk"]),
                   "--from", "2007-06-01", "--to", "2009-06-30", "--out", str(out), "--forecasters", "har"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["accounts"] == 18 and report["days"] > 500
    assert set(report["models"]["grid"]) == {"isolated", "cross_siloed", "cross", "portfolio"}
    fhs = report["models"]["fhs"]["portfolio"]
    assert fhs["observations"] == report["days"] * 18
    assert 0.95 < fhs["coverage"] <= 1.0
    assert 0.0 <= fhs["kupiec_pof"]["p_value"] <= 1.0
    assert fhs["christoffersen"]["windows"] == 18 * len(range(0, report["days"], 2))
    assert sum(fhs["traffic_light_windows"].values()) == 18 * (report["days"] // 250)
    # 2008: filtered historical simulation raises margin as volatility rises; v1's grid does not move.
    assert report["procyclicality"]["fhs"]["portfolio"]["peak_to_trough"] > 2.0
    assert report["procyclicality"]["grid"]["portfolio"]["peak_to_trough"] == 1.0
    # v2 nets the hedged pair's legs, which v1's grid margins one underlying at a time.
    hedged = report["efficiency"]["hedged-pair"]["relative_to_isolated"]
    assert hedged["fhs portfolio"] < hedged["grid portfolio"]
    # FHS with HAR's volatility beside FHS with the EWMA's, on the same books and days.
    assert set(report["models"]) == {"grid", "fhs", "fhs:har"}
    side = report["forecasters"]
    assert side["fhs"]["forecaster"] == "ewma" and side["fhs"]["required_relative_to_ewma"] == 1.0
    assert side["fhs:har"]["forecaster"] == "har" and side["fhs:har"]["fallback_days"] == {"SPX": 0, "NDX": 0, "WTI": 0}
    assert 0.5 < side["fhs:har"]["required_relative_to_ewma"] < 2.0
    assert side["fhs:har"]["exceptions"] == report["models"]["fhs:har"]["portfolio"]["exceptions"]
    page = (out / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 3 and "FHS by volatility forecaster" in page


def test_realised_loss_is_the_restruck_books_loss(files: dict[str, Path]) -> None:
    spec = load_spec(files["history"], files["accounts"], files["risk"], "2008-09-01", "2008-10-31", "fhs")
    arrays = run_local(spec)
    row = spec.margin.account_ids.index("outright-long-1")
    spx = spec.history.closes[:, spec.history.column("SPX")]
    day = 10
    t = spec.first + day
    # Long 100 SPX perpetual at a reference price of 100: loses 100 * 100 * (1 - P(t+2)/P(t)).
    expected = -100.0 * 100.0 * (np.exp(np.log(spx[t + 2]) - np.log(spx[t])) - 1.0)
    assert arrays.loss[day, row] == pytest.approx(expected, rel=1e-12)


def test_shards_and_dask_workers_give_the_same_bits(files: dict[str, Path]) -> None:
    from crossclear.risk.distributed import client_for, run_on

    spec = load_spec(files["history"], files["accounts"], files["risk"], "2008-01-01", "2008-06-30", None, ("har",))
    assert spec.columns[-1] == ("fhs:har", "portfolio")
    one = run_local(spec)
    split = run_local(spec, account_shards=5, day_shards=3)
    with client_for(workers=2) as client:
        distributed = run_on(client, spec, shards=7)
    for other in (split, distributed):
        assert other.mm.tobytes() == one.mm.tobytes()
        assert other.required.tobytes() == one.required.tobytes()
        assert other.loss.tobytes() == one.loss.tobytes()


def test_backtest_days_need_the_lookback_and_the_horizon(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    common = ["risk", "backtest", "--history", str(files["history"]), "--accounts", str(files["accounts"]), "--risk", str(files["risk"]), "--out", str(files["root"] / "x")]
    assert main([*common, "--from", "2006-06-01", "--to", "2007-01-01"]) == 2
    error = capsys.readouterr().err.strip()
    assert "history.csv: row " in error and "the lookback needs L = 250" in error and len(error.splitlines()) == 1
    assert main([*common, "--from", "2012-01-01", "--to", "2013-01-01"]) == 2
    assert "no rows between 2012-01-01 and 2013-01-01" in capsys.readouterr().err

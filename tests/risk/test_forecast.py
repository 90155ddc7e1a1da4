"""Volatility forecasters: no look-ahead, arch's own forecast, bitwise fits across processes,
fallbacks to the EWMA, their use in FHS step 4, and the evaluation report."""

from __future__ import annotations

import json
import multiprocessing
import re
from pathlib import Path

import numpy as np
import pytest

from crossclear._cli import main
from crossclear.margin import MarginParams
from crossclear.margin._synthetic import synthetic_book, synthetic_instruments, synthetic_market
from crossclear.risk import FhsParams, compute_es, fhs
from crossclear.risk._history import write_history
from crossclear.risk.data import load_arch_history
from crossclear.risk.forecast import (
    FORECASTER_NAMES,
    ForecastError,
    ForecastSettings,
    GjrGarch,
    Fitted,
    combined_digest,
    fallback_forecast,
    fit_columns,
    forecaster,
    sigma_forecast,
    walk_forward,
)
from crossclear.risk.stats import diebold_mariano

SETTINGS = ForecastSettings(horizon=2, window=1000, refit_every=20)


@pytest.fixture(scope="module")
def spx() -> np.ndarray:
    """S&P 500 closes 1999-2008 (arch's bundled series)."""
    return load_arch_history(("SPX",), None, "2008-12-31").closes[:, 0].copy()


@pytest.mark.parametrize("name", FORECASTER_NAMES)
def test_a_forecast_never_sees_the_future(spx: np.ndarray, name: str) -> None:
    first, last, cut = 1200, 1259, 1230
    before = walk_forward(spx, name, first, last, SETTINGS)
    assert not before.fallback.any(), before.reasons
    perturbed = spx.copy()
    rng = np.random.default_rng(1)
    perturbed[cut + 1 :] *= np.exp(np.cumsum(rng.normal(0.0, 0.03, perturbed.size - cut - 1)))
    after = walk_forward(perturbed, name, first, last, SETTINGS)
    seen = cut - first + 1  # decision rows first..cut saw closes up to cut only
    assert after.variance[:seen].tobytes() == before.variance[:seen].tobytes()
    # The test can tell: later forecasts moved (not every one: GJR-GARCH's fitted alpha is about
    # 0 on the S&P 500, so a positive return leaves its variance where it was).
    assert np.mean(after.variance[seen:] != before.variance[seen:]) > 0.5


def test_gjr_garch_matches_arch_forecast(spx: np.ndarray) -> None:
    from arch import arch_model

    returns = np.diff(np.log(spx))
    model = GjrGarch()
    fitted = model.fit(returns[:2000], SETTINGS)
    window = returns[1000:2010] * 100.0
    params = np.array(fitted.params[:5])
    arch_forecast = arch_model(window, mean="Zero", vol="GARCH", p=1, o=1, q=1, dist="t", rescale=False).forecast(
        params, horizon=2, reindex=False
    )
    expected = arch_forecast.variance.to_numpy()[-1].sum() / 1e4
    # Ten returns after the fit: the recursion run forward equals arch's filter over them.
    assert model.forecast(fitted, returns[:2010], SETTINGS) == pytest.approx(expected, rel=1e-12)


def _digests(closes: np.ndarray) -> list[str]:
    """Every forecaster fitted as the node fits it (fit_columns)."""
    digests = []
    for name in FORECASTER_NAMES:
        fitted = fit_columns(closes[:, None], [0], name, SETTINGS, 1500)[0]
        assert isinstance(fitted, Fitted), fitted
        digests.append(fitted.digest())
    return digests


def test_fits_are_bitwise_the_same_in_another_process(spx: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    here = _digests(spx)
    # The other process starts its BLAS on one thread (as Dask's workers and a 1-core node do);
    # arch's GARCH fit would give other bits there if fits did not hold the BLAS to one thread.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        there = pool.apply(_digests, (spx,))
    assert here == there
    assert len(set(here)) == len(here)


def test_too_short_a_history_falls_back_to_ewma_with_one_line(spx: np.ndarray) -> None:
    returns = np.diff(np.log(spx[:300]))
    for name, minimum in (("gjr_garch", 500), ("lightgbm", 817)):
        with pytest.raises(ForecastError) as raised:
            forecaster(name).fit(returns, SETTINGS)
        message = str(raised.value)
        assert f"at least {minimum} daily returns" in message and "\n" not in message
    walk = walk_forward(spx[:320], "gjr_garch", 300, 310, SETTINGS)
    assert walk.fallback.all() and len(walk.reasons) == 1
    assert walk.variance[0] == fallback_forecast(np.diff(np.log(spx[:301])), SETTINGS)
    today = sigma_forecast(spx[:301, None], [0], "lightgbm", SETTINGS)
    assert today.fallbacks and today.fallbacks[0][0] == 0 and today.fits == (None,)
    assert today.sigma[0] == pytest.approx(np.sqrt(fallback_forecast(np.diff(np.log(spx[:301])), SETTINGS) / 2))


def test_a_flat_history_is_a_fallback_not_a_nan() -> None:
    flat = np.full((1200, 1), 50.0)
    for name in FORECASTER_NAMES:
        today = sigma_forecast(flat, [0], name, SETTINGS)
        assert today.fallbacks, name
        assert np.isfinite(today.sigma).all() and today.sigma[0] == 0.0


def test_fhs_with_a_forecast_volatility_agrees_and_keeps_the_floor() -> None:
    market = synthetic_market()
    instruments = synthetic_instruments(market)
    book = synthetic_book(market, instruments, 50, 6, seed=3)
    rng = np.random.default_rng(5)
    closes = 100.0 * np.exp(np.cumsum(rng.standard_t(4, (301, 3)) * 0.03, axis=0))
    params = FhsParams(fhs_lookback_days=300)
    sigma = np.array([0.05, 0.001, 0.04])  # the second is below the lookback's plain vol: floored
    kernel = compute_es(params, MarginParams(), market, instruments, book, closes, sigma_forecast=sigma)
    reference = fhs.compute_es(params, MarginParams(), market, instruments, book, closes, sigma_forecast=sigma)
    assert np.max(np.abs(kernel.mm - reference.mm) / (1.0 + np.abs(reference.mm))) <= 1e-9
    filtered = fhs.filter_returns(closes, params, sigma)
    plain = np.sqrt(np.mean(filtered.returns**2, axis=0))
    assert filtered.sigma_star.tolist() == [max(0.05, plain[0]), plain[1], max(0.04, plain[2])]
    # EWMA as the forecaster is v2 itself, bit for bit.
    ewma = compute_es(FhsParams(fhs_lookback_days=300, fhs_forecaster="ewma"), MarginParams(), market, instruments, book, closes)
    plain_v2 = compute_es(params, MarginParams(), market, instruments, book, closes)
    assert ewma.mm.tobytes() == plain_v2.mm.tobytes()


def test_diebold_mariano() -> None:
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1, 2000)
    same = diebold_mariano(noise, noise, 2)
    assert same.statistic == 0.0 and same.p_value == 1.0
    better = diebold_mariano(noise + 0.3, noise + rng.normal(0, 0.1, 2000), 2)
    assert better.statistic > 5 and better.p_value < 1e-6


def test_forecast_report_on_real_closes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = load_arch_history(("SPX", "WTI"), None, "2009-06-30")
    write_history(tmp_path / "h.csv", history.dates, history.names, history.closes)
    out = tmp_path / "report"
    status = main(["risk", "forecast", "--history", str(tmp_path / "h.csv"), "--from", "2008-06-01", "--to", "2009-03-31",
                   "--out", str(out), "--refit-every", "63", "--window", "1200"])
    assert status == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert report["forecasters"] == list(FORECASTER_NAMES) and report["underlyings"] == ["SPX", "WTI"]
    for name in ("SPX", "WTI"):
        rows = report["results"][name]["forecasters"]
        assert set(rows) == set(FORECASTER_NAMES)
        for model in FORECASTER_NAMES[1:]:
            assert rows[model]["fallbacks"] == 0, rows[model]["fallback_reasons"]
            assert rows[model]["qlike_minus_ewma"] == pytest.approx(rows[model]["qlike"] - rows["ewma"]["qlike"], abs=1e-4)
            assert 0.0 <= rows[model]["dm_qlike"]["p_value"] <= 1.0 and rows[model]["dm_qlike"]["lags"] >= 1
    page = (out / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 3  # one per underlying, the QLIKE bars
    assert main(["risk", "forecast", "--history", str(tmp_path / "h.csv"), "--from", "2008-06-01", "--to", "2009-03-31",
                 "--out", str(out), "--forecasters", "ewma,garch"]) == 2
    assert "unknown forecaster 'garch'" in capsys.readouterr().err


def test_params_hash_is_per_fit(spx: np.ndarray) -> None:
    returns = np.diff(np.log(spx))
    first = forecaster("har").fit(returns[:1500], SETTINGS)
    again = forecaster("har").fit(returns[:1500], SETTINGS)
    later = forecaster("har").fit(returns[:1501], SETTINGS)
    assert first.digest() == again.digest() != later.digest()
    assert combined_digest([first, later]) != combined_digest([later, first])


def test_risk_es_with_a_forecaster_too_short_falls_back_in_one_line(example: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(example["risk"].read_text())
    assert main(["risk", "es", "--risk", str(example["risk"]), "--accounts", str(example["accounts"]), "--history", str(example["history"])]) == 0
    plain = json.loads(capsys.readouterr().out)
    document["params"]["fhs_forecaster"] = "gjr_garch"
    example["risk"].write_text(json.dumps(document))
    assert main(["risk", "es", "--risk", str(example["risk"]), "--accounts", str(example["accounts"]), "--history", str(example["history"])]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().endswith("ETH: gjr_garch needs at least 500 daily returns to fit, the history has 10; its volatility is the EWMA's")
    assert len(captured.err.strip().splitlines()) == 1
    forecast = json.loads(captured.out)
    assert forecast["forecaster"]["name"] == "gjr_garch" and forecast["forecaster"]["fallbacks"][0]["underlying"] == "ETH"
    for mine, theirs in zip(forecast["accounts"], plain["accounts"]):
        assert mine["mm"] == pytest.approx(theirs["mm"], rel=1e-12)
    document["params"]["fhs_forecaster"] = "garch"
    example["risk"].write_text(json.dumps(document))
    assert main(["risk", "es", "--risk", str(example["risk"]), "--accounts", str(example["accounts"]), "--history", str(example["history"])]) == 2
    assert "params.fhs_forecaster: must be one of ewma, gjr_garch, har, lightgbm" in capsys.readouterr().err

"""The node's v2 margin: certified daily closes extend the HISTORY, the portfolio column is
struck per close (not per tick), and every node gets the same bits whatever order it applied
the same facts in, or after a restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from crossclear.margin import InstrumentKind, Mode
from crossclear.node import ClearingState, PositionRecord
from crossclear.node.config import ConfigError, load_config
from crossclear.risk._history import write_history
from crossclear.risk.live import DailyCloses, FhsPortfolio, date_of, day_of, parse_risk_file, risk_status_message, strike_digest
from crossclear.risk.synthetic import generate

from ..margin.conftest import EXAMPLES
from ..node.test_config import GOOD, write

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c0" * 20
CHAIN_A, CHAIN_B = 31001, 31002
DECIMALS = {"USDC": 6, "WETH": 18, "WBTC": 8}
DAY = 86_400
START = 20_000 * DAY  # 2024-10-04 00:00 UTC
ETH_CALL_EXPIRY = START + 30 * DAY


def history_file(tmp_path: Path, rows: int = 900) -> Path:
    """Synthetic ETH and BTC closes ending at the RISK file's prices, a WETH column as ETH's."""
    path = generate(rows, seed=11).history
    closes = path.closes[:, [path.column("ETH"), path.column("BTC")]]
    closes = closes * (np.array([3000.0, 60000.0]) / closes[-1])
    closes = np.column_stack([closes, closes[:, 0]])
    last = date_of(START // DAY - 1)
    import datetime

    end = datetime.date.fromisoformat(last)
    dates = [(end - datetime.timedelta(days=rows - 1 - k)).isoformat() for k in range(rows)]
    write_history(tmp_path / "history.csv", dates, ("ETH", "BTC", "WETH"), closes)
    return tmp_path / "history.csv"


def risk_file(tmp_path: Path, **params: object) -> Path:
    document = json.loads((EXAMPLES / "risk.json").read_text())
    document["params"] = {"fhs_lookback_days": 500, "forecast_refit_days": 2, **params}
    (tmp_path / "risk.json").write_text(json.dumps(document))
    return tmp_path / "risk.json"


def node(risk: Path, history: Path) -> tuple[ClearingState, FhsPortfolio]:
    from crossclear.risk.live import load_node_history

    margin, fhs = parse_risk_file(risk)
    names = (*margin.market.underlying_names, *margin.market.asset_names)
    state = ClearingState(margin.params, margin.market, {name: 10 * DAY for name in names}, DECIMALS)
    model = FhsPortfolio(load_node_history(history, margin, fhs), fhs, margin.params, margin.market)
    state.portfolio_model = model
    return state, model


Event = Callable[[ClearingState], object]


def prices(at: int, eth: float, btc: float) -> list[Event]:
    """One block of feed answers (the ETH feed prices WETH too, as on the devnet)."""
    return [
        lambda s: s.set_price("ETH", eth, at), lambda s: s.set_price("WETH", eth, at),
        lambda s: s.set_price("BTC", btc, at), lambda s: s.set_price("WBTC", btc, at), lambda s: s.set_price("USDC", 1.0, at),
    ]


def chain_a() -> list[Event]:
    """Prices over three UTC days (several answers a day)."""
    events: list[Event] = []
    for day, (eth, btc) in enumerate([(3000.0, 60000.0), (2900.0, 58000.0), (3100.0, 61000.0), (2950.0, 59000.0)]):
        for hour, wiggle in ((2, 1.0), (13, 1.01), (22, 0.995)):
            events += prices(START + day * DAY + hour * 3600, eth * wiggle, btc * wiggle)
    return events


def chain_b() -> list[Event]:
    """Collateral and positions, opened and changed across the days."""
    call = PositionRecord(CHAIN_B, "ETH", InstrumentKind.CALL, -3.0, 90.0, strike=3300.0, expiry_timestamp=ETH_CALL_EXPIRY)
    return [
        lambda s: s.set_collateral(ALICE, CHAIN_A, "USDC", 20_000 * 10**6),
        lambda s: s.set_position(ALICE, "a-1", PositionRecord(CHAIN_B, "ETH", InstrumentKind.PERP, 4.0, 3000.0)),
        lambda s: s.set_position(ALICE, "a-2", PositionRecord(CHAIN_B, "BTC", InstrumentKind.PERP, -0.2, 60000.0)),
        lambda s: s.set_collateral(BOB, CHAIN_A, "WETH", 5 * 10**18),
        lambda s: s.set_position(BOB, "b-1", call),
        lambda s: s.set_position(ALICE, "a-1", PositionRecord(CHAIN_B, "ETH", InstrumentKind.PERP, 6.0, 2950.0)),
        lambda s: s.set_collateral(CAROL, CHAIN_A, "USDC", 1_000 * 10**6),
        lambda s: s.set_position(CAROL, "c-1", PositionRecord(CHAIN_B, "BTC", InstrumentKind.PERP, 0.1, 59000.0)),
    ]


def fingerprint(state: ClearingState) -> bytes:
    snapshot = state.publish()
    result = snapshot.result
    return b"".join(np.ascontiguousarray(a).tobytes() for a in (result.im, result.mm, result.required, result.health, result.liquidatable))


def test_closes_finalise_when_a_later_day_starts_and_rows_need_every_feed() -> None:
    closes = DailyCloses(("ETH", "BTC"), after_day=10)
    closes.answer("ETH", 1.0, 11 * DAY + 5)
    closes.answer("ETH", 2.0, 11 * DAY + 9)
    closes.answer("BTC", 3.0, 11 * DAY + 7)
    closes.answer("ETH", 4.0, 12 * DAY + 1)  # ETH's day 11 is final; BTC's is not yet
    assert closes.rows == []
    closes.answer("BTC", 5.0, 13 * DAY)  # BTC skipped day 12: day 11 completes, day 12 never will
    assert [(day, [a.price for a in answers]) for day, answers in closes.rows] == [(11, [2.0, 3.0])]
    closes.answer("ETH", 6.0, 13 * DAY + 4)
    closes.answer("ETH", 7.0, 14 * DAY)
    closes.answer("BTC", 8.0, 14 * DAY + 1)
    assert [day for day, _ in closes.rows] == [11, 13]
    assert date_of(day_of(START + 5)) == "2024-10-04"


@pytest.mark.parametrize("forecaster", ["ewma", "gjr_garch"])
def test_every_order_of_the_same_facts_gives_the_same_bits(tmp_path: Path, forecaster: str) -> None:
    risk, history = risk_file(tmp_path, fhs_forecaster=forecaster), history_file(tmp_path)
    a, b = chain_a(), chain_b()
    orders = {
        "chain a first": a + b,
        "chain b first": b + a,
        "interleaved": [e for pair in zip(a, b + [lambda s: None] * (len(a) - len(b))) for e in pair],
    }
    results, statuses = {}, {}
    for label, events in orders.items():
        state, model = node(risk, history)
        for index, event in enumerate(events):
            event(state)
            if index % 7 == 0:
                state.publish()  # publishing at different points must not change where it ends
        results[label] = fingerprint(state)
        statuses[label] = (model.status, strike_digest(model.strike()))
    assert len(set(results.values())) == 1
    assert len(set(statuses.values())) == 1
    status = statuses["interleaved"][0]
    assert status.certified_closes == 3 and status.last_close == date_of(START // DAY + 2)
    assert status.forecaster == forecaster and (status.params_hash != "") == (forecaster != "ewma")
    assert status.fallbacks == 0, status.fallback_reason

    # A restart loads the stored prices feed by feed, then the positions: the same bits again.
    state, model = node(risk, history)
    by_feed = sorted(
        ((name, at, price) for name, at, price in _answers()), key=lambda item: (item[0], item[1])
    )
    for name, at, price in by_feed:
        state.set_price(name, price, at)
    for event in b:
        event(state)
    assert fingerprint(state) == results["chain a first"]
    assert (model.status, strike_digest(model.strike())) == statuses["interleaved"]


def _answers() -> list[tuple[str, int, float]]:
    recorder: list[tuple[str, int, float]] = []

    class Recorder:
        def set_price(self, name: str, price: float, at: int) -> None:
            recorder.append((name, at, price))

    for event in chain_a():
        event(Recorder())  # type: ignore[arg-type]
    return recorder


def test_margin_is_struck_per_close_not_per_tick(tmp_path: Path) -> None:
    state, model = node(risk_file(tmp_path), history_file(tmp_path))
    for event in prices(START + 3600, 3000.0, 60000.0) + chain_b():
        event(state)
    first = state.publish()
    alice = first.rows[ALICE]
    portfolio_mm = first.result.mm[alice, Mode.PORTFOLIO]
    assert portfolio_mm > 0 and model.status.certified_closes == 0 and first.portfolio is not None
    grid = ClearingState(state.pricing.params, parse_risk_file(EXAMPLES / "risk.json")[0].market, {}, DECIMALS)
    for event in prices(START + 3600, 3000.0, 60000.0) + chain_b():
        event(grid)
    assert grid.publish().result.mm[alice, Mode.PORTFOLIO] != portfolio_mm  # v1's grid asks something else

    for event in prices(START + 7200, 3300.0, 54000.0):  # a 10% move within the day
        event(state)
    tick = state.publish()
    assert tick.result.mm[alice, Mode.PORTFOLIO] == portfolio_mm  # struck at the close: unchanged
    assert tick.result.upnl[alice] != first.result.upnl[alice]  # but equity moved with the price
    assert tick.result.required[alice, Mode.PORTFOLIO] == max(0.0, 1.25 * portfolio_mm - tick.result.upnl[alice])

    for event in prices(START + DAY + 60, 3310.0, 54100.0):  # the next day starts: a certified close
        event(state)
    close = state.publish()
    assert model.status.certified_closes == 1 and model.status.last_close == date_of(START // DAY)
    assert close.result.mm[alice, Mode.PORTFOLIO] != portfolio_mm
    assert (first.portfolio.number, close.portfolio.number) == (0, 1)
    # Releasing collateral is judged against the v2 initial margin.
    after = close.simulate(ALICE, remove_collateral=[(CHAIN_A, "USDC", 1_000 * 10**6)])
    assert after.im[Mode.PORTFOLIO] == pytest.approx(close.margin(ALICE).im[Mode.PORTFOLIO], rel=1e-12)
    message = risk_status_message(model)
    assert message.model == "fhs" and message.certified_closes == 1 and message.strike_hash == model.status.strike_hash == strike_digest(close.portfolio)
    assert risk_status_message(None).model == "grid"


def test_a_forecaster_without_enough_history_falls_back_to_ewma(tmp_path: Path) -> None:
    state, model = node(risk_file(tmp_path, fhs_forecaster="lightgbm"), history_file(tmp_path, rows=700))
    for event in prices(START + 3600, 3000.0, 60000.0) + chain_b():
        event(state)
    snapshot = state.publish()
    assert model.status.fallbacks == 3  # ETH, BTC and WETH's haircut volatility
    assert "lightgbm needs at least 817 daily returns" in model.status.fallback_reason
    assert np.isfinite(snapshot.result.mm).all()


def test_node_config_takes_the_model_and_the_history(tmp_path: Path) -> None:
    history = history_file(tmp_path)
    risk = risk_file(tmp_path, fhs_forecaster="har")
    text = GOOD.replace(f"risk_file = \"{EXAMPLES / 'risk.json'}\"", f'risk_file = "{risk}"\nmodel = "fhs"\nhistory_file = "{history}"')
    config = load_config(write(tmp_path, text), environ={})
    assert config.risk_model == "fhs" and config.history_file == history
    with pytest.raises(ConfigError, match=r"margin\.history_file: is required when model = \"fhs\""):
        load_config(write(tmp_path, text.replace(f'history_file = "{history}"', "")), environ={})
    with pytest.raises(ConfigError, match=r'margin\.model: must be "grid" or "fhs"'):
        load_config(write(tmp_path, text.replace('model = "fhs"', 'model = "var"')), environ={})
    (tmp_path / "short.csv").write_text("date,ETH\n2024-01-01,1\n")
    with pytest.raises(ConfigError) as raised:
        load_config(write(tmp_path, text.replace(str(history), str(tmp_path / "short.csv"))), environ={})
    assert "margin.history_file:" in str(raised.value) and "no column for underlying 'BTC'" in str(raised.value)
    assert "\n" not in str(raised.value)

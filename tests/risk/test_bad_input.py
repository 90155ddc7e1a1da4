"""Every bad input stops `crossclear risk es` with exit status 2 and one line naming file, row and problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crossclear._cli import main


def _run(example: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["risk", "es", "--risk", str(example["risk"]), "--accounts", str(example["accounts"]), "--history", str(example["history"])])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _history_lines(example: dict[str, Path]) -> list[str]:
    return example["history"].read_text().splitlines()


def _write_history(example: dict[str, Path], lines: list[str]) -> None:
    example["history"].write_text("\n".join(lines) + "\n")


def _edit_row(example: dict[str, Path], row: int, text: str) -> None:
    lines = _history_lines(example)
    lines[row - 1] = text
    _write_history(example, lines)


def _set_params(example: dict[str, Path], **params: object) -> None:
    risk = json.loads(example["risk"].read_text())
    risk["params"].update(params)
    example["risk"].write_text(json.dumps(risk))


CASES = [
    ("missing column", lambda e: _edit_row(e, 1, "date,BTC"), "history.csv: row 1: no column for underlying 'ETH'"),
    ("too few rows", lambda e: _write_history(e, _history_lines(e)[:-1]), "history.csv: row 11: 10 price rows, the lookback needs L + 1 = 11"),
    ("zero price", lambda e: _edit_row(e, 4, "2024-03-05,0"), "history.csv: row 4: ETH price '0' is not positive"),
    ("negative price", lambda e: _edit_row(e, 4, "2024-03-05,-3"), "history.csv: row 4: ETH price '-3' is not positive"),
    ("nan price", lambda e: _edit_row(e, 5, "2024-03-06,nan"), "history.csv: row 5: ETH price 'nan' is not finite"),
    ("infinite price", lambda e: _edit_row(e, 5, "2024-03-06,inf"), "history.csv: row 5: ETH price 'inf' is not finite"),
    ("text price", lambda e: _edit_row(e, 5, "2024-03-06,abc"), "history.csv: row 5: ETH price 'abc' is not a number"),
    ("empty price", lambda e: _edit_row(e, 5, "2024-03-06,"), "history.csv: row 5: ETH price '' is not a number"),
    ("unsorted dates", lambda e: _edit_row(e, 6, "2024-03-02,3610"), "history.csv: row 6: date 2024-03-02 does not come after 2024-03-06"),
    ("repeated date", lambda e: _edit_row(e, 6, "2024-03-06,3610"), "history.csv: row 6: date 2024-03-06 does not come after 2024-03-06"),
    ("bad date", lambda e: _edit_row(e, 3, "04/03/2024,3480"), "history.csv: row 3: date '04/03/2024' is not an ISO date"),
    ("short row", lambda e: _edit_row(e, 3, "2024-03-04,3480,1"), "history.csv: row 3: 3 columns, the header has 2"),
    ("no date column", lambda e: _edit_row(e, 1, "day,ETH"), "history.csv: row 1: the first column must be \"date\""),
    ("unknown param", lambda e: _set_params(e, fhs_lamda=0.9), 'risk.json: params: unknown field "fhs_lamda"'),
    ("lambda out of range", lambda e: _set_params(e, fhs_lambda=1.0), "risk.json: params.fhs_lambda: must be strictly between 0 and 1"),
    ("confidence not a number", lambda e: _set_params(e, fhs_confidence="high"), "risk.json: params.fhs_confidence: must be a finite number"),
    ("fractional lookback", lambda e: _set_params(e, fhs_lookback_days=2.5), "risk.json: params.fhs_lookback_days: must be an integer >= 1"),
    ("apc not boolean", lambda e: _set_params(e, apc_vol_floor=1), "risk.json: params.apc_vol_floor: must be true or false"),
    ("stress unknown underlying", lambda e: _set_params(e, stress_scenarios=[{"name": "x", "returns": {"SOL": -0.5}, "weight": 1}]),
     'risk.json: params.stress_scenarios[0].returns: unknown underlying "SOL"'),
    ("stress missing weight", lambda e: _set_params(e, stress_scenarios=[{"name": "x", "returns": {}}]),
     'risk.json: params.stress_scenarios[0]: missing field "weight"'),
    ("v1 param still checked", lambda e: _set_params(e, im_multiplier=0.5), "risk.json: params.im_multiplier: must be >= 1"),
]


@pytest.mark.parametrize(("case", "damage", "message"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_exits_2_with_one_line(example: dict[str, Path], capsys: pytest.CaptureFixture[str], case: str, damage: object, message: str) -> None:
    damage(example)  # type: ignore[operator]
    status, out, err = _run(example, capsys)
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(example["risk"].parent) in lines[0]
    assert message in lines[0], lines[0]


def test_unused_underlying_needs_no_column(example: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    risk = json.loads(example["risk"].read_text())
    risk["underlyings"]["BTC"] = {"price": 60000, "vol": 0.5, "scan_range": 0.12}
    example["risk"].write_text(json.dumps(risk))
    status, out, _ = _run(example, capsys)
    assert status == 0 and json.loads(out)["accounts"][0]["id"] == "long-eth"


def test_longer_history_uses_its_last_rows(example: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(example, capsys)
    reference = json.loads(out)
    lines = _history_lines(example)
    _write_history(example, [lines[0], "2024-02-29,9999", *lines[1:]])
    status, out, _ = _run(example, capsys)
    assert status == 0 and json.loads(out)["accounts"] == reference["accounts"]

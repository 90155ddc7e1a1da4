"""`crossclear risk simulate`: the report, the same bits on Dask workers, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from crossclear._cli import main
from crossclear.risk import books

PATHS = 6


@pytest.fixture(scope="module")
def book_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard crypto books, with a short fhs lookback so paths are quick to make."""
    root = tmp_path_factory.mktemp("simulate")
    names = ("BTC", "ETH", "SOL")
    risk = books.standard_risk(names)
    risk["params"] = {"fhs_lookback_days": 60}
    (root / "risk.json").write_text(json.dumps(risk))
    (root / "accounts.json").write_text(json.dumps(books.standard_accounts(names)))
    return root


def _simulate(book_dir: Path, out: Path, *extra: str) -> list[str]:
    return ["risk", "simulate", "--paths", str(PATHS), "--books", str(book_dir), "--out", str(out), "--days", "8", *extra]


@pytest.fixture(scope="module")
def local_report(book_dir: Path) -> dict[str, object]:
    out = book_dir / "local"
    assert main(_simulate(book_dir, out)) == 0
    report: dict[str, object] = json.loads((out / "report.json").read_text())
    return report


def test_report_has_the_headline_per_mode_and_model(book_dir: Path, local_report: dict[str, object]) -> None:
    headline = local_report["headline"]
    assert isinstance(headline, list)
    assert [(row["model"], row["mode"]) for row in headline] == [
        ("grid", "isolated"), ("grid", "cross_siloed"), ("grid", "cross"), ("grid", "portfolio"), ("fhs", "portfolio"),
    ]
    for row in headline:
        assert row["collateral_required"] > 0
        assert 0 <= row["bad_debt_p95"] <= row["bad_debt_p99"] <= row["bad_debt_max"]
        assert 0 <= row["insurance_draw_p95"] <= row["insurance_draw_p99"]
        assert row["slippage_mean"] >= 0 and row["adl_events"] >= 0
    rows = {row["mode"] + " " + row["model"]: row for row in headline}
    # One silo per position in isolated, per (account, chain) across chains, per account otherwise.
    assert rows["isolated grid"]["silos"] > rows["cross_siloed grid"]["silos"] > rows["cross grid"]["silos"]
    assert rows["isolated grid"]["collateral_vs_isolated"] == 1.0
    per_path = local_report["per_path"]
    assert isinstance(per_path, dict) and len(per_path["fhs portfolio"]["bad_debt"]) == PATHS
    page = (book_dir / "local" / "report.html").read_text()
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 4
    assert "collateral required" in page and "bad debt p99" in page


def test_dask_workers_give_the_same_report(book_dir: Path, local_report: dict[str, object], capsys: pytest.CaptureFixture[str]) -> None:
    out = book_dir / "dask"
    assert main(_simulate(book_dir, out, "--workers", "2")) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["workers"] == 2
    distributed = json.loads((out / "report.json").read_text())
    distributed.pop("run")
    local = dict(local_report)
    local.pop("run")
    assert distributed == local


BAD_INPUT = [
    ("unknown books file", ["--books", "{root}/nope.json"], "nope.json: no such books file or directory"),
    ("zero paths", ["--paths", "0"], "--paths must be at least 1, got 0"),
    ("negative paths", ["--paths", "-5"], "--paths must be at least 1, got -5"),
    ("zero days", ["--days", "0"], "--days must be at least 1, got 0"),
    ("zero workers", ["--workers", "0"], "--workers must be at least 1, got 0"),
    ("negative fund", ["--fund", "-1"], "--fund must be at least 0"),
    ("books on an underlying the source lacks", ["--source", "synthetic", "--books", "{root}/spx.json"],
     "the books use 'SPX', which the synthetic price source does not have"),
]


@pytest.mark.parametrize(("case", "flags", "message"), BAD_INPUT, ids=[case[0] for case in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(
    book_dir: Path, capsys: pytest.CaptureFixture[str], case: str, flags: list[str], message: str
) -> None:
    (book_dir / "spx.json").write_text(json.dumps(books.standard_accounts(("SPX",))))
    arguments = {"--paths": "2", "--books": str(book_dir), "--out": str(book_dir / "bad"), "--days": "2"}
    extra: list[str] = []
    for flag, value in zip(flags[::2], flags[1::2]):
        value = value.format(root=book_dir)
        if flag in arguments:
            arguments[flag] = value
        else:
            extra += [flag, value]
    status = main(["risk", "simulate", *(item for pair in arguments.items() for item in pair), *extra])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0], lines[0]
    assert not (book_dir / "bad").exists()

"""The methodology document, the bundled example, the kernel and the numpy implementation agree."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from crossclear.margin import Mode, compute_margin, load_inputs, methodology

from .conftest import EXAMPLES, REPO

DOC = REPO / "docs" / "margin-methodology.md"


def _doc_block(tag: str) -> str:
    match = re.search(rf"```text {tag}\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/margin-methodology.md has no ```text {tag} block"
    return match.group(1)


def test_worked_example_figures_match_both_implementations() -> None:
    inputs = load_inputs(EXAMPLES / "risk.json", EXAMPLES / "accounts.json")
    row = inputs.account_ids.index("hedged-perps")
    for result in (
        compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book),
        methodology.compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book),
    ):
        computed = {
            "collateral_value": result.collateral_value[row],
            "upnl": result.upnl[row],
            "equity": result.equity[row],
            "health": result.health[row],
        }
        for mode in Mode:
            for figure, table in (("im", result.im), ("mm", result.mm), ("required", result.required)):
                computed[f"{mode.label}.{figure}"] = table[row, mode]
        figures = dict(line.split(" = ") for line in _doc_block("worked-example").strip().splitlines())
        assert len(figures) >= 10
        for name, documented in figures.items():
            assert computed[name] == pytest.approx(float(documented), abs=5e-7), name


def test_documented_table_is_what_the_cli_prints() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "crossclear", "margin", "--risk", str(EXAMPLES / "risk.json"),
         "--accounts", str(EXAMPLES / "accounts.json"), "--format", "table"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert printed == _doc_block("example-table")


def test_example_json_output_shape() -> None:
    import json

    printed = subprocess.run(
        [sys.executable, "-m", "crossclear", "margin", "--risk", str(EXAMPLES / "risk.json"),
         "--accounts", str(EXAMPLES / "accounts.json")],
        capture_output=True, text=True, check=True,
    ).stdout
    document = json.loads(printed)
    ids = [account["id"] for account in document["accounts"]]
    assert ids == ["hedged-perps", "covered-call", "naked-put", "expired-option", "cross-chain-collateral", "underwater"]
    for account in document["accounts"]:
        assert set(account) == {"id", "collateral_value", "upnl", "equity", "modes", "health", "liquidatable"}
        assert set(account["modes"]) == {"isolated", "cross_siloed", "cross", "portfolio"}
        for figures in account["modes"].values():
            assert set(figures) == {"im", "mm", "required"}
    underwater = document["accounts"][-1]
    assert underwater["liquidatable"] is True and underwater["equity"] < 0

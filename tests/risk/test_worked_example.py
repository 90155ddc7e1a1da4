"""The v2 worked example in docs/margin-methodology.md is what both implementations and the CLI give."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crossclear.risk import compute_es, fhs, load_es_inputs

from .conftest import doc_block


def test_worked_example_figures_match_both_implementations(example: dict[str, Path]) -> None:
    inputs = load_es_inputs(example["risk"], example["accounts"], example["history"])
    margin = inputs.margin
    figures = dict(line.split(" = ") for line in doc_block("v2-worked-example").strip().splitlines())
    assert inputs.fhs.tail_count == int(figures.pop("k"))
    filtered = fhs.filter_returns(inputs.closes, inputs.fhs)
    assert float(filtered.sigma_star[0]) == pytest.approx(float(figures.pop("sigma_star")), abs=5e-7)
    for result in (
        fhs.compute_es(inputs.fhs, margin.params, margin.market, margin.instruments, margin.book, inputs.closes),
        compute_es(inputs.fhs, margin.params, margin.market, margin.instruments, margin.book, inputs.closes),
    ):
        assert len(figures) == 10
        for name, documented in figures.items():
            account, field = name.split(".")
            row = margin.account_ids.index(account)
            assert getattr(result, field)[row] == pytest.approx(float(documented), abs=5e-7), name


def test_documented_table_is_what_the_cli_prints(example: dict[str, Path]) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "crossclear", "risk", "es", "--risk", str(example["risk"]),
         "--accounts", str(example["accounts"]), "--history", str(example["history"]), "--format", "table"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert printed == doc_block("v2-example-table")

"""Helpers for the margin tests: build inputs from small literal documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crossclear.margin import MarginInputs, MarginResult, compute_margin, methodology, parse_inputs

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def default_risk(**params: Any) -> dict[str, Any]:
    """ETH and BTC underlyings, USDC/WETH/WBTC collateral, defaults unless overridden."""
    return {
        "underlyings": {
            "ETH": {"price": 3000.0, "vol": 0.6, "scan_range": 0.15},
            "BTC": {"price": 60000.0, "vol": 0.5, "scan_range": 0.12},
        },
        "assets": {
            "USDC": {"price": 1.0, "base_haircut": 0.0, "depth": 1e9, "vol_daily": 0.0005},
            "WETH": {"price": 3000.0, "base_haircut": 0.02, "depth": 5e8, "vol_daily": 0.04},
            "WBTC": {"price": 60000.0, "base_haircut": 0.02, "depth": 8e8, "vol_daily": 0.03},
        },
        "params": params,
    }


def compute_both(risk: dict[str, Any], accounts: list[dict[str, Any]]) -> tuple[MarginInputs, MarginResult, MarginResult]:
    inputs = parse_inputs(risk, {"accounts": accounts})
    kernel = compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book)
    reference = methodology.compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book)
    return inputs, kernel, reference


@pytest.fixture
def risk() -> dict[str, Any]:
    return default_risk()

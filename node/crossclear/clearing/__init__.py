"""Clearing arithmetic shared by the node and the cascade simulator: variation margin in
integer base units and the default waterfall. Pure functions over explicit inputs."""

from crossclear.clearing.variation import MarkMove, settle_trade, settle_variation
from crossclear.clearing.waterfall import Holding, WaterfallStep, cover_shortfall, units_for_value

__all__ = ["Holding", "MarkMove", "WaterfallStep", "cover_shortfall", "settle_trade", "settle_variation", "units_for_value"]

"""The crossclear node: clearing state, configuration and the wiring of every component."""

from crossclear.node.clearing import (
    AccountMargin,
    ClearingError,
    ClearingState,
    CollateralLine,
    FeedPrice,
    PositionLine,
    PositionRecord,
    normalise_account,
)

__all__ = [
    "AccountMargin",
    "ClearingError",
    "ClearingState",
    "CollateralLine",
    "FeedPrice",
    "PositionLine",
    "PositionRecord",
    "normalise_account",
]

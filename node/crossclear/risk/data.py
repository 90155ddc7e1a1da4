"""Real daily closes shipped by the `arch` package, as a HISTORY.

`arch.data` bundles the S&P 500 and NASDAQ Composite (daily, 1999-01-04 to 2018-12-31) and
WTI crude (daily, 1986 to 2019, with gaps on holidays). They span the 2000 dot-com crash, 2008
and the 2014-16 oil collapse, and they are reachable without a network: the files sit in the
installed package.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import numpy as np

from crossclear._errors import UsageError
from crossclear.risk._model import History


@dataclass(frozen=True)
class Series:
    """One bundled series and the column we take from it."""

    module: str
    """Submodule of arch.data."""
    column: str
    """Column holding the daily close."""
    description: str
    """What the series is."""


#: HISTORY column name -> bundled series.
ARCH_SERIES: dict[str, Series] = {
    "SPX": Series("sp500", "Close", "S&P 500 index close, 1999-2018"),
    "NDX": Series("nasdaq", "Close", "NASDAQ Composite index close, 1999-2018"),
    "WTI": Series("wti", "DCOILWTICO", "WTI crude oil spot, USD per barrel, 1986-2019"),
}


def load_arch_history(names: tuple[str, ...] = ("SPX", "NDX", "WTI"), start: str | None = None, end: str | None = None) -> History:
    """The named series on the dates all of them have a close (inclusive start/end, ISO)."""
    import importlib

    import pandas as pd

    unknown = [name for name in names if name not in ARCH_SERIES]
    if unknown:
        raise UsageError(f"unknown series {unknown[0]!r} (arch ships: {', '.join(ARCH_SERIES)})")
    columns = []
    for name in names:
        series = ARCH_SERIES[name]
        frame = importlib.import_module(f"arch.data.{series.module}").load()
        columns.append(frame[series.column].rename(name))
    # Common dates only, and a date without a close in any series (WTI on a holiday) is dropped.
    joined = pd.concat(columns, axis=1, join="inner").dropna()
    joined = joined[joined.gt(0.0).all(axis=1)]
    if start is not None:
        joined = joined[joined.index >= pd.Timestamp(_iso(start))]
    if end is not None:
        joined = joined[joined.index <= pd.Timestamp(_iso(end))]
    if joined.empty:
        raise UsageError(f"no common dates for {', '.join(names)} between {start or 'the start'} and {end or 'the end'}")
    dates = tuple(timestamp.date().isoformat() for timestamp in joined.index)
    return History(dates=dates, names=tuple(names), closes=np.ascontiguousarray(joined.to_numpy(dtype=np.float64)))


def _iso(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"date {text!r} is not an ISO date (YYYY-MM-DD)") from None

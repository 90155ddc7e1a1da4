"""HISTORY files: CSV with header `date,<U1>,<U2>,...`, one row of daily closes per date.

Rows are numbered as a spreadsheet numbers them (the header is row 1), so an error message
points at the line to open. Every problem stops parsing with one line naming the file, the
row and what is wrong.
"""

from __future__ import annotations

import csv
import datetime
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from crossclear._errors import UsageError
from crossclear.risk._model import History


def _date(text: str, where: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError:
        raise UsageError(f"{where}: date {text!r} is not an ISO date (YYYY-MM-DD)") from None


def _price(text: str, where: str, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {name} price {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {name} price {text!r} is not finite")
    if value <= 0.0:
        raise UsageError(f"{where}: {name} price {text!r} is not positive")
    return value


def parse_history(lines: Iterable[str], label: str) -> History:
    """Parse CSV text lines; `label` names the file in errors."""
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise UsageError(f"{label}: row 1: empty file (expected a header date,<underlying>,...)")
    header = [cell.strip() for cell in header]
    if not header or header[0] != "date":
        raise UsageError(f"{label}: row 1: the first column must be \"date\", got {header[0]!r}")
    names = header[1:]
    if not names:
        raise UsageError(f"{label}: row 1: no underlying columns after \"date\"")
    for name in names:
        if not name:
            raise UsageError(f"{label}: row 1: an underlying column has no name")
        if names.count(name) > 1:
            raise UsageError(f"{label}: row 1: column {name!r} appears twice")
    dates: list[str] = []
    rows: list[list[float]] = []
    for number, cells in enumerate(reader, start=2):
        where = f"{label}: row {number}"
        if not cells or all(not cell.strip() for cell in cells):
            raise UsageError(f"{where}: empty row")
        if len(cells) != len(header):
            raise UsageError(f"{where}: {len(cells)} columns, the header has {len(header)}")
        date = _date(cells[0].strip(), where)
        if dates and date <= dates[-1]:
            raise UsageError(f"{where}: date {date} does not come after {dates[-1]} (rows must be oldest first, one per date)")
        dates.append(date)
        rows.append([_price(cell.strip(), where, name) for cell, name in zip(cells[1:], names)])
    if not rows:
        raise UsageError(f"{label}: row 2: no price rows")
    return History(dates=tuple(dates), names=tuple(names), closes=np.array(rows, dtype=np.float64).reshape(len(rows), len(names)))


def read_history(path: Path) -> History:
    """Parse a HISTORY file; raises UsageError naming the file, row and problem."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return parse_history(handle, str(path))
    except OSError as error:
        raise UsageError(f"{path}: cannot read: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text: {error.reason}") from None


def write_history(path: Path, dates: Sequence[str], names: Sequence[str], closes: np.ndarray) -> None:
    """Write a HISTORY file; prices keep every digit (repr round-trips a float)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["date", *names])
        for date, row in zip(dates, closes):
            writer.writerow([date, *(repr(float(value)) for value in row)])


def require_window(history: History, label: str, needed_names: Iterable[str], rows: int, end: int | None = None) -> None:
    """Check `history` has a column per needed underlying and `rows` rows up to row `end`."""
    for name in needed_names:
        if name not in history.names:
            raise UsageError(f"{label}: row 1: no column for underlying {name!r} (columns: {', '.join(history.names)})")
    available = len(history.dates) if end is None else end + 1
    if available < rows:
        last_row = available + 1
        raise UsageError(f"{label}: row {last_row}: {available} price rows, the lookback needs L + 1 = {rows}")

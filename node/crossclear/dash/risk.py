"""The risk page's data: the latest backtest report (`crossclear risk backtest` writes
report.json), re-read whenever the file changes. A missing or malformed file is a message on
the page, never an error page."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from crossclear.dash.topics import Topic

#: Keys a report must have for the page to render it (docs/risk-v2.md, "The backtest").
REQUIRED_KEYS = ("from", "to", "models")
MAX_REPORT_BYTES = 20 * 1024 * 1024


def load_report(path: Path) -> dict[str, Any]:
    """{"path", "report", "modified"} or {"path", "error"}: never raises for a bad file."""
    try:
        stat = path.stat()
        if stat.st_size > MAX_REPORT_BYTES:
            return {"path": str(path), "error": f"{path}: {stat.st_size} bytes is more than a backtest report holds"}
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {"path": str(path), "error": f"no backtest report at {path}: run `crossclear risk backtest ... --out DIR` and point --report at DIR/report.json"}
    except OSError as error:
        return {"path": str(path), "error": f"cannot read {path}: {error.strerror or error}"}
    except ValueError as error:
        return {"path": str(path), "error": f"{path} is not valid JSON: {error}"}
    if not isinstance(document, dict):
        return {"path": str(path), "error": f"{path}: a backtest report is a JSON object"}
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing or not isinstance(document.get("models"), dict):
        return {"path": str(path), "error": f"{path} is not a backtest report: missing {', '.join(missing) or 'models'}"}
    return {"path": str(path), "report": document, "modified": stat.st_mtime}


class RiskWatcher:
    """Publishes the report, again whenever its modification time or size changes."""

    def __init__(self, path: Path, topic: Topic, interval: float = 2.0) -> None:
        self.path = path
        self.topic = topic
        self.interval = interval
        self._seen: tuple[float, int] | None = None

    def _signature(self) -> tuple[float, int]:
        try:
            stat = self.path.stat()
        except OSError:
            return (-1.0, -1)
        return (stat.st_mtime, stat.st_size)

    async def run(self) -> None:
        while True:
            signature = await asyncio.to_thread(self._signature)
            if signature != self._seen:
                self._seen = signature
                document = await asyncio.to_thread(load_report, self.path)
                self.topic.publish(document | {"time": time.time()})
            await asyncio.sleep(self.interval)

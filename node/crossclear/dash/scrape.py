"""Reading a node's Prometheus `/metrics` page: one bounded HTTP GET, parsed with
prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from prometheus_client.parser import text_string_to_metric_families

from crossclear._tasks import wait_for

#: The most a metrics page may hold; a node's is a few kilobytes.
MAX_METRICS_BYTES = 4 * 1024 * 1024


class ScrapeError(Exception):
    """The metrics page could not be read or parsed; the message is one line for the page."""


@dataclass
class Samples:
    """The samples of one scrape: metric name to a list of (labels, value)."""

    by_name: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)

    def value(self, name: str, **labels: str) -> float | None:
        """The first sample of `name` whose labels include `labels`, or None."""
        for sample_labels, value in self.by_name.get(name, []):
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items()):
                return value
        return None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Every sample of `name`, keyed by one label's value."""
        return {labels.get(label, ""): value for labels, value in self.by_name.get(name, [])}

    def names(self) -> set[str]:
        return set(self.by_name)


def parse(text: str) -> Samples:
    """Prometheus text exposition into samples (raises ScrapeError on unparsable text)."""
    samples = Samples()
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.by_name.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    except (ValueError, TypeError, IndexError) as error:
        raise ScrapeError(f"unreadable metrics text: {error}") from None
    return samples


async def scrape(url: str, timeout: float = 1.5) -> Samples:
    """GET `url` (http only) and parse it; every failure is a ScrapeError naming the URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ScrapeError(f"{url}: only http:// metrics URLs are read")
    port = parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        body = await wait_for(_get(parts.hostname, port, path), timeout)
    except TimeoutError:
        raise ScrapeError(f"{url}: no answer within {timeout:.1f} s") from None
    except OSError as error:
        raise ScrapeError(f"{url}: {error.strerror or error}") from None
    return parse(body)


async def _get(host: str, port: int, path: str) -> str:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        raw = await reader.read(MAX_METRICS_BYTES + 1)
        while len(raw) <= MAX_METRICS_BYTES:
            more = await reader.read(MAX_METRICS_BYTES + 1 - len(raw))
            if not more:
                break
            raw += more
    finally:
        writer.close()
    if len(raw) > MAX_METRICS_BYTES:
        raise ScrapeError(f"http://{host}:{port}{path}: more than {MAX_METRICS_BYTES} bytes")
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    if " 200 " not in status_line + " ":
        raise ScrapeError(f"http://{host}:{port}{path}: answered {status_line or 'nothing'}")
    return body.decode("utf-8", "replace")

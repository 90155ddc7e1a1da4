"""What the shipped Prometheus rules and Grafana panels may name: the metrics a real node
exports (read from a node's own registry, so a renamed metric fails these tests), and a small
PromQL reader that finds the metric names and label keys an expression uses."""

from __future__ import annotations

import re

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crossclear.node.metrics import LiveReadings, NodeMetrics

#: Series Prometheus itself adds to every scrape, and the labels it attaches.
SCRAPE_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "count_over_time",
    "delta", "deriv", "exp", "floor", "histogram_quantile", "holt_winters", "idelta", "increase", "irate", "label_replace",
    "label_join", "last_over_time", "ln", "log2", "log10", "max_over_time", "min_over_time", "predict_linear", "rate", "resets",
    "round", "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector",
    "label_values",
}
AGGREGATIONS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset"}


def exported_metrics() -> dict[str, set[str]]:
    """Every series name a node's /metrics page holds, with its label keys (plus job, instance)."""
    readings = LiveReadings(
        connected_peers=lambda: 3, certificates=lambda: 10, equivocations=lambda: 0, state_height=lambda: 7,
        chain_heads=lambda: {"devnet-a": (100, 98)}, stale_feeds=lambda: 0, signing_halted=lambda: 0,
    )
    metrics = NodeMetrics(readings)
    # Labelled counters appear only once a label value was used.
    metrics.claims.labels(result="accepted").inc()
    metrics.releases.labels(result="signed").inc()
    metrics.clearing_events.labels(event="seize_signed").inc()
    metrics.margin_recompute_seconds.observe(0.001)
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    for labels in names.values():
        labels.update(TARGET_LABELS)
    return names | {name: set(labels) for name, labels in SCRAPE_SERIES.items()}


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metrics_used(expr: str) -> dict[str, set[str]]:
    """Metric names an expression reads, each with the label keys its selectors match on."""
    used: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(_STRING.sub('""', expr)):
        keys = {part.split("=")[0].split("!")[0].split("~")[0].strip() for part in matchers.split(",") if part.strip()}
        if name:
            used.setdefault(name, set()).update(keys)
    stripped = _STRING.sub('""', expr)
    stripped = _SELECTOR.sub(lambda m: m.group(1) or "", stripped)
    stripped = _GROUPING.sub(" ", stripped)
    stripped = re.sub(r"\[[^\]]*\]", " ", stripped)
    for token in _IDENTIFIER.findall(stripped):
        if token in FUNCTIONS or token in AGGREGATIONS or token in KEYWORDS:
            continue
        if re.fullmatch(r"\d+[smhdwy]?", token):
            continue
        used.setdefault(token, set())
    return used


def unknown_names(expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What in `expr` a node does not export: metric names, and label keys a metric lacks."""
    problems = []
    for name, keys in metrics_used(expr).items():
        if name not in exported:
            problems.append(f"metric {name}")
            continue
        for key in sorted(keys - exported[name]):
            problems.append(f"label {key} on {name}")
    return problems

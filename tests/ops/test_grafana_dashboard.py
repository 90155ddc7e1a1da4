"""The Grafana dashboard in ops/grafana: valid JSON Grafana imports, every panel queries
metrics (and labels) a node exports."""

from __future__ import annotations

import json
from pathlib import Path

from tests.ops.promql import exported_metrics, metrics_used, unknown_names

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "crossclear-node-set.json"


def _panels(document: dict) -> list[dict]:
    panels = []
    for panel in document["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def test_the_dashboard_is_importable_json() -> None:
    document = json.loads(DASHBOARD.read_text())
    assert document["uid"] and document["title"] and isinstance(document["schemaVersion"], int)
    assert [entry["pluginId"] for entry in document["__inputs"]] == ["prometheus"]
    panels = _panels(document)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], f"{panel['title']}: no query"
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_every_query_names_metrics_and_labels_a_node_exports() -> None:
    document = json.loads(DASHBOARD.read_text())
    exported = exported_metrics()
    queried: set[str] = set()
    for panel in _panels(document):
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$instance", "x")
            assert unknown_names(expr, exported) == [], f"{panel['title']}: {target['expr']}"
            queried |= set(metrics_used(expr))
    variable = document["templating"]["list"][0]["definition"]
    assert unknown_names(variable.removeprefix("label_values(").rsplit(",", 1)[0], exported) == []
    # Every gauge and counter a node exports has a panel.
    families = {name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum") for name in queried}
    for name in exported:
        if name.endswith("_created"):
            continue
        base = name.removesuffix("_total").removesuffix("_bucket").removesuffix("_count").removesuffix("_sum")
        assert base in families, f"no panel shows {name}"

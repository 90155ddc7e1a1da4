"""The Prometheus alert rules in ops/prometheus: valid for promtool, proven by its rule unit
tests, and written over metrics a node really exports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.ops.promql import exported_metrics, metrics_used, unknown_names

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "ops" / "prometheus" / "crossclear-alerts.yml"
RULE_TESTS = REPO / "ops" / "prometheus" / "crossclear-alerts.test.yml"
CONFIG = REPO / "ops" / "prometheus" / "prometheus.yml"
#: The alerts the operators asked for, by what they watch.
REQUIRED = {
    "certificates stalled": "CrossclearCertificatesStalled",
    "adapter degraded or halted": "CrossclearAdapterNotFollowing",
    "price stale": "CrossclearPriceStale",
    "liquidator errors": "CrossclearLiquidatorNotPaying",
    "evidence recorded": "CrossclearEquivocationEvidence",
    "signing halted": "CrossclearSigningHalted",
}


def _promtool() -> str | None:
    """Debian's promtool: installed, or unpacked from the prometheus package by `make test`."""
    unpacked = REPO / "build" / "tools" / "bin" / "promtool"
    return shutil.which("promtool") or (str(unpacked) if unpacked.exists() else None)


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_requested_alerts_exist_with_a_severity_and_words_for_the_operator() -> None:
    rules = {rule["alert"]: rule for rule in _rules()}
    for what, name in REQUIRED.items():
        assert name in rules, f"no alert for {what}"
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("page", "warning", "info"), name  # type: ignore[index]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name  # type: ignore[index]


def test_every_rule_reads_metrics_a_node_exports() -> None:
    exported = exported_metrics()
    for rule in _rules():
        expr = str(rule["expr"])
        assert metrics_used(expr), f"{rule['alert']}: reads no metric"
        assert unknown_names(expr, exported) == [], f"{rule['alert']}: {expr}"


def test_the_promql_reader_catches_a_misspelt_metric_or_label() -> None:
    exported = exported_metrics()
    assert unknown_names('rate(crossclear_claim_total{result="accepted"}[5m])', exported) == ["metric crossclear_claim_total"]
    assert unknown_names('crossclear_chain_head{network="a"} > 0', exported) == ["label network on crossclear_chain_head"]
    assert unknown_names('sum by (instance) (crossclear_gossip_peers{job="crossclear"}) == 0', exported) == []


def test_promtool_checks_the_rules_and_config_and_runs_the_rule_unit_tests() -> None:
    promtool = _promtool()
    if promtool is None:
        pytest.skip("promtool is not installed (make test unpacks it from Debian's prometheus package where one is offered)")
    for arguments in (["check", "rules", str(RULES)], ["check", "config", str(CONFIG)], ["test", "rules", str(RULE_TESTS)]):
        result = subprocess.run([promtool, *arguments], capture_output=True, text=True, cwd=RULES.parent, timeout=60)
        assert result.returncode == 0, f"promtool {' '.join(arguments)}:\n{result.stdout}{result.stderr}"
    # Every alert has a unit test that shows it firing.
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in _rules()}

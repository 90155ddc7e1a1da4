"""`crossclear bench api` runs and reports every figure it names (timings are not asserted).

The smoke run uses tiny states and skips the devnet claim run (`--claims 0`): it checks the
output's shape, not the machine's speed.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from crossclear._cli import main
from crossclear.rpc._bench import percentile, summary


def test_percentiles_are_nearest_rank_and_never_a_max_of_few_samples() -> None:
    samples = [float(value) for value in range(1, 101)]  # 1 .. 100
    assert percentile(samples, 0.5) == 50 and percentile(samples, 0.9) == 90 and percentile(samples, 0.99) == 99
    assert summary(samples[::-1], count_key="claims") == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "claims": 100}
    few = summary([3.0, 1.0, 2.0] * 3)
    assert few == {"p50": 2.0, "p90": None, "p99": None, "count": 9}
    assert summary([5.0] * 99)["p99"] is None and summary([5.0] * 10)["p90"] == 5.0


def test_bench_api_reports_its_figures() -> None:
    output = io.StringIO()
    arguments = [
        "bench", "api", "--accounts", "300", "--rate", "200", "--seconds", "0.5", "--concurrency", "2",
        "--tick-accounts", "500", "--ticks", "3", "--claims", "0", "--json",
    ]
    with contextlib.redirect_stdout(output):
        assert main(arguments) == 0
    figures = json.loads(output.getvalue())
    assert set(figures["get_margin_ms"]) == {"p50", "p99"} and figures["get_margin_rps"] > 0
    assert figures["latency_run"]["errors"] == 0 and figures["accounts"] == 300
    tick = figures["tick"]
    assert tick["accounts"] == 500 and tick["ticks"] >= 3
    assert 0 < tick["publish_ms"]["p50"] <= tick["publish_ms"]["max"]
    assert tick["get_margin_calls"] >= 100 and tick["get_margin_errors"] == 0
    assert 0 < tick["get_margin_p50_ms"] <= tick["get_margin_p99_ms"] <= tick["get_margin_max_ms"]
    assert isinstance(tick["targets_met"], bool) and tick["full_rebuild_ms"] > 0
    if figures["claim_cpu_ms"] is not None:  # the native backend is built
        assert 0 < figures["claim_cpu_ms"]["p50"] <= figures["claim_cpu_ms"]["p99"]
    assert figures["claim_credit_ms"] is None and figures["claim_proving"] is None


@pytest.mark.parametrize(
    "arguments",
    [["--tick-accounts", "-1"], ["--ticks", "0"], ["--provers", "0"], ["--claims", "-1"]],
)
def test_bad_arguments_fail_with_one_line(arguments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "api", *arguments]) == 2
    assert capsys.readouterr().err.count("\n") == 1

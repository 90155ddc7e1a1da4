"""The command line: `crossclear dash`, and `status` / `margin get` finding a node from the
devnet manifest when --node is omitted (and saying which one they used)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crossclear._cli import main
from tests.dash.harness import ALICE, FakeNode, free_port, get_json

COMMAND = [sys.executable, "-m", "crossclear"]


def _environment(state: Path) -> dict[str, str]:
    return dict(os.environ, CROSSCLEAR_DEVNET_STATE=str(state), PYTHONUNBUFFERED="1")


def _manifest(state: Path, nodes: list[dict[str, object]]) -> None:
    state.mkdir(parents=True, exist_ok=True)
    (state / "devnet.json").write_text(json.dumps({"version": 1, "chains": [], "nodes": nodes, "node_set": {"threshold": 3}}))


def test_status_and_margin_get_use_a_node_of_the_manifest_and_say_which(tmp_path: Path) -> None:
    fake = FakeNode().start()
    try:
        state = tmp_path / "state"
        # The first node listed is down: the first one that accepts connections is used.
        _manifest(state, [{"name": "node-0", "rpc": f"127.0.0.1:{free_port()}"}, {"name": "node-1", "rpc": fake.address}])
        status = subprocess.run([*COMMAND, "status"], capture_output=True, text=True, env=_environment(state), timeout=60)
        assert status.returncode == 0, status.stderr
        assert f"using node-1 at {fake.address} (from the devnet manifest {state / 'devnet.json'}" in status.stderr
        assert "chain devnet-a (31001)" in status.stdout
        margin = subprocess.run([*COMMAND, "margin", "get", ALICE, "--format", "json"], capture_output=True, text=True, env=_environment(state), timeout=60)
        assert margin.returncode == 0, margin.stderr
        assert json.loads(margin.stdout)["account"] == ALICE and "using node-1" in margin.stderr
        # Given --node, nothing is said about the choice.
        explicit = subprocess.run([*COMMAND, "status", "--node", fake.address], capture_output=True, text=True, env=_environment(state), timeout=60)
        assert explicit.returncode == 0 and explicit.stderr == ""
    finally:
        fake.stop()


def test_without_a_devnet_the_commands_say_where_they_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "none"
    status = subprocess.run([*COMMAND, "status"], capture_output=True, text=True, env=_environment(state), timeout=60)
    assert f"no devnet is running (no manifest at {state / 'devnet.json'}); trying 127.0.0.1:50051" in status.stderr
    monkeypatch.setenv("CROSSCLEAR_DEVNET_STATE", str(state))
    assert main(["dash"]) == 2
    error = capsys.readouterr().err
    assert "no --nodes given and no devnet is running" in error and len(error.strip().splitlines()) == 1
    for arguments, expected in (
        (["--nodes", "nonsense"], "is not HOST:PORT"),
        (["--nodes", "127.0.0.1:1,127.0.0.1:1"], "listed twice"),
        (["--nodes", "127.0.0.1:1", "--metrics", "ftp://x"], "not an http:// URL"),
        (["--nodes", "127.0.0.1:1", "--chain", "31001=http://127.0.0.1:8545,0x12"], "not a 0x vault address"),
        (["--nodes", "127.0.0.1:1", "--poll", "0"], "--poll 0.0"),
    ):
        assert main(["dash", *arguments]) == 2
        error = capsys.readouterr().err
        assert expected in error and len(error.strip().splitlines()) == 1, (arguments, error)


def test_dash_serves_a_node_set_and_stops_on_sigterm(tmp_path: Path) -> None:
    fake = FakeNode().start()
    log = (tmp_path / "dash.log").open("w")
    process = subprocess.Popen([*COMMAND, "dash", "--nodes", fake.address, "--port", "0"], stdout=log, stderr=subprocess.STDOUT, env=_environment(tmp_path / "none"))
    try:
        deadline = time.monotonic() + 60
        while "serving http://" not in (tmp_path / "dash.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "dash.log").read_text()
            time.sleep(0.1)
        url = (tmp_path / "dash.log").read_text().split("serving ", 1)[1].split(" ", 1)[0].rstrip("/")
        status, health = get_json(url + "/healthz")
        assert status == 200 and health == {"ok": True, "nodes_up": 1, "nodes": 1}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
        fake.stop()

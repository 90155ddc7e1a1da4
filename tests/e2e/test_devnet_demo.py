"""`crossclear devnet up` and `crossclear demo` as a person runs them: separate processes for
the chains, the four nodes and the liquidator; one node is killed first, and the demo still
completes on the remaining three. `devnet down` leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
UP_TIMEOUT_SECONDS = 180


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive for our purpose: it holds no port and runs no code.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_demo_completes_with_one_node_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    environment = dict(os.environ, CROSSCLEAR_DEVNET_STATE=str(state), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "crossclear"]
    up_log = (tmp_path / "up.log").open("w")
    up = subprocess.Popen([*command, "devnet", "up", "--chains", "2"], stdout=up_log, stderr=subprocess.STDOUT, env=environment)
    manifest: dict = {}
    try:
        deadline = time.monotonic() + UP_TIMEOUT_SECONDS
        while "running; Ctrl-C" not in (tmp_path / "up.log").read_text():
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "devnet up did not come up in time:\n" + (tmp_path / "up.log").read_text()
            time.sleep(0.5)
        manifest = json.loads((state / "devnet.json").read_text())
        assert len(manifest["nodes"]) == 4 and len(manifest["chains"]) == 2

        status = subprocess.run([*command, "status", "--node", manifest["nodes"][0]["rpc"]], capture_output=True, text=True, env=environment, timeout=60)
        assert status.returncode == 0 and "chain devnet-a" in status.stdout, status.stdout + status.stderr

        os.kill(manifest["nodes"][3]["pid"], signal.SIGKILL)
        demo = subprocess.run([*command, "demo"], capture_output=True, text=True, env=environment, timeout=400)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        for line in (
            "3 of 4 nodes up (quorum 3)", "credited on 3 nodes", "every long has a short", "capital efficiency", "he defaults",
            "the liquidator took them by auction", "the waterfall covered what Bob still owed", "paid 3,000.00 USDC to Carol",
            "vault paid 1,000.00 USDC to Alice", "demo complete",
        ):
            assert line in demo.stdout, f"{line!r} missing from the demo:\n{demo.stdout}"

        # The books balance on every live node after the whole story: none stopped signing.
        for node in manifest["nodes"][:3]:
            after = subprocess.run([*command, "status", "--node", node["rpc"]], capture_output=True, text=True, env=environment, timeout=60)
            assert after.returncode == 0 and "SIGNING HALTED" not in after.stdout, after.stdout + after.stderr

        gone = subprocess.run([*command, "margin", "get", "0x" + "12" * 20, "--node", manifest["nodes"][3]["rpc"]], capture_output=True, text=True, env=environment, timeout=60)
        assert gone.returncode == 2 and "is unreachable" in gone.stderr and len(gone.stderr.strip().splitlines()) == 1
    finally:
        down = subprocess.run([*command, "devnet", "down"], capture_output=True, text=True, env=environment, timeout=120)
        up.wait(timeout=60)
        up_log.close()
    assert down.returncode == 0, down.stderr
    pids = [node["pid"] for node in manifest.get("nodes", [])] + [chain["pid"] for chain in manifest.get("chains", [])]
    if manifest.get("liquidator"):
        pids.append(manifest["liquidator"]["pid"])
    time.sleep(1)
    assert [pid for pid in pids if _alive(pid)] == []

"""`crossclear devnet up | status | down` as separate processes, the way people run them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from crossclear.chains import ChainAdapter, VaultRoot, create_adapter
from crossclear.chains.conformance import run
from crossclear.devnet import repo_root
from crossclear.zk import zero_values


def _crossclear(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossclear", *args], capture_output=True, text=True, timeout=timeout)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class _Up:
    """A `devnet up` running in the background, killed with everything it started at the end.

    Chains only (`--nodes 0`) unless `extra` says otherwise: these tests are about the chains'
    lifecycle; tests/e2e/test_devnet_demo.py runs the devnet with its node processes."""

    def __init__(self, state_dir: Path, *extra: str) -> None:
        self.state_dir = state_dir
        self.manifest_path = state_dir / "devnet.json"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crossclear", "devnet", "up", "--state-dir", str(state_dir), "--nodes", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.chain_pids: list[int] = []

    def wait_until_up(self, timeout: float = 90) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        while not self.manifest_path.exists():
            assert self.process.poll() is None, self.process.communicate()[0]
            assert time.monotonic() < deadline, "devnet did not come up"
            time.sleep(0.2)
        manifest: dict[str, object] = json.loads(self.manifest_path.read_text())
        chains = manifest["chains"]
        assert isinstance(chains, list)
        self.chain_pids = [chain["pid"] for chain in chains]
        return manifest

    def kill_everything(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        for pid in self.chain_pids:
            if not _gone(pid):
                os.killpg(pid, signal.SIGKILL)


async def _connect_and_read_root(adapter: ChainAdapter) -> VaultRoot:
    try:
        await adapter.connect()
        return await adapter.vault_root((await adapter.head()).number)
    finally:
        await adapter.close()


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "state"


@pytest.mark.slow
def test_up_status_second_up_and_down(state_dir: Path) -> None:
    up = _Up(state_dir, "--chains", "2")
    try:
        manifest = up.wait_until_up()
        chains = manifest["chains"]
        assert isinstance(chains, list) and [c["chain_id"] for c in chains] == [31001, 31002]
        assert all(c["contracts"]["vault"] and c["adapter_config"]["finality"] == 2 for c in chains)
        verifier_built = (repo_root() / "devnet" / "artifacts" / "CollateralClaimVerifier.json").exists()
        assert all((c["contracts"]["verifier"] is not None) == verifier_built for c in chains)

        for chain in chains:  # the manifest's adapter tables work as they are
            adapter = create_adapter(chain["network"], chain["adapter_config"])
            state = run(_connect_and_read_root(adapter))
            assert state.leaf_count == 0 and state.root == zero_values()[-1]

        status = _crossclear("devnet", "status", "--state-dir", str(state_dir))
        assert status.returncode == 0 and "devnet-a" in status.stdout and "devnet-b" in status.stdout

        again = _crossclear("devnet", "up", "--state-dir", str(state_dir))
        assert again.returncode == 1 and "already running" in again.stderr

        down = _crossclear("devnet", "down", "--state-dir", str(state_dir))
        assert down.returncode == 0 and "stopped" in down.stdout
        assert up.process.wait(timeout=30) == 0
        output = up.process.stdout.read() if up.process.stdout else ""
        assert "network" in output and "devnet-b" in output  # the closing table
        assert all(_gone(pid) for pid in up.chain_pids)
        assert not up.manifest_path.exists()

        after = _crossclear("devnet", "status", "--state-dir", str(state_dir))
        assert after.returncode == 1 and "no devnet is running" in after.stdout
    finally:
        up.kill_everything()


@pytest.mark.slow
def test_ctrl_c_stops_everything_cleanly(state_dir: Path) -> None:
    up = _Up(state_dir, "--chains", "1")
    try:
        up.wait_until_up()
        up.process.send_signal(signal.SIGINT)
        assert up.process.wait(timeout=30) == 0
        assert all(_gone(pid) for pid in up.chain_pids)
        assert not up.manifest_path.exists()
    finally:
        up.kill_everything()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "17"], "--nodes 17: choose between 0 and 16"),
        (["--chains", "0"], "--chains 0: choose between 1 and 8"),
        (["--block-time", "0"], "--block-time 0: must be a positive whole number"),
    ],
)
def test_bad_up_arguments_exit_2_with_one_line_and_start_nothing(state_dir: Path, args: list[str], message: str) -> None:
    result = _crossclear("devnet", "up", "--state-dir", str(state_dir), *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"crossclear: error: {message}")
    assert not (state_dir / "devnet.json").exists()


def test_down_when_nothing_runs_is_harmless(state_dir: Path) -> None:
    result = _crossclear("devnet", "down", "--state-dir", str(state_dir))
    assert result.returncode == 0 and "no devnet is running" in result.stdout

"""The anvil launcher: starts, answers, restarts on its port, and never leaves a process behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from crossclear._net import LOOPBACK
from crossclear.devnet import Anvil, AnvilError


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_context_manager_starts_and_stops() -> None:
    with Anvil(chain_id=4242) as anvil:
        pid = anvil.pid
        assert pid is not None and anvil.running
        assert anvil.rpc("eth_chainId") == hex(4242)
        assert anvil.rpc_url == f"http://{LOOPBACK}:{anvil.port}"
        anvil.mine(3)
        assert anvil.block_number() == 3
    assert _gone(pid) and not anvil.running


def test_restart_keeps_the_port_and_with_a_state_file_the_chain(tmp_path: Path) -> None:
    with Anvil(chain_id=4243, state_path=tmp_path / "state.json") as anvil:
        anvil.mine(4)
        block_hash = anvil.rpc("eth_getBlockByNumber", ["0x4", False])
        port, first_pid = anvil.port, anvil.pid
        anvil.stop()
        assert not anvil.running and first_pid is not None and _gone(first_pid)
        with pytest.raises(OSError):
            socket.create_connection((LOOPBACK, port), timeout=0.5).close()
        anvil.start()
        assert anvil.port == port and anvil.pid != first_pid
        assert anvil.rpc("eth_getBlockByNumber", ["0x4", False]) == block_hash


def test_block_time_mines_on_its_own() -> None:
    with Anvil(chain_id=4244, block_time=0.2) as anvil:
        first = anvil.block_number()
        deadline = time.monotonic() + 5
        while anvil.block_number() == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert anvil.block_number() > first


def test_a_taken_port_is_a_clear_error_and_leaves_nothing() -> None:
    with Anvil(chain_id=4245) as occupant:
        squatter = Anvil(chain_id=4246, port=occupant.port)
        with pytest.raises(AnvilError, match=f"port {occupant.port}"):
            squatter.start()
        assert not squatter.running
        squatter.close()


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="chain id must be positive"):
        Anvil(chain_id=0)
    with pytest.raises(ValueError, match="block time must be positive"):
        Anvil(chain_id=1, block_time=0)


def test_a_missing_binary_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSCLEAR_ANVIL", str(tmp_path / "no-anvil-here"))
    with pytest.raises(AnvilError, match="anvil not found at .*no-anvil-here"):
        Anvil(chain_id=1).start()


@pytest.mark.parametrize("ending", ["forgotten", "killed"])
def test_the_chain_dies_with_its_parent_however_the_parent_ends(ending: str) -> None:
    # A child Python starts anvil and then either exits without stopping it (the exit hook
    # must) or is SIGKILLed (the parent-death signal must).
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from crossclear.devnet import Anvil
        anvil = Anvil(chain_id=4247).start()
        print(anvil.pid, flush=True)
        if {ending!r} == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    anvil_pid = int(child.stdout.split()[0])
    try:
        psutil.Process(anvil_pid).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass
    assert _gone(anvil_pid)
    if not _gone(anvil_pid):  # pragma: no cover - only when the assertion above failed
        os.kill(anvil_pid, 9)

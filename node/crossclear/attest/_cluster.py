"""Launching a node set as separate processes (benchmark and tests): on 127.0.0.1, or each
in its own network namespace (`hosts` and `launchers`, see tests/netns)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from crossclear._net import LOOPBACK, free_tcp_port
from crossclear.attest._keys import NodeKey
from crossclear.p2p import now_ms, peer_id_for


def deterministic_keys(count: int) -> list[NodeKey]:
    """Devnet keys 0x0101..., 0x0202...: fixed so peer ids and addresses are reproducible."""
    return [NodeKey(bytes([index + 1]) * 32) for index in range(count)]


@dataclass
class ProcessCluster:
    """N node processes sharing synthetic chains; stores and logs under `folder`."""

    folder: Path
    size: int
    chains: Sequence[dict[str, Any]]
    byzantine: frozenset[int] = frozenset()
    hosts: Sequence[str] = ()
    """Each node's listen address (default 127.0.0.1 for all)."""
    launchers: Sequence[Sequence[str]] = ()
    """Each node's command prefix (e.g. `ip netns exec NAME`; default none)."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Config keys set on every node (see crossclear.attest._process)."""
    node_overrides: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Config keys set on one node."""
    configs: list[dict[str, Any]] = field(default_factory=list)
    processes: list[subprocess.Popen[str] | None] = field(default_factory=list)
    connected: list[int] = field(default_factory=list)
    """Peers each node reported connected before the chains were released."""
    _logs: list[IO[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        keys = deterministic_keys(self.size)
        hosts = list(self.hosts) or [LOOPBACK] * self.size
        p2p_ports = [free_tcp_port() for _ in keys]
        sync_ports = [free_tcp_port() for _ in keys]
        members = [key.address.hex() for key in keys]
        for index, key in enumerate(keys):
            config = {
                "key": key.secret.hex(),
                "members": members,
                "store": str(self.folder / f"node{index}.sqlite"),
                "listen_host": hosts[index],
                "p2p_port": p2p_ports[index],
                "bootstrap": [
                    {"peer_id": peer_id_for(other.secret), "port": p2p_ports[j], "host": hosts[j]}
                    for j, other in enumerate(keys)
                    if j != index
                ],
                "sync_port": sync_ports[index],
                "sync_peers": [f"{hosts[j]}:{port}" for j, port in enumerate(sync_ports) if j != index],
                "chains": list(self.chains),
                "byzantine": index in self.byzantine,
                "start_file": str(self.folder / "start.json"),
                "stats_file": str(self.folder / f"node{index}.stats.json"),
                "applied_file": str(self.folder / f"node{index}.applied"),
            }
            config.update(self.overrides)
            config.update(self.node_overrides.get(index, {}))
            self.configs.append(config)
        self.processes = [None] * self.size
        self.connected = [0] * self.size

    def store_path(self, index: int) -> Path:
        return Path(self.configs[index]["store"])

    def start(self, index: int) -> None:
        config_path = self.folder / f"node{index}.json"
        config_path.write_text(json.dumps(self.configs[index]))
        log = open(self.folder / f"node{index}.log", "a")  # noqa: SIM115 - closed in stop_all
        self._logs.append(log)
        launcher = list(self.launchers[index]) if self.launchers else []
        self.processes[index] = subprocess.Popen(
            [*launcher, sys.executable, "-m", "crossclear.attest._process", str(config_path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_for_line(self, index: int, expected: str, timeout_seconds: float = 60.0) -> str:
        """Wait for a line starting with `expected`; returns the whole line."""
        process = self.processes[index]
        assert process is not None and process.stdout is not None
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.strip().startswith(expected):
                return line.strip()
            if not line and process.poll() is not None:
                log = (self.folder / f"node{index}.log").read_text()[-2000:]
                raise RuntimeError(f"node {index} exited with {process.returncode} before '{expected}': {log}")
        raise TimeoutError(f"node {index} did not print '{expected}' within {timeout_seconds:.0f} s")

    def start_all_and_go(self, lead_ms: int = 300) -> int:
        """Start every node, wait until all are connected, then release the chains; returns genesis ms."""
        for index in range(self.size):
            self.start(index)
        for index in range(self.size):
            self.wait_for_line(index, "ready")
        for index in range(self.size):
            self.connected[index] = int(self.wait_for_line(index, "connected").split()[1])
        genesis_ms = now_ms() + lead_ms
        (self.folder / "start.json").write_text(json.dumps({"genesis_ms": genesis_ms}))
        return genesis_ms

    def kill(self, index: int) -> None:
        process = self.processes[index]
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self, index: int, timeout_seconds: float = 15.0) -> int:
        process = self.processes[index]
        if process is None:
            return 0
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.processes[index] = None
        return process.returncode

    def stop_all(self) -> list[int]:
        codes = [self.stop(index) for index in range(self.size)]
        for log in self._logs:
            log.close()
        self._logs = []
        return codes

    def stats(self, index: int) -> dict[str, Any]:
        path = Path(self.configs[index]["stats_file"])
        result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
        return result

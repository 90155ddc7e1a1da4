"""The devnet's nodes and liquidator: separate processes on 127.0.0.1, one config each.

Each node gets its own key, SQLite file, gRPC, libp2p, Sync and metrics ports, and the
others as bootstrap peers; the liquidator watches every node and pays seized collateral to a
devnet account. Processes die with `devnet up` (parent-death signal), so nothing outlives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from crossclear._net import wait_for_port
from crossclear.devnet.accounts import DevAccount
from crossclear._paths import repo_root
from crossclear.devnet.anvil import _set_parent_death_signal
from crossclear.devnet.deploy import Deployment
from crossclear.node.topology import DeployedChain, allocate_ports, write_node_configs

#: The devnet clearinghouse's domain; claims must be proven for it.
DEVNET_CLEARINGHOUSE_DOMAIN = 0xC105C1EA
#: How long a node may take to connect to every chain and open its gRPC port.
NODE_START_TIMEOUT_SECONDS = 90.0


@dataclass
class ManagedProcess:
    """A child process with its log."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace_seconds: float = 5.0) -> None:
        if self.running:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


def _spawn(name: str, arguments: list[str], log_path: Path) -> ManagedProcess:
    log = open(log_path, "ab")
    environment = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "crossclear", *arguments],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=environment,
        cwd=repo_root(),
        start_new_session=True,
        preexec_fn=_set_parent_death_signal,
    )
    return ManagedProcess(name, process, log_path, log)


@dataclass
class RunningNodes:
    """The node and liquidator processes of a devnet."""

    nodes: list[ManagedProcess] = field(default_factory=list)
    liquidator: ManagedProcess | None = None

    def stop(self) -> None:
        for managed in [*self.nodes, *([self.liquidator] if self.liquidator else [])]:
            managed.stop()

    def manifest(self) -> dict[str, Any]:
        """The manifest's `nodes` and `liquidator` entries."""
        return {
            "nodes": [dict(node.details, pid=node.process.pid, log=str(node.log_path)) for node in self.nodes],
            "liquidator": None
            if self.liquidator is None
            else dict(self.liquidator.details, pid=self.liquidator.process.pid, log=str(self.liquidator.log_path)),
        }


def start_nodes(
    chains: list[DeployedChain],
    keys: tuple[DevAccount, ...],
    liquidator: DevAccount,
    state_dir: Path,
    progress: Callable[[str], None] = print,
    insurance_fund: str | None = None,
) -> RunningNodes:
    """Write the configs, start one process per key and the liquidator, wait until all serve."""
    directory = state_dir / "nodes"
    ports = allocate_ports(len(keys))
    risk_file = repo_root() / "examples" / "risk.json"
    paths = write_node_configs(
        directory, chains, keys, risk_file, DEVNET_CLEARINGHOUSE_DOMAIN, ports, liquidation_recipient=liquidator.address,
        insurance_fund=insurance_fund,
    )
    running = RunningNodes()
    try:
        started = time.monotonic()
        for index, (path, key, own) in enumerate(zip(paths, keys, ports)):
            (state_dir / f"node-{index}.log").unlink(missing_ok=True)
            managed = _spawn(f"node-{index}", ["node", "--config", str(path)], state_dir / f"node-{index}.log")
            managed.details = {
                "name": f"node-{index}",
                "address": key.address,
                "rpc": f"127.0.0.1:{own.rpc}",
                "p2p": f"127.0.0.1:{own.p2p}",
                "sync": f"127.0.0.1:{own.sync}",
                "metrics": f"http://127.0.0.1:{own.metrics}/metrics",
                "config": str(path),
            }
            running.nodes.append(managed)
        for managed, own in zip(running.nodes, ports):
            try:
                wait_for_port(own.rpc, timeout_seconds=NODE_START_TIMEOUT_SECONDS)
            except TimeoutError:
                raise RuntimeError(f"{managed.name} did not start serving within {NODE_START_TIMEOUT_SECONDS:.0f} s; see {managed.log_path}") from None
            if not managed.running:
                raise RuntimeError(f"{managed.name} exited at start; see {managed.log_path}")
        progress(f"  started {len(keys)} nodes in {time.monotonic() - started:.1f} s")

        key_file = directory / "liquidator.key"
        key_file.write_text(liquidator.private_key.hex() + "\n")
        arguments = ["liquidator", "--key-file", str(key_file), "--interval", "1"]
        for own in ports:
            arguments += ["--node", f"127.0.0.1:{own.rpc}"]
        for key in keys:
            arguments += ["--signer", key.address]
        for chain in chains:
            arguments += ["--chain", f"{chain.chain_id}={chain.rpc_url}"]
        (state_dir / "liquidator.log").unlink(missing_ok=True)
        running.liquidator = _spawn("liquidator", arguments, state_dir / "liquidator.log")
        running.liquidator.details = {"recipient": liquidator.address}
        progress(f"  started the liquidator (seized collateral goes to {liquidator.address})")
        return running
    except BaseException:
        running.stop()
        raise


def deployed_chains(chains: list[tuple[Any, Any, Deployment]]) -> list[DeployedChain]:
    """The runner's (plan, anvil, deployment) triples as topology input."""
    return [DeployedChain(plan.network, plan.chain_id, anvil.rpc_url, deployment) for plan, anvil, deployment in chains]

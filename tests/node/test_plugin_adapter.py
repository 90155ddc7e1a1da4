"""A chain adapter kind from a separately installed plugin: `crossclear node` builds it through the
`crossclear.chain_adapters` entry point group (never by importing it) and follows a real chain with it.

The plugin is tests/fixtures/plugin_adapter (kind "evm-replica"), pip-installed offline into a
temporary folder that only the node's subprocess sees on PYTHONPATH; nothing goes into the venv.
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crossclear.devnet.accounts import node_keys
from crossclear.devnet.chain import DevChain
from crossclear.devnet.deploy import DeployedToken, Deployment
from crossclear.node.topology import DeployedChain, allocate_ports, write_node_configs
from crossclear.rpc.client import node_status
from crossclear.v1 import node_pb2

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "plugin_adapter"
EXAMPLES = REPO / "examples"
PLUGIN_KIND = "evm-replica"
CHAIN_ID = 42101
START_TIMEOUT_SECONDS = 90.0


def install_plugin(directory: Path) -> Path:
    """pip-install the fixture distribution into `directory`/site, offline; returns that folder.

    The source is copied first: building it in place would leave build/ and *.egg-info in the repo.
    """
    source = directory / "plugin-src"
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = directory / "site"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "crossclear_evm_replica").is_dir()
    return site


def environment_with(site: Path) -> dict[str, str]:
    """This process's environment with the plugin folder first on PYTHONPATH."""
    paths = [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_plugin(tmp_path_factory.mktemp("plugin"))


def test_the_node_package_never_names_the_evm_adapter() -> None:
    # The node knows chains only through the registry and the ChainAdapter protocol.
    offenders = []
    for path in sorted((REPO / "node" / "crossclear" / "node").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("crossclear.chains.evm"):
                offenders.append(f"{path.name}:{node.lineno}: from {node.module} import ...")
            elif isinstance(node, ast.Import) and any(alias.name.startswith("crossclear.chains.evm") for alias in node.names):
                offenders.append(f"{path.name}:{node.lineno}: import crossclear.chains.evm")
            elif isinstance(node, ast.Name | ast.Attribute | ast.alias):
                name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else node.name
                if name in ("EvmChainAdapter", "create_evm_adapter"):
                    offenders.append(f"{path.name}:{node.lineno}: {name}")
    assert offenders == []


def _wait_serving(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the node exited with {process.returncode} at start:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the node did not serve gRPC within {START_TIMEOUT_SECONDS:.0f} s:\n{log_path.read_text()}")


def _chain_status(port: int) -> node_pb2.ChainStatus:
    status = asyncio.run(node_status(f"127.0.0.1:{port}"))
    (chain,) = status.chains
    return chain


@pytest.fixture
def node_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; each is stopped (SIGTERM, then SIGKILL) whatever happens."""
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


@pytest.mark.slow
def test_a_node_follows_a_chain_through_a_plugin_adapter(
    tmp_path: Path, plugin_site: Path, node_process: list[subprocess.Popen[bytes]]
) -> None:
    with DevChain.start(chain_id=CHAIN_ID) as chain:
        deployed = DeployedChain("plugin-net", CHAIN_ID, chain.anvil.rpc_url, chain.deployment)
        ports = allocate_ports(1)
        config = write_node_configs(tmp_path / "nodes", [deployed], chain.node_set[:1], EXAMPLES / "risk.json", 1, ports, finality=1)[0]
        text = config.read_text()
        assert "[chains.plugin-net]\n" in text and "kind =" not in text
        config.write_text(text.replace("[chains.plugin-net]\n", f'[chains.plugin-net]\nkind = "{PLUGIN_KIND}"\n'))

        log_path = tmp_path / "node.log"
        with open(log_path, "wb") as log:
            node_process.append(
                subprocess.Popen(
                    [sys.executable, "-m", "crossclear", "node", "--config", str(config)],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=environment_with(plugin_site), cwd=tmp_path, start_new_session=True,
                )  # fmt: skip
            )
        process = node_process[0]
        _wait_serving(process, ports[0].rpc, log_path)

        # The chain as the node sees it through the plugin's adapter: heads follow new blocks.
        target = chain.web3.eth.block_number + 5
        chain.mine(5)
        deadline = time.monotonic() + 30
        seen = _chain_status(ports[0].rpc)
        while (seen.head < target or seen.finalized < target - 1) and time.monotonic() < deadline:
            time.sleep(0.3)
            seen = _chain_status(ports[0].rpc)
        assert (seen.network, seen.chain_id, seen.health) == ("plugin-net", CHAIN_ID, "ok")
        assert seen.head >= target and seen.finalized >= target - 1, (seen, log_path.read_text())
        assert seen.finality == "1 confirmations"

        # The node says which kind it built and where from; the plugin's own code ran.
        logged = log_path.read_text()
        assert f"chain plugin-net (id {CHAIN_ID}): adapter kind {PLUGIN_KIND}, ReplicaAdapter (entry point {PLUGIN_KIND} = crossclear_evm_replica:create_adapter from crossclear-evm-replica 0.1.0)" in logged, logged
        assert f"{PLUGIN_KIND} adapter connected: chain plugin-net (id {CHAIN_ID})" in logged, logged

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_path.read_text()


def _offline_configs(directory: Path) -> list[Path]:
    tokens = tuple(
        DeployedToken(symbol, "0x" + f"{i + 1:02x}" * 20, decimals, "0x" + f"{i + 5:02x}" * 20)
        for i, (symbol, decimals) in enumerate((("USDC", 6), ("WETH", 18), ("WBTC", 18)))
    )
    deployment = Deployment("0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20, "0x" + "dd" * 20, tokens, None, 0)
    chain = DeployedChain("devnet-a", 31001, "http://127.0.0.1:9", deployment)
    return write_node_configs(directory, [chain], node_keys(1), EXAMPLES / "risk.json", 1, allocate_ports(1))


def test_an_unknown_kind_stops_the_node_with_one_line_listing_the_plugin_kinds(tmp_path: Path, plugin_site: Path) -> None:
    config = _offline_configs(tmp_path)[0]
    config.write_text(config.read_text().replace("[chains.devnet-a]\n", '[chains.devnet-a]\nkind = "moonchain"\n'))
    result = subprocess.run(
        [sys.executable, "-m", "crossclear", "node", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=environment_with(plugin_site),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"{config}: chain devnet-a: unknown kind 'moonchain' (known: " in lines[0] and "evm, " in lines[0] and PLUGIN_KIND in lines[0]
    assert not (tmp_path / "node-0").exists()


def test_a_plugin_that_rejects_its_table_stops_the_node_with_one_line(tmp_path: Path, plugin_site: Path) -> None:
    # "evm-replica" checks its table as an EVM one: the node's config loader does not know its keys.
    config = _offline_configs(tmp_path)[0]
    config.write_text(config.read_text().replace("[chains.devnet-a]\n", f'[chains.devnet-a]\nkind = "{PLUGIN_KIND}"\nrelay = "x"\n'))
    result = subprocess.run(
        [sys.executable, "-m", "crossclear", "node", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=environment_with(plugin_site),
    )  # fmt: skip
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{config}: chain devnet-a: unknown key 'relay'" in lines[0], result.stderr
    assert not (tmp_path / "node-0").exists()

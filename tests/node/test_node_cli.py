"""`crossclear node` refuses to start on a bad config or an unreachable chain: one line, exit 2,
and no state left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from crossclear._net import free_tcp_port
from crossclear.devnet.accounts import node_keys
from crossclear.devnet.deploy import DeployedToken, Deployment
from crossclear.node.topology import DeployedChain, allocate_ports, write_node_configs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _configs(directory: Path, rpc_url: str) -> list[Path]:
    tokens = tuple(
        DeployedToken(symbol, "0x" + f"{i + 1:02x}" * 20, decimals, "0x" + f"{i + 5:02x}" * 20)
        for i, (symbol, decimals) in enumerate((("USDC", 6), ("WETH", 18), ("WBTC", 18)))
    )
    deployment = Deployment("0x" + "aa" * 20, "0x" + "bb" * 20, "0x" + "cc" * 20, "0x" + "dd" * 20, tokens, None, 0)
    chain = DeployedChain("devnet-a", 31001, rpc_url, deployment)
    return write_node_configs(directory, [chain], node_keys(4), EXAMPLES / "risk.json", 1, allocate_ports(4))


def _node(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crossclear", "node", "--config", str(config)], capture_output=True, text=True, timeout=120)


def test_unreachable_chain_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    config = _configs(tmp_path, f"http://127.0.0.1:{free_tcp_port()}")[0]
    result = _node(config)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "chain devnet-a (id 31001)" in lines[0] and "unreachable" in lines[0]
    assert not (tmp_path / "node-0").exists()


def test_bad_config_key_is_one_line(tmp_path: Path) -> None:
    config = _configs(tmp_path, "http://127.0.0.1:8545")[0]
    config.write_text(config.read_text().replace('listen = "127.0.0.1:', 'listen = "0.0.0.0:', 1))
    result = _node(config)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "rpc.listen: must be 127.0.0.1:PORT" in lines[0]

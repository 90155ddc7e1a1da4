"""Node configuration: a good file loads, overrides apply, every bad key is named in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from crossclear.node.config import ConfigError, load_config

from ..margin.conftest import EXAMPLES

KEY = "11" * 32
ADDRESS = Account.from_key(bytes.fromhex(KEY)).address
OTHER = Account.from_key(bytes.fromhex("22" * 32)).address
TOKEN = "0x" + "ab" * 20
VAULT = "0x" + "cd" * 20

GOOD = f"""
[node]
name = "node-0"
key_file = "node.key"
clearinghouse_domain = 3238380010

[rpc]
listen = "127.0.0.1:50051"
peers = ["127.0.0.1:50052"]

[metrics]
listen = "127.0.0.1:9101"

[p2p]
listen = "127.0.0.1:4001"

[node_set]
signers = ["{ADDRESS}", "{OTHER}"]

[margin]
risk_file = "{EXAMPLES / 'risk.json'}"
price_heartbeat_seconds = 120

[chains.devnet-a]
chain_id = 31001
rpc_url = "http://127.0.0.1:8545"
vault = "{VAULT}"
finality = 2

[collateral.USDC]
decimals = 6
tokens = {{ devnet-a = "{TOKEN}" }}

[underlyings.ETH]
ids = {{ devnet-a = "{TOKEN}" }}

[feeds.ETH]
chain = "devnet-a"
address = "{TOKEN}"
heartbeat_seconds = 30

[feeds.BTC]
chain = "devnet-a"
address = "{TOKEN}"

[feeds.USDC]
chain = "devnet-a"
address = "{TOKEN}"

[feeds.WETH]
chain = "devnet-a"
address = "{TOKEN}"

[feeds.WBTC]
chain = "devnet-a"
address = "{TOKEN}"
"""


def write(tmp_path: Path, text: str = GOOD, key: str = KEY) -> Path:
    (tmp_path / "node.key").write_text(key + "\n")
    path = tmp_path / "node.toml"
    path.write_text(text)
    return path


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={})
    assert config.address == ADDRESS and config.name == "node-0"
    assert str(config.rpc_listen) == "127.0.0.1:50051" and config.rpc_peers == ("127.0.0.1:50052",)
    assert config.data_dir == tmp_path / "data" / "node-0" and config.database.name == "node.sqlite"
    assert config.chains["devnet-a"].finality.confirmations == 2
    assert config.chains["devnet-a"].kind == "evm" and config.chains["devnet-a"].vault.lower() == VAULT
    assert config.collateral["USDC"].tokens["devnet-a"] == "0x" + "AB" * 20 or config.collateral["USDC"].tokens["devnet-a"].lower() == TOKEN
    assert config.feeds["ETH"].heartbeat_seconds == 30
    assert config.verification_key.name == "vkey.json"


def test_environment_overrides(tmp_path: Path) -> None:
    environ = {
        "CROSSCLEAR_RPC__LISTEN": "127.0.0.1:6000",
        "CROSSCLEAR_CHAINS__DEVNET_A__RPC_URL": "http://127.0.0.1:9999",
        "CROSSCLEAR_CHAINS__DEVNET_A__FINALITY": "5",
        "CROSSCLEAR_METRICS__LISTEN": '""',
        "UNRELATED": "x",
    }
    config = load_config(write(tmp_path), environ=environ)
    assert config.rpc_listen.port == 6000
    assert config.chains["devnet-a"].table["rpc_url"] == "http://127.0.0.1:9999"
    assert config.chains["devnet-a"].finality.confirmations == 5
    assert config.metrics_listen is None


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace('name = "node-0"\n', ""), "node.name: is required"),
        (lambda t: t.replace('listen = "127.0.0.1:50051"', 'listen = "0.0.0.0:50051"'), "rpc.listen: must be 127.0.0.1:PORT"),
        (lambda t: t.replace("[rpc]", "[rpc]\nlisten_port = 1"), "rpc.listen_port: is not a known key"),
        (lambda t: t + "\n[extra]\n", "[extra] is not a known section"),
        (lambda t: t.replace(f'"{ADDRESS}", ', ""), "node_set.signers: does not include this node's own address"),
        (lambda t: t.replace(f'"{OTHER}"', f'"{ADDRESS}"'), "node_set.signers: lists a signer twice"),
        (lambda t: t.replace("clearinghouse_domain = 3238380010", 'clearinghouse_domain = "x"'), "node.clearinghouse_domain: must be an integer"),
        (lambda t: t.replace("risk.json", "missing.json"), "margin.risk_file:"),
        (lambda t: t.replace("chain_id = 31001", "chain_id = -1"), "chain devnet-a: chain_id must be a positive integer"),
        (lambda t: t.replace('rpc_url = "http://127.0.0.1:8545"\n', ""), "chain devnet-a: missing key 'rpc_url'"),
        (lambda t: t.replace("tokens = { devnet-a", "tokens = { devnet-z"), "collateral.USDC.tokens: names chain 'devnet-z'"),
        (lambda t: t.replace('chain = "devnet-a"', 'chain = "nowhere"'), "feeds.ETH.chain: 'nowhere' is not defined"),
        (lambda t: t.replace("heartbeat_seconds = 30", "heartbeat_seconds = -3"), "feeds.ETH.heartbeat_seconds: must be a positive number"),
        (lambda t: t.replace("[node]", "[node"), "not valid TOML"),
        (lambda t: t.replace("[feeds.WBTC]", "[feeds.XYZ]"), "[feeds.WBTC] is missing: every underlying and asset"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(write(tmp_path, edit(GOOD)), environ={})


def test_bad_key_file_and_bad_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="node.key_file: .* does not hold a 32-byte hex secp256k1 key"):
        load_config(write(tmp_path, key="zz"), environ={})
    with pytest.raises(ConfigError, match="expected CROSSCLEAR_SECTION__KEY"):
        load_config(write(tmp_path), environ={"CROSSCLEAR_RPC__": "x"})
    # Other CROSSCLEAR_* variables (devnet state folder, tool paths) are not node settings.
    assert load_config(write(tmp_path), environ={"CROSSCLEAR_DEVNET_STATE": "/tmp/x"}).name == "node-0"
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml", environ={})


def test_an_unknown_chain_kind_is_one_line_naming_file_chain_and_known_kinds(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("[chains.devnet-a]\n", '[chains.devnet-a]\nkind = "moonchain"\n'))
    with pytest.raises(ConfigError, match=r"node.toml: chain devnet-a: unknown kind 'moonchain' \(known: evm(, [a-z-]+)*\)$"):
        load_config(path, environ={})
    # The same from the environment.
    with pytest.raises(ConfigError, match=r"node.toml: chain devnet-a: unknown kind 'moonchain'"):
        load_config(write(tmp_path), environ={"CROSSCLEAR_CHAINS__DEVNET_A__KIND": "moonchain"})
    with pytest.raises(ConfigError, match=r"node.toml: \[chains.devnet-b\] must be a table"):
        load_config(write(tmp_path, GOOD.replace("[chains.devnet-a]\n", "[chains]\ndevnet-b = 3\n[chains.devnet-a]\n")), environ={})


def test_a_plugin_kind_keeps_its_own_keys_for_its_adapter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A plugin distribution on sys.path (a dist-info with the entry point) makes kind "moonnet" known.
    plugin = tmp_path / "plugin"
    dist_info = plugin / "config_test_moonnet-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: config-test-moonnet\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[crossclear.chain_adapters]\nmoonnet = config_test_moonnet:create_adapter\n")
    monkeypatch.syspath_prepend(str(plugin))
    text = GOOD.replace('[chains.devnet-a]\nchain_id = 31001\nrpc_url = "http://127.0.0.1:8545"\n', '[chains.devnet-a]\nkind = "moonnet"\nchain_id = 31001\nendpoint = "moon://relay"\n')
    config = load_config(write(tmp_path, text), environ={"CROSSCLEAR_CHAINS__DEVNET_A__ENDPOINT": "moon://other"})
    chain = config.chains["devnet-a"]
    assert (chain.kind, chain.chain_id, chain.finality.describe()) == ("moonnet", 31001, "2 confirmations")
    assert chain.table["endpoint"] == "moon://other" and "rpc_url" not in chain.table
    # Keys every kind has are still checked when the config loads.
    with pytest.raises(ConfigError, match="node.toml: chain devnet-a: vault must be a 0x address"):
        load_config(write(tmp_path, text.replace(f'vault = "{VAULT}"', 'vault = "moon1vault"')), environ={})

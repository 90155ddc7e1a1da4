"""Liquidation end to end on a real anvil chain: nodes sign, the liquidator submits, the vault
pays only with a quorum."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from web3 import Web3

from crossclear.chains.artifacts import load_artifact
from crossclear.devnet.accounts import funded_accounts, node_keys
from crossclear.devnet.anvil import Anvil
from crossclear.devnet.deploy import connect, deploy_devnet, transact
from crossclear.margin import InstrumentKind
from crossclear.node import PositionRecord
from crossclear.node.claims import CollateralToken
from crossclear.node.liquidations import LiquidationDesk
from crossclear.node.liquidator import Liquidator
from crossclear.rpc import ApiServer, LiquidationServicer
from crossclear.v1 import node_pb2

from ..node.test_clearing import make_state

CHAIN_ID = 31901
pytestmark = pytest.mark.slow


def test_quorum_seize_is_paid_and_a_minority_is_not(tmp_path: Path) -> None:
    with Anvil(chain_id=CHAIN_ID) as chain:
        keys = node_keys(4)
        users = funded_accounts(3)
        deployment = deploy_devnet(chain.rpc_url, [k.address for k in keys], [u.address for u in users])
        usdc = next(t for t in deployment.tokens if t.symbol == "USDC")
        web3 = connect(chain.rpc_url)
        depositor, liquidator_key, receiver = users
        # Fund the vault the way users do: a deposit (the leaf and root are the vault's business).
        transact(web3, "MockERC20", usdc.address, "approve", deployment.vault, 1_000 * 10**6, sender=depositor.address)
        transact(web3, "CollateralVault", deployment.vault, "deposit", usdc.address, 1_000 * 10**6, 12345, sender=depositor.address)
        token = CollateralToken(CHAIN_ID, int(deployment.vault, 16), int(usdc.address, 16), "USDC", 6)
        account = depositor.address.lower()

        async def main() -> None:
            async with AsyncExitStack() as stack:
                ports = []
                for key in keys:
                    state = make_state()
                    # The certified picture every node shares: 100 USDC against a losing short.
                    state.credit_collateral(account, CHAIN_ID, "USDC", 100.0)
                    state.set_position(account, "p", PositionRecord(CHAIN_ID, "ETH", InstrumentKind.PERP, -1.0, 2800.0))
                    desk = LiquidationDesk(state, {(CHAIN_ID, "USDC"): token}, receiver.address, key.private_key)
                    server = ApiServer(state, lambda: node_pb2.NodeStatus(), liquidations=LiquidationServicer(desk, key.private_key))
                    ports.append(await server.start(0))
                    stack.push_async_callback(server.stop, 0)
                targets = [f"127.0.0.1:{port}" for port in ports]
                signers = [k.address for k in keys]
                usdc_contract = web3.eth.contract(address=Web3.to_checksum_address(usdc.address), abi=list(load_artifact("MockERC20").abi))
                before = usdc_contract.functions.balanceOf(receiver.address).call()

                # Two of four nodes reachable: no quorum, no seize.
                minority = Liquidator(targets[:2] + ["127.0.0.1:1"], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                assert await minority.run_once() == []
                assert usdc_contract.functions.balanceOf(receiver.address).call() == before

                # Three of four: the vault pays the liquidator's recipient, once.
                quorum = Liquidator(targets[:3], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                submitted = await quorum.run_once()
                assert len(submitted) == 1 and len(submitted[0].signers) == 3
                assert usdc_contract.functions.balanceOf(receiver.address).call() == before + 100 * 10**6
                assert await quorum.run_once() == []  # the seize id is spent

        asyncio.run(main())

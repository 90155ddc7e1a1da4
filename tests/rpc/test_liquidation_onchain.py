"""Liquidation end to end on a real anvil chain: nodes sign, the liquidator submits, the vault
pays only with a quorum.

Each node is a real processor (tests/node/harness.py) holding the certified picture every
node shares, fed as scripted certified blocks at the chain's own time: a credited claim of
100 USDC, a long ETH perp and a price drop that leaves the account liquidatable."""

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
from crossclear.node.claims import CollateralToken
from crossclear.node.liquidations import seize_deadline, seize_id
from crossclear.node.liquidator import SKIP_USED, Liquidator
from crossclear.rpc import ApiServer, LiquidationServicer
from crossclear.v1 import node_pb2

from ..node.harness import ETH_FEED, Harness, chain_names, claim, every_feed_on, opening_block, perp, price

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
        now = int(web3.eth.get_block("latest")["timestamp"])  # the scripted blocks follow the chain's clock

        async def node(index: int, stack: AsyncExitStack) -> int:
            harness = Harness(
                tmp_path / f"node{index}.sqlite", keys[index].private_key, chain=CHAIN_ID, vault=deployment.vault.lower(),
                names={CHAIN_ID: chain_names(CHAIN_ID, deployment.vault, {usdc.address: ("USDC", 6)})},
                tokens={(CHAIN_ID, "USDC"): token}, feed_chains=every_feed_on(CHAIN_ID), liquidation_recipient=receiver.address,
            )
            await harness.start()
            stack.push_async_callback(harness.stop)
            await harness.certify(harness.observe(1, now, opening_block(now, chain_id=CHAIN_ID)))
            assert (await harness.credit(claim(account, 100 * 10**6, nullifier=1, token=token))).accepted
            await harness.certify(harness.observe(2, now + 1, [perp(2, 0, now + 1, account, 1, 1.0, 3000.0, chain_id=CHAIN_ID)]))
            await harness.certify(harness.observe(3, now + 2, [price(3, 0, now + 2, ETH_FEED, 2800, chain_id=CHAIN_ID)]))
            await harness.settled()
            snapshot = harness.processor.snapshot
            assert snapshot is not None and snapshot.margin(account).liquidatable
            server = ApiServer(
                lambda: harness.processor.snapshot, lambda: node_pb2.NodeStatus(),
                liquidations=LiquidationServicer(harness.sign_seizes, keys[index].private_key),
            )
            port = await server.start(0)
            stack.push_async_callback(server.stop, 0)
            return port

        async def main() -> None:
            async with AsyncExitStack() as stack:
                ports = [await node(index, stack) for index in range(4)]
                targets = [f"127.0.0.1:{port}" for port in ports]
                signers = [k.address for k in keys]
                usdc_contract = web3.eth.contract(address=Web3.to_checksum_address(usdc.address), abi=list(load_artifact("MockERC20").abi))
                before = usdc_contract.functions.balanceOf(receiver.address).call()

                # Two of four nodes reachable: no quorum, no seize.
                minority = Liquidator(targets[:2] + ["127.0.0.1:1"], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                assert await minority.run_once() == []
                assert minority.submitted == 0 and not minority.errors
                assert usdc_contract.functions.balanceOf(receiver.address).call() == before

                # Three of four: the vault pays the liquidator's recipient, once.
                quorum = Liquidator(targets[:3], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                submitted = await quorum.run_once()
                assert len(submitted) == 1 and len(submitted[0].signers) == 3, (quorum.errors, quorum.skipped)
                order = submitted[0].order
                assert order.seize_id == seize_id(account, CHAIN_ID, usdc.address, 0)
                assert (order.account.lower(), order.amount, order.deadline) == (account, 100 * 10**6, seize_deadline(now + 2))
                assert usdc_contract.functions.balanceOf(receiver.address).call() == before + 100 * 10**6
                assert await quorum.run_once() == []  # the seize id is spent
                assert quorum.skipped[SKIP_USED] == 1 and not quorum.errors

        asyncio.run(main())

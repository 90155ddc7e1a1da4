"""Default management end to end on a real anvil chain: nodes sign close-outs, the liquidator
takes one from the market as backstop only with a quorum, once, at the auction's price.

Each node is a real processor (tests/node/harness.py) holding the certified picture every
node shares, fed as scripted certified blocks at the chain's own time: a credited claim of
100 USDC, a long ETH perp bought from a market maker on the deployed market, and a price drop
that leaves the account liquidatable."""

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
from crossclear.chains.interface import InstrumentKind, Traded
from crossclear.chains.market_orders import auction_price
from crossclear.node.facts import ChainNames
from crossclear.node.liquidator import SKIP_USED, Liquidator
from crossclear.rpc import ApiServer, LiquidationServicer
from crossclear.v1 import node_pb2

from ..node.harness import BTC_FEED, ETH_FEED, MARKET_MAKER, USDC_FEED, Harness, claim, every_feed_on, opening_block, price

CHAIN_ID = 31901
pytestmark = pytest.mark.slow


def test_a_quorum_close_out_is_taken_once_and_a_minority_is_not(tmp_path: Path) -> None:
    with Anvil(chain_id=CHAIN_ID) as chain:
        keys = node_keys(4)
        users = funded_accounts(3)
        deployment = deploy_devnet(chain.rpc_url, [k.address for k in keys], [u.address for u in users])
        usdc = next(t for t in deployment.tokens if t.symbol == "USDC")
        weth = next(t for t in deployment.tokens if t.symbol == "WETH")
        web3 = connect(chain.rpc_url)
        depositor, liquidator_key, receiver = users
        # Fund the vault the way users do: a deposit (the leaf and root are the vault's business).
        transact(web3, "MockERC20", usdc.address, "approve", deployment.vault, 1_000 * 10**6, sender=depositor.address)
        transact(web3, "CollateralVault", deployment.vault, "deposit", usdc.address, 1_000 * 10**6, 12345, sender=depositor.address)
        token = CollateralToken(CHAIN_ID, int(deployment.vault, 16), int(usdc.address, 16), "USDC", 6)
        account = depositor.address.lower()
        now = int(web3.eth.get_block("latest")["timestamp"])  # the scripted blocks follow the chain's clock

        async def node(index: int, stack: AsyncExitStack) -> int:
            names = ChainNames(
                CHAIN_ID, deployment.vault.lower(), {weth.address.lower(): "ETH"},
                {ETH_FEED: ("ETH", "WETH"), USDC_FEED: ("USDC",), BTC_FEED: ("BTC", "WBTC")}, {usdc.address.lower(): ("USDC", 6)},
            )
            harness = Harness(
                tmp_path / f"node{index}.sqlite", keys[index].private_key, chain=CHAIN_ID, vault=deployment.vault.lower(),
                names={CHAIN_ID: names},
                tokens={(CHAIN_ID, "USDC"): token}, feed_chains=every_feed_on(CHAIN_ID), liquidation_recipient=receiver.address,
            )
            await harness.start()
            stack.push_async_callback(harness.stop)
            await harness.certify(harness.observe(1, now, opening_block(now, chain_id=CHAIN_ID)))
            assert (await harness.credit(claim(account, 100 * 10**6, nullifier=1, token=token))).accepted
            assert (await harness.credit(claim(MARKET_MAKER, 10_000 * 10**6, nullifier=2, token=token))).accepted  # the other side is well margined
            bought = Traded(
                chain_id=CHAIN_ID, contract=deployment.market, block_number=2, block_hash=(2).to_bytes(32, "big"), block_timestamp=now + 1,
                tx_hash=b"\x02" * 32, log_index=0, trade_id=b"\x07" * 32, maker=account, taker=MARKET_MAKER, underlying=weth.address,
                kind=InstrumentKind.PERPETUAL, strike=0, expiry=0, is_call=False, maker_size=10**18, price=3000 * 10**18, close_out_id=bytes(32),
            )
            await harness.certify(harness.observe(2, now + 1, [bought]))
            await harness.certify(harness.observe(3, now + 2, [price(3, 0, now + 2, ETH_FEED, 2800, chain_id=CHAIN_ID)]))
            await harness.settled()
            snapshot = harness.processor.snapshot
            assert snapshot is not None and snapshot.margin(account).liquidatable
            server = ApiServer(
                lambda: harness.processor.snapshot, lambda: node_pb2.NodeStatus(),
                liquidations=LiquidationServicer(harness.sign_seizes, keys[index].private_key, harness.sign_close_outs),
            )
            port = await server.start(0)
            stack.push_async_callback(server.stop, 0)
            return port

        async def main() -> None:
            async with AsyncExitStack() as stack:
                ports = [await node(index, stack) for index in range(4)]
                targets = [f"127.0.0.1:{port}" for port in ports]
                signers = [k.address for k in keys]
                market = web3.eth.contract(address=Web3.to_checksum_address(deployment.market), abi=list(load_artifact("Market").abi))

                # Two of four nodes reachable: no quorum, no close-out.
                minority = Liquidator(targets[:2] + ["127.0.0.1:1"], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                assert await minority.close_out_once() == []
                assert minority.submitted == 0 and not minority.errors

                # Three of four: the backstop takes a quarter of the position by auction, once.
                quorum = Liquidator(targets[:3], signers, {CHAIN_ID: chain.rpc_url}, liquidator_key.private_key)
                taken = await quorum.close_out_once()
                assert len(taken) == 1 and len(taken[0].signers) == 3, (quorum.errors, quorum.skipped)
                order = taken[0].order
                assert (order.account.lower(), order.account_size, order.mark) == (account, -(10**18) // 4, 2800 * 10**18)
                assert market.functions.closeOutUsed(order.close_out_id).call()
                receipt = web3.eth.get_transaction_receipt(taken[0].transaction_hash)
                (event,) = market.events.Traded().process_receipt(receipt)
                block_time = web3.eth.get_block(receipt["blockNumber"])["timestamp"]
                assert event["args"]["closeOutId"] == order.close_out_id and event["args"]["makerSize"] == order.account_size
                assert event["args"]["price"] == auction_price(order, block_time)
                assert await quorum.close_out_once() == []  # the close-out id is spent
                assert quorum.skipped[SKIP_USED] == 1 and not quorum.errors

        asyncio.run(main())

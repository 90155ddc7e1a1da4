"""The liquidator on a real anvil vault survives orders that fail: a seize that reverts, an
expired one, an unreachable chain. Each is logged and counted; the other orders are still paid.

Signed orders come straight from `vault_orders.sign` with the devnet node keys, served by tiny
in-test LiquidationServices on 127.0.0.1 (the liquidator reads orders only over gRPC)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from contextlib import AsyncExitStack
from typing import Any

import grpc
import pytest

from crossclear.chains.vault_orders import SeizeOrder, VaultDomain, sign
from crossclear.devnet.accounts import DevAccount
from crossclear.devnet.chain import DevChain
from crossclear.node.liquidator import Liquidator
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc
from crossclear.zk import secret_hash

CHAIN_ID = 41961
pytestmark = pytest.mark.slow


class _FixedOrders(liquidation_pb2_grpc.LiquidationServiceServicer):
    """One node's answer: the given orders, signed with its key."""

    def __init__(self, domain: VaultDomain, orders: Sequence[SeizeOrder], key: DevAccount) -> None:
        self._orders = [
            liquidation_pb2.SignedSeizeOrder(
                chain_id=domain.chain_id,
                vault=domain.vault,
                seize_id=order.seize_id,
                account=order.account,
                token=order.token,
                amount=str(order.amount),
                recipient=order.recipient,
                deadline=order.deadline,
                signer=key.address,
                signature=sign(domain, order, key.private_key),
            )
            for order in orders
        ]

    async def ListSeizeOrders(self, request: liquidation_pb2.ListSeizeOrdersRequest, context: Any) -> liquidation_pb2.ListSeizeOrdersResponse:
        del request, context
        return liquidation_pb2.ListSeizeOrdersResponse(orders=self._orders)


async def _serve(stack: AsyncExitStack, servicer: _FixedOrders) -> str:
    server = grpc.aio.server()
    liquidation_pb2_grpc.add_LiquidationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stack.push_async_callback(server.stop, 0)
    return f"127.0.0.1:{port}"


def _usdc_balance(chain: DevChain, holder: str) -> int:
    balance: int = chain.contract("MockERC20", chain.token("USDC")).functions.balanceOf(holder).call()
    return balance


@pytest.fixture(scope="module")
def chain() -> Any:
    with DevChain.start(chain_id=CHAIN_ID) as dev_chain:
        dev_chain.deposit(dev_chain.accounts[5].address, "USDC", 100 * 10**6, secret_hash(5))
        yield dev_chain


def _order(chain: DevChain, amount: int, deadline: int) -> SeizeOrder:
    return SeizeOrder(os.urandom(32), chain.accounts[5].address, chain.token("USDC"), amount, chain.accounts[7].address, deadline)


def test_a_reverting_seize_does_not_stop_the_next_one(chain: DevChain, caplog: pytest.LogCaptureFixture) -> None:
    domain = VaultDomain(CHAIN_ID, chain.deployment.vault)
    now = int(chain.web3.eth.get_block("latest")["timestamp"])
    too_big = _order(chain, 10_000 * 10**6, now + 3600)  # more than the vault holds: the transfer reverts
    expired = _order(chain, 1 * 10**6, now - 1)
    good = _order(chain, 30 * 10**6, now + 3600)
    orders = [too_big, expired, good]
    recipient = good.recipient
    before = _usdc_balance(chain, recipient)

    async def main() -> None:
        async with AsyncExitStack() as stack:
            # Three of the four node keys: exactly a quorum for every order.
            targets = [await _serve(stack, _FixedOrders(domain, orders, key)) for key in chain.node_set[:3]]
            liquidator = Liquidator(targets, [k.address for k in chain.node_set], {CHAIN_ID: chain.anvil.rpc_url}, chain.accounts[9].private_key)

            with caplog.at_level(logging.WARNING, logger="crossclear.liquidator"):
                submitted = await liquidator.run_once()
            assert [s.order for s in submitted] == [good]
            assert len(submitted[0].signers) == 3
            assert _usdc_balance(chain, recipient) == before + good.amount
            assert liquidator.submitted == 1
            assert liquidator.errors == {"reverted": 1}
            assert liquidator.skipped == {"expired": 1}
            failures = [r.getMessage() for r in caplog.records if r.name == "crossclear.liquidator"]
            assert len(failures) == 1 and "\n" not in failures[0]
            assert too_big.seize_id.hex() in failures[0] and f"chain {CHAIN_ID}" in failures[0] and "reverted" in failures[0]
            assert not chain.vault.functions.seizeUsed(too_big.seize_id).call()
            assert not chain.vault.functions.seizeUsed(expired.seize_id).call()

            # The next round goes on: the reverting order fails again, the paid one is spent.
            assert await liquidator.run_once() == []
            assert liquidator.submitted == 1
            assert liquidator.errors == {"reverted": 2}
            assert liquidator.skipped == {"expired": 2, "used": 1}
            assert _usdc_balance(chain, recipient) == before + good.amount

    asyncio.run(main())


def test_an_unreachable_chain_is_counted_and_the_round_ends(chain: DevChain, caplog: pytest.LogCaptureFixture) -> None:
    domain = VaultDomain(CHAIN_ID, chain.deployment.vault)
    now = int(chain.web3.eth.get_block("latest")["timestamp"])
    orders = [_order(chain, 1, now + 3600), _order(chain, 2, now + 3600)]

    async def main() -> None:
        async with AsyncExitStack() as stack:
            targets = [await _serve(stack, _FixedOrders(domain, orders, key)) for key in chain.node_set]
            # Nothing listens on port 1: every RPC call fails to connect.
            liquidator = Liquidator(targets, [k.address for k in chain.node_set], {CHAIN_ID: "http://127.0.0.1:1"}, chain.accounts[9].private_key)
            with caplog.at_level(logging.WARNING, logger="crossclear.liquidator"):
                assert await liquidator.run_once() == []
            assert liquidator.errors == {"rpc_error": 2}
            assert liquidator.submitted == 0
            logged = " ".join(r.getMessage() for r in caplog.records if r.name == "crossclear.liquidator")
            assert all(order.seize_id.hex() in logged for order in orders)

    asyncio.run(main())

"""LiquidationService: the close-out and seize orders this node signs at its current state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from eth_account import Account

from crossclear.node.liquidations import SignedCloseOut, SignedSeize
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc


def seize_to_proto(signed: SignedSeize, signer: str) -> liquidation_pb2.SignedSeizeOrder:
    order = signed.order
    return liquidation_pb2.SignedSeizeOrder(
        chain_id=signed.domain.chain_id,
        vault=signed.domain.vault,
        seize_id=order.seize_id,
        account=order.account,
        token=order.token,
        amount=str(order.amount),
        recipient=order.recipient,
        deadline=order.deadline,
        signer=signer,
        signature=signed.signature,
        equity=signed.equity,
        maintenance=signed.maintenance,
        state_height=signed.height,
    )


def close_out_to_proto(signed: SignedCloseOut, signer: str) -> liquidation_pb2.SignedCloseOut:
    order = signed.order
    return liquidation_pb2.SignedCloseOut(
        chain_id=signed.domain.chain_id,
        market=signed.domain.market,
        close_out_id=order.close_out_id,
        account=order.account,
        underlying=order.underlying,
        kind=order.kind.value,
        strike=str(order.strike),
        expiry=order.expiry,
        is_call=order.is_call,
        account_size=str(order.account_size),
        mark=str(order.mark),
        max_discount_bps=order.max_discount_bps,
        start=order.start,
        deadline=order.deadline,
        signer=signer,
        signature=signed.signature,
        equity=signed.equity,
        maintenance=signed.maintenance,
        state_height=signed.height,
    )


class LiquidationServicer(liquidation_pb2_grpc.LiquidationServiceServicer):
    """Lists this node's signed close-out and seize orders for liquidators."""

    def __init__(
        self,
        sign_seizes: Callable[[], Awaitable[list[SignedSeize]]],
        node_private_key: bytes,
        sign_close_outs: Callable[[], Awaitable[list[SignedCloseOut]]] | None = None,
    ) -> None:
        """`sign_seizes` and `sign_close_outs` ask this node's processor for its signed orders."""
        self._sign_seizes = sign_seizes
        self._sign_close_outs = sign_close_outs
        self._signer = str(Account.from_key(node_private_key).address)

    async def ListCloseOuts(self, request: liquidation_pb2.ListCloseOutsRequest, context: Any) -> liquidation_pb2.ListCloseOutsResponse:
        del request, context
        signed = await self._sign_close_outs() if self._sign_close_outs is not None else []
        return liquidation_pb2.ListCloseOutsResponse(orders=[close_out_to_proto(s, self._signer) for s in signed])

    async def ListSeizeOrders(self, request: liquidation_pb2.ListSeizeOrdersRequest, context: Any) -> liquidation_pb2.ListSeizeOrdersResponse:
        del request, context
        signed = await self._sign_seizes()
        return liquidation_pb2.ListSeizeOrdersResponse(orders=[seize_to_proto(s, self._signer) for s in signed])

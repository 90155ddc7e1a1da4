"""The public gRPC server: services, health checking, reflection and message limits.

It listens on 127.0.0.1 only. Mutating admin calls are not served here: they belong on the
node's local Unix socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crossclear.rpc._claims import ClaimServicer
from crossclear.rpc._liquidations import LiquidationServicer
from crossclear.rpc._margin import HeightWatch, MarginServicer, Snapshots
from crossclear.rpc._node_status import NodeServicer, StatusProvider
from crossclear.rpc._withdrawals import WithdrawalServicer
from crossclear.v1 import claim_pb2, claim_pb2_grpc, margin_pb2, margin_pb2_grpc, node_pb2, node_pb2_grpc
from crossclear.v1 import liquidation_pb2, liquidation_pb2_grpc, withdrawal_pb2, withdrawal_pb2_grpc


@dataclass(frozen=True)
class ServerLimits:
    """Bounds every caller lives within."""

    max_receive_bytes: int = 1 << 20
    """Largest request accepted; anything bigger fails with RESOURCE_EXHAUSTED."""
    max_send_bytes: int = 4 << 20
    """Largest response sent."""
    max_concurrent_rpcs: int = 1000
    """Calls in flight at once before new ones are refused."""
    stream_heartbeat_seconds: float = 5.0
    """StreamMargin re-checks the state at least this often, even without a change signal."""


class ApiServer:
    """The node's services (plus health and reflection) on one 127.0.0.1 port."""

    def __init__(
        self,
        snapshots: Snapshots,
        status: StatusProvider,
        limits: ServerLimits = ServerLimits(),
        claims: ClaimServicer | None = None,
        withdrawals: WithdrawalServicer | None = None,
        liquidations: LiquidationServicer | None = None,
    ) -> None:
        self._snapshots = snapshots
        self.watch = HeightWatch()
        """Notify it with every published snapshot (streams wake on it)."""
        self._status = status
        self._limits = limits
        self._claims = claims
        self._withdrawals = withdrawals
        self._liquidations = liquidations
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self.port = 0

    async def start(self, port: int = 0, extra_service_names: Sequence[str] = ()) -> int:
        """Bind 127.0.0.1:`port` (0 picks a free one), start serving, return the port."""
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self._limits.max_receive_bytes),
                ("grpc.max_send_message_length", self._limits.max_send_bytes),
            ],
            maximum_concurrent_rpcs=self._limits.max_concurrent_rpcs,
        )
        margin_pb2_grpc.add_MarginServiceServicer_to_server(
            MarginServicer(self._snapshots, self.watch, self._limits.stream_heartbeat_seconds), server
        )
        node_pb2_grpc.add_NodeServiceServicer_to_server(NodeServicer(self._status), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        service_names = [
            margin_pb2.DESCRIPTOR.services_by_name["MarginService"].full_name,
            node_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name,
            *extra_service_names,
        ]
        if self._claims is not None:
            claim_pb2_grpc.add_ClaimServiceServicer_to_server(self._claims, server)
            service_names.append(claim_pb2.DESCRIPTOR.services_by_name["ClaimService"].full_name)
        if self._withdrawals is not None:
            withdrawal_pb2_grpc.add_WithdrawalServiceServicer_to_server(self._withdrawals, server)
            service_names.append(withdrawal_pb2.DESCRIPTOR.services_by_name["WithdrawalService"].full_name)
        if self._liquidations is not None:
            liquidation_pb2_grpc.add_LiquidationServiceServicer_to_server(self._liquidations, server)
            service_names.append(liquidation_pb2.DESCRIPTOR.services_by_name["LiquidationService"].full_name)
        reflection.enable_server_reflection([*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        self.port = server.add_insecure_port(f"127.0.0.1:{port}")
        if self.port == 0:
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
        await server.start()
        for name in ("", *service_names):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server = server
        return self.port

    async def stop(self, grace_seconds: float = 1.0) -> None:
        """Stop accepting calls; give calls in flight `grace_seconds` to finish."""
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            await self._server.stop(grace_seconds)
            self._server = None

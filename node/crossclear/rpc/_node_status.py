"""NodeService: the operator's view of one node."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crossclear.v1 import node_pb2, node_pb2_grpc

StatusProvider = Callable[[], node_pb2.NodeStatus]


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    """Answers GetStatus from a provider the node wires in (peers, chains, certificates...)."""

    def __init__(self, provider: StatusProvider) -> None:
        self._provider = provider

    async def GetStatus(self, request: node_pb2.GetNodeStatusRequest, context: Any) -> node_pb2.NodeStatus:
        del request, context
        return self._provider()

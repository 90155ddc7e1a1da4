"""The node's gRPC API for integrators and operators (protos in proto/crossclear/v1/)."""

from crossclear.rpc._claims import ClaimServicer
from crossclear.rpc._convert import InvalidRequest, margin_to_proto
from crossclear.rpc._liquidations import LiquidationServicer
from crossclear.rpc._margin import HeightWatch, MarginServicer
from crossclear.rpc._node_status import NodeServicer
from crossclear.rpc._server import ApiServer, ServerLimits
from crossclear.rpc._withdrawals import WithdrawalServicer

__all__ = [
    "ApiServer",
    "ClaimServicer",
    "HeightWatch",
    "InvalidRequest",
    "LiquidationServicer",
    "MarginServicer",
    "NodeServicer",
    "ServerLimits",
    "WithdrawalServicer",
    "margin_to_proto",
]

"""The operators' and risk officers' web dashboard: `crossclear dash`.

An ASGI app (Starlette, served by uvicorn) that reads the node set over its public gRPC API
and Prometheus `/metrics` only, never a node's database, and pushes every page live with
server-sent events. Pages: node set, accounts (with a what-if form backed by
`SimulateMargin`), capital efficiency, liquidations and withdrawals, and the risk backtest
report. Plain JavaScript and CSS served from this package; nothing is fetched from outside
the machine. docs/dashboard.md describes what each page shows and where it comes from.
"""

from __future__ import annotations

from crossclear.dash.config import ChainTarget, DashConfig, NodeTarget

__all__ = ["ChainTarget", "DashConfig", "NodeTarget"]

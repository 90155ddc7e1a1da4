"""The cascade simulator: price paths replayed through margin, variation margin, close-outs with
price impact and the default waterfall, for every margin mode and model.

    spec = build_spec(margin_inputs, fhs_params, CascadeParams(), source, paths=1000)
    arrays = run_local(spec)
    report = build_report(spec, arrays)

The mechanics are described in docs/cascade-simulator.md; the clearing arithmetic (integer
variation margin, the waterfall) is `crossclear.clearing`'s, shared with the node.
"""

from crossclear.risk.cascade.engine import METRICS, Clearinghouse, PathResult, simulate_closes, simulate_path
from crossclear.risk.cascade.market import (
    ALL_COMBOS,
    CascadeParams,
    Participant,
    PathSource,
    SimulationSpec,
    build_spec,
    participants_for,
)
from crossclear.risk.cascade.run import SimulationArrays, combine, run_local, simulate_range

__all__ = [
    "ALL_COMBOS",
    "METRICS",
    "CascadeParams",
    "Clearinghouse",
    "Participant",
    "PathResult",
    "PathSource",
    "SimulationArrays",
    "SimulationSpec",
    "build_spec",
    "combine",
    "participants_for",
    "run_local",
    "simulate_closes",
    "simulate_path",
    "simulate_range",
]

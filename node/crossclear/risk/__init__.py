"""Risk model v2: filtered historical simulation expected shortfall, stress, and backtests.

The methodology is the v2 section of docs/margin-methodology.md, written out in numpy in
`crossclear.risk.fhs`; `compute_es` runs the same methodology in the C kernel, over as many
threads as asked, with the same bits whatever the number.

    inputs = load_es_inputs(Path("risk.json"), Path("accounts.json"), Path("history.csv"))
    m = inputs.margin
    result = compute_es(inputs.fhs, m.params, m.market, m.instruments, m.book, inputs.closes)
    result.mm

Backtests of v1 and v2 on real and synthetic prices are in `crossclear.risk.backtest`.
"""

from crossclear.risk import fhs
from crossclear.risk._history import parse_history, read_history, write_history
from crossclear.risk._inputs import EsInputs, load_es_inputs, parse_es_inputs
from crossclear.risk._kernel_api import RiskKernel, RiskKernelError, compute_es, default_threads
from crossclear.risk._model import EsResult, FhsParams, History, StressScenario

__all__ = [
    "EsInputs",
    "EsResult",
    "FhsParams",
    "History",
    "RiskKernel",
    "RiskKernelError",
    "StressScenario",
    "compute_es",
    "default_threads",
    "fhs",
    "load_es_inputs",
    "parse_es_inputs",
    "parse_history",
    "read_history",
    "write_history",
]

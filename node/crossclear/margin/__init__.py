"""Portfolio, cross and isolated margin across chains.

The methodology is documented in docs/margin-methodology.md and written out in numpy in
`crossclear.margin.methodology`; `compute_margin` runs the same methodology in the C kernel.

    inputs = load_inputs(Path("risk.json"), Path("accounts.json"))
    result = compute_margin(inputs.params, inputs.market, inputs.instruments, inputs.book)
    result.required[:, Mode.PORTFOLIO]

`MarginEngine` keeps a book's margin current and recomputes only the accounts a price
change can affect.
"""

from crossclear.margin import methodology
from crossclear.margin._json import MarginInputs, load_inputs, parse_inputs, result_to_json
from crossclear.margin._kernel_api import KernelInputError, compute_margin, compute_margin_threaded
from crossclear.margin._model import (
    Book,
    InstrumentKey,
    InstrumentKind,
    Instruments,
    MarginParams,
    MarginResult,
    Market,
    Mode,
)
from crossclear.margin.engine import MarginEngine

__all__ = [
    "Book",
    "InstrumentKey",
    "InstrumentKind",
    "Instruments",
    "KernelInputError",
    "MarginEngine",
    "MarginInputs",
    "MarginParams",
    "MarginResult",
    "Market",
    "Mode",
    "compute_margin",
    "compute_margin_threaded",
    "load_inputs",
    "methodology",
    "parse_inputs",
    "result_to_json",
]

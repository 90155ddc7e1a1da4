"""Poseidon over the BN254 scalar field, bit-for-bit compatible with circomlib / circomlibjs.

`poseidon([x1, ..., xn])` for 1 <= n <= 6 equals circomlib's `Poseidon(n)` template and
circomlibjs' `poseidon(...)`: state width t = n + 1, initial state [0, x1, ..., xn], 8 full
rounds and the circomlib partial-round count for t, S-box x^5, output state[0].

The constants come from circomlibjs (`circuits/scripts/extract_poseidon_constants.py` writes
`_poseidon_constants.json`); they are parsed once, on first use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: The BN254 scalar field order (the field circom signals live in).
SNARK_SCALAR_FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617

MAX_INPUTS = 6


@dataclass(frozen=True)
class _Width:
    """Parameters of one Poseidon permutation width."""

    width: int
    """State size t = number of inputs + 1."""
    full_rounds: int
    """Rounds where every state element goes through the S-box (half before, half after)."""
    partial_rounds: int
    """Rounds where only state[0] goes through the S-box."""
    round_constants: tuple[tuple[int, ...], ...]
    """Per round, the t constants added to the state."""
    mds: tuple[tuple[int, ...], ...]
    """The t x t mixing matrix."""


@cache
def _widths() -> dict[int, _Width]:
    text = resources.files("crossclear.zk").joinpath("_poseidon_constants.json").read_text()
    by_inputs: dict[int, _Width] = {}
    for entry in json.loads(text)["widths"]:
        width = entry["inputs"] + 1
        flat = [int(value) for value in entry["round_constants"]]
        rounds = tuple(tuple(flat[start : start + width]) for start in range(0, len(flat), width))
        by_inputs[entry["inputs"]] = _Width(
            width=width,
            full_rounds=entry["full_rounds"],
            partial_rounds=entry["partial_rounds"],
            round_constants=rounds,
            mds=tuple(tuple(int(value) for value in row) for row in entry["mds"]),
        )
    return by_inputs


def poseidon(inputs: Sequence[int]) -> int:
    """circomlib Poseidon of 1 to 6 field elements (each 0 <= x < SNARK_SCALAR_FIELD)."""
    if not 1 <= len(inputs) <= MAX_INPUTS:
        raise ValueError(f"poseidon takes 1 to {MAX_INPUTS} inputs, got {len(inputs)}")
    for value in inputs:
        if not 0 <= value < SNARK_SCALAR_FIELD:
            raise ValueError(f"poseidon input {value} is not a field element (0 <= x < r)")
    params = _widths()[len(inputs)]
    field = SNARK_SCALAR_FIELD
    half_full = params.full_rounds // 2
    last_partial = half_full + params.partial_rounds
    state = [0, *inputs]
    for round_index, constants in enumerate(params.round_constants):
        state = [(value + constant) % field for value, constant in zip(state, constants)]
        if round_index < half_full or round_index >= last_partial:
            state = [pow(value, 5, field) for value in state]
        else:
            state[0] = pow(state[0], 5, field)
        state = [sum(weight * value for weight, value in zip(row, state)) % field for row in params.mds]
    return state[0]

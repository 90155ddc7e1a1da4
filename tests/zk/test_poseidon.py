"""Poseidon matches circomlibjs; the committed constants match circomlibjs' data file."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest

from crossclear.zk import SNARK_SCALAR_FIELD, poseidon

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


def _random_vectors() -> list[list[int]]:
    rng = random.Random(20261127)
    vectors: list[list[int]] = [[0], [1, 2], [SNARK_SCALAR_FIELD - 1] * 6]
    for count in range(1, 7):
        for _ in range(3):
            vectors.append([rng.randrange(SNARK_SCALAR_FIELD) for _ in range(count)])
    vectors.append([(1 << 160) - 1, 0xA0B86991C6218B36C1D19D4A2E9EB0CE3606EB48, 10**24, 12345])
    return vectors


def test_matches_circomlibjs(node_json) -> None:  # type: ignore[no-untyped-def]
    vectors = _random_vectors()
    expected = node_json("poseidon_reference.mjs", [[str(v) for v in inputs] for inputs in vectors])
    assert [poseidon(inputs) for inputs in vectors] == [int(value) for value in expected]


def test_known_vector() -> None:
    # Published circomlib test vector for Poseidon([1, 2]).
    assert poseidon([1, 2]) == 7853200120776062878684798364095072458815029376092732009249414926327459813530


@pytest.mark.parametrize("inputs", [[], [1] * 7])
def test_rejects_wrong_input_count(inputs: list[int]) -> None:
    with pytest.raises(ValueError, match="1 to 6 inputs"):
        poseidon(inputs)


@pytest.mark.parametrize("value", [-1, SNARK_SCALAR_FIELD])
def test_rejects_non_field_inputs(value: int) -> None:
    with pytest.raises(ValueError, match="not a field element"):
        poseidon([value, 1])


def test_committed_constants_are_fresh() -> None:
    script = REPOSITORY_ROOT / "circuits" / "scripts" / "extract_poseidon_constants.py"
    spec = importlib.util.spec_from_file_location("extract_poseidon_constants", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    committed = (REPOSITORY_ROOT / "node" / "crossclear" / "zk" / "_poseidon_constants.json").read_text()
    assert module.render(module.extract()) == committed
    assert len(json.loads(committed)["widths"]) == 6

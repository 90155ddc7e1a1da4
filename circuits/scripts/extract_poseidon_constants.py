"""Write the Poseidon round constants crossclear uses, taken from circomlibjs.

circomlibjs ships the constants of every Poseidon width (t = 2..17) as one ~900 KB JSON file.
crossclear only needs 1 to 6 inputs (t = 2..7), so this script keeps those widths and writes
them next to the Python code that loads them. Run from the repository root:

    .venv/bin/python circuits/scripts/extract_poseidon_constants.py

A test regenerates the data in memory and compares it with the committed file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPOSITORY_ROOT / "node_modules" / "circomlibjs" / "src" / "poseidon_constants.json"
TARGET = REPOSITORY_ROOT / "node" / "crossclear" / "zk" / "_poseidon_constants.json"
MAX_INPUTS = 6

#: Partial-round counts per width t = 2..17, as in circomlibjs' poseidon_reference.js.
PARTIAL_ROUNDS = [56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68]
FULL_ROUNDS = 8


def extract(source: Path = SOURCE) -> dict[str, Any]:
    """The committed data: per input count, the round constants C and the MDS matrix M."""
    constants = json.loads(source.read_text())
    widths = []
    for input_count in range(1, MAX_INPUTS + 1):
        index = input_count - 1
        width = input_count + 1
        round_constants = [str(int(value, 16)) for value in constants["C"][index]]
        matrix = [[str(int(value, 16)) for value in row] for row in constants["M"][index]]
        assert len(round_constants) == width * (FULL_ROUNDS + PARTIAL_ROUNDS[index])
        assert len(matrix) == width and all(len(row) == width for row in matrix)
        widths.append(
            {
                "inputs": input_count,
                "full_rounds": FULL_ROUNDS,
                "partial_rounds": PARTIAL_ROUNDS[index],
                "round_constants": round_constants,
                "mds": matrix,
            }
        )
    return {
        "source": "circomlibjs 0.1.7 src/poseidon_constants.json (widths t = 2..7)",
        "widths": widths,
    }


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=1) + "\n"


def main() -> int:
    TARGET.write_text(render(extract()))
    print(f"wrote {TARGET.relative_to(REPOSITORY_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

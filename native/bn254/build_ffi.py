"""cffi (API mode) build of the native BN254 Groth16 verifier as `crossclear.zk._bn254`."""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

SOURCES = [
    "bn254_field.c",
    "bn254_tower.c",
    "bn254_curve.c",
    "bn254_pairing.c",
    "bn254_encoding.c",
    "bn254_groth16.c",
    "bn254_ops.c",
]

#: Declarations cffi exposes; they mirror bn254.h, which the compiler checks them against.
CDEF = """
#define BN254_VALID 1
#define BN254_INVALID 0
#define BN254_ERROR_SIGNAL_COUNT -1
#define BN254_ERROR_SIGNAL_RANGE -2
#define BN254_ERROR_COORDINATE_RANGE -3
#define BN254_ERROR_A_NOT_ON_CURVE -4
#define BN254_ERROR_A_AT_INFINITY -5
#define BN254_ERROR_B_NOT_ON_TWIST -6
#define BN254_ERROR_B_AT_INFINITY -7
#define BN254_ERROR_B_NOT_IN_SUBGROUP -8
#define BN254_ERROR_C_NOT_ON_CURVE -9
#define BN254_ERROR_C_AT_INFINITY -10
#define BN254_ERROR_OUT_OF_MEMORY -11
#define BN254_ERROR_RANDOMNESS -12
#define BN254_ERROR_KEY_POINT -13

#define BN254_OP_ADD 0
#define BN254_OP_SUB 1
#define BN254_OP_MUL 2
#define BN254_OP_SQUARE 3
#define BN254_OP_INVERSE 4
#define BN254_OP_FROBENIUS_1 5
#define BN254_OP_FROBENIUS_2 6
#define BN254_OP_FROBENIUS_3 7
#define BN254_OP_CYCLOTOMIC_SQUARE 8
#define BN254_OP_FINAL_EXPONENTIATION 9
#define BN254_OP_DOUBLE 10
#define BN254_OP_SCALAR_MUL 11
#define BN254_OP_IN_SUBGROUP 12
#define BN254_OP_PSI 13
#define BN254_OP_IN_SUBGROUP_BY_ORDER 14
#define BN254_OP_FIXED_BASE_MUL 15
#define BN254_OP_MUL_BY_XI 16
#define BN254_OP_MUL_BY_SMALL 17

typedef struct bn254_groth16_key bn254_groth16_key;
int bn254_groth16_key_new(bn254_groth16_key **out, const uint8_t *alpha, const uint8_t *beta,
                          const uint8_t *gamma, const uint8_t *delta, const uint8_t *ic,
                          size_t public_count);
void bn254_groth16_key_free(bn254_groth16_key *key);
int bn254_groth16_verify(const bn254_groth16_key *key, const uint8_t *proof, const uint8_t *signals,
                         size_t signal_count);
int bn254_groth16_verify_batch(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                               size_t signal_count, size_t count, int *statuses);
int bn254_op_field(int degree, int op, uint8_t *out, const uint8_t *a, const uint8_t *b);
int bn254_op_g1(int op, uint8_t *out, const uint8_t *a, const uint8_t *b, const uint8_t *scalar);
int bn254_op_g2(int op, uint8_t *out, const uint8_t *a, const uint8_t *b, const uint8_t *scalar);
int bn254_op_pairing(uint8_t *out, const uint8_t *g1_points, const uint8_t *g2_points, size_t count);
int bn254_op_batch_combined_check(const bn254_groth16_key *key, const uint8_t *proofs, const uint8_t *signals,
                                  size_t signal_count, size_t count, int *statuses);
"""

#: Portable flags: the same binary must run on every CI machine of this kind.
COMPILE_ARGS = ["-O3", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing"]


def make_builder(extra_compile_args: list[str] | None = None, absolute_paths: bool = False) -> FFI:
    """The extension's builder. setup.py needs sources relative to the repository root;
    out-of-tree builds (sanitizers, quick rebuilds) pass absolute_paths=True."""
    builder = FFI()
    builder.cdef(CDEF)
    sources = [HERE / name for name in SOURCES]
    builder.set_source(
        "crossclear.zk._bn254",
        '#include "bn254.h"',
        sources=[str(path) if absolute_paths else path.relative_to(REPO).as_posix() for path in sources],
        include_dirs=[str(HERE)],
        extra_compile_args=COMPILE_ARGS + (extra_compile_args or []),
        extra_link_args=[arg for arg in (extra_compile_args or []) if arg.startswith("-fsanitize")],
    )
    return builder


ffibuilder = make_builder()


def build_into(directory: Path, extra_compile_args: list[str] | None = None) -> Path:
    """Compiles the extension under directory and returns the path of the shared library."""
    builder = make_builder(extra_compile_args, absolute_paths=True)
    return Path(builder.compile(tmpdir=str(directory)))


if __name__ == "__main__":
    import argparse
    import shutil

    parser = argparse.ArgumentParser(description="Build the BN254 extension out of tree.")
    parser.add_argument("--build-dir", type=Path, required=True)
    parser.add_argument("--sanitize", action="store_true", help="AddressSanitizer + UBSan build")
    parser.add_argument("--install", action="store_true", help="copy the result into node/crossclear/zk/")
    arguments = parser.parse_args()
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-O1", "-g"]
    library = build_into(arguments.build_dir, flags if arguments.sanitize else None)
    if arguments.install:
        shutil.copy2(library, REPO / "node" / "crossclear" / "zk" / library.name)
    print(library)

"""Arbitrary bytes straight into the C entry points (no Python range checks in front):
always a defined status, never a crash or a false accept. Under `make sanitize` this is the
memory-safety check of the parsing paths."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from py_ecc.optimized_bn128 import optimized_curve as curve

from crossclear.zk import VerificationKey, get_backend, load_proof, load_public_signals, load_verification_key

from .examples import examples
from .reference import R, g1_affine, g1_bytes, g2_affine, g2_bytes

REPOSITORY = Path(__file__).resolve().parents[2]
PROOF = REPOSITORY / "tests" / "zk" / "fixtures" / "proofs" / "00"
REJECTIONS = set(range(-10, 0))


@pytest.fixture(scope="module")
def key() -> VerificationKey:
    return load_verification_key(REPOSITORY / "circuits" / "artifacts" / "vkey.json")


@pytest.fixture(scope="module")
def handle(native: ModuleType, key: VerificationKey) -> Any:
    from crossclear.zk import _native_backend

    return _native_backend._prepare_key(key).handle


@examples(60)
@given(st.binary(min_size=256, max_size=256), st.binary(min_size=8 * 32, max_size=8 * 32))
def test_random_bytes_are_rejected_or_invalid(native: ModuleType, handle: Any, proof: bytes, signals: bytes) -> None:
    status = native.lib.bn254_groth16_verify(handle, proof, signals, 8)
    assert status in REJECTIONS | {native.lib.BN254_INVALID}


@examples(8)
@given(st.integers(min_value=1, max_value=R - 1), st.integers(min_value=1, max_value=R - 1))
def test_random_valid_points_do_not_verify(native: ModuleType, handle: Any, a: int, b: int) -> None:
    proof = (
        g1_bytes(g1_affine(curve.multiply(curve.G1, a)))
        + g2_bytes(g2_affine(curve.multiply(curve.G2, b)))
        + g1_bytes(g1_affine(curve.multiply(curve.G1, a * b % R)))
    )
    signals = b"".join((i * 7919).to_bytes(32, "big") for i in range(8))
    assert native.lib.bn254_groth16_verify(handle, proof, signals, 8) == native.lib.BN254_INVALID


def test_batch_of_random_bytes(native: ModuleType, handle: Any) -> None:
    rng = random.Random(11)
    count = 12
    proofs = bytes(rng.getrandbits(8) for _ in range(256 * count))
    signals = bytes(rng.getrandbits(8) for _ in range(32 * 8 * count))
    statuses = native.ffi.new("int[]", count)
    assert native.lib.bn254_groth16_verify_batch(handle, proofs, signals, 8, count, statuses) == 0
    assert all(status in REJECTIONS | {native.lib.BN254_INVALID} for status in statuses)
    assert native.lib.bn254_groth16_verify_batch(handle, proofs, signals, 7, count, statuses) == 0
    assert list(statuses) == [native.lib.BN254_ERROR_SIGNAL_COUNT] * count


def test_key_from_random_bytes_is_refused(native: ModuleType) -> None:
    rng = random.Random(3)
    out = native.ffi.new("bn254_groth16_key **")
    for _ in range(5):
        blob = bytes(rng.getrandbits(8) for _ in range(64 + 3 * 128 + 64 * 3))
        status = native.lib.bn254_groth16_key_new(out, blob[:64], blob[64:192], blob[192:320], blob[320:448], blob[448:], 2)
        assert status in (native.lib.BN254_ERROR_COORDINATE_RANGE, native.lib.BN254_ERROR_KEY_POINT)
        assert out[0] == native.ffi.NULL


def test_concurrent_verifications_share_one_key(key: VerificationKey) -> None:
    # No global mutable state in C, the key is read-only: threads may verify at once.
    backend = get_backend("native")
    proof, signals = load_proof(PROOF / "proof.json"), load_public_signals(PROOF / "public.json")
    changed = (signals[0] + 1, *signals[1:])
    jobs = [(signals if i % 2 == 0 else changed) for i in range(16)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda job: backend.verify(key, proof, job), jobs))
    assert results == [i % 2 == 0 for i in range(16)]

"""The native Groth16 backend: BN254 pairing and verification in C (`native/bn254/`).

Registers itself as `native` with `crossclear.zk.backends` on import. Importing fails with
ImportError when the compiled extension `crossclear.zk._bn254` is missing, which the backend
registry treats as "native not available".

`verify` and `verify_batch` check everything a pairing must never see, in the py_ecc
backend's order: `groth16.check_ranges` in Python (signal count, signal range, coordinate
range), then in C A, C and B: infinity, curve, and for B the order-r subgroup. So curve and
subgroup membership, which `check_well_formed` leaves out, are always checked here (about
0.15 ms, mostly B's subgroup test). Rejections raise `MalformedProof` with the same one-line
wording as the py_ecc backend (in a batch the item is False).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from crossclear.zk._bn254 import ffi, lib
from crossclear.zk.backends import ProofItem, register_backend
from crossclear.zk.groth16 import (
    BASE_FIELD,
    G1Point,
    G2Point,
    MalformedProof,
    Proof,
    VerificationKey,
    check_ranges,
)

PROOF_BYTES = 256
SIGNAL_BYTES = 32

#: What each pre-pairing rejection from the C code means, in the py_ecc backend's words.
_POINT_ERRORS: dict[int, str] = {
    lib.BN254_ERROR_A_AT_INFINITY: "proof A: point at infinity",
    lib.BN254_ERROR_A_NOT_ON_CURVE: "proof A: point is not on the BN254 curve",
    lib.BN254_ERROR_C_AT_INFINITY: "proof C: point at infinity",
    lib.BN254_ERROR_C_NOT_ON_CURVE: "proof C: point is not on the BN254 curve",
    lib.BN254_ERROR_B_AT_INFINITY: "proof B: point at infinity",
    lib.BN254_ERROR_B_NOT_ON_TWIST: "proof B: point is not on the BN254 twist",
    lib.BN254_ERROR_B_NOT_IN_SUBGROUP: "proof B: point is not in the order-r subgroup of G2",
}


class NativeVerifierError(RuntimeError):
    """The C verifier could not run at all (out of memory, no OS randomness)."""


def _fp(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _g1_bytes(point: G1Point) -> bytes:
    return _fp(point[0]) + _fp(point[1])


def _g2_bytes(point: G2Point) -> bytes:
    (x0, x1), (y0, y1) = point
    return _fp(x0) + _fp(x1) + _fp(y0) + _fp(y1)


def _proof_bytes(proof: Proof) -> bytes:
    return _g1_bytes(proof.a) + _g2_bytes(proof.b) + _g1_bytes(proof.c)


def _signal_bytes(signals: Sequence[int]) -> bytes:
    return b"".join(signal.to_bytes(SIGNAL_BYTES, "big") for signal in signals)


@dataclass(frozen=True)
class _NativeKey:
    """A verification key parsed and precomputed by the C code (e(alpha, beta), gamma and
    delta lines); freed with the object."""

    handle: Any
    """cffi pointer to the C `bn254_groth16_key`, released by the garbage collector."""
    public_count: int
    """Number of public signals a proof under this key carries."""


def _check_key_ranges(key: VerificationKey) -> None:
    points: list[tuple[str, tuple[int, ...]]] = [("alpha", key.alpha_g1)]
    for name, (x, y) in (("beta", key.beta_g2), ("gamma", key.gamma_g2), ("delta", key.delta_g2)):
        points.append((name, (*x, *y)))
    points.extend((f"IC[{index}]", point) for index, point in enumerate(key.ic))
    for name, values in points:
        for value in values:
            if not 0 <= value < BASE_FIELD:
                raise MalformedProof(f"verification key {name}: coordinate {value} is not below the base field order p")
    if key.delta_g2 == key.gamma_g2:
        raise MalformedProof("verification key: delta equals gamma (no phase-2 contribution; proofs are forgeable)")


@lru_cache(maxsize=16)
def _prepare_key(key: VerificationKey) -> _NativeKey:
    _check_key_ranges(key)
    if not key.ic:
        raise MalformedProof("verification key: IC must be a non-empty list")
    out = ffi.new("bn254_groth16_key **")
    status = lib.bn254_groth16_key_new(
        out,
        _g1_bytes(key.alpha_g1),
        _g2_bytes(key.beta_g2),
        _g2_bytes(key.gamma_g2),
        _g2_bytes(key.delta_g2),
        b"".join(_g1_bytes(point) for point in key.ic),
        key.public_count,
    )
    if status == lib.BN254_ERROR_OUT_OF_MEMORY:
        raise NativeVerifierError("native verifier: out of memory preparing the verification key")
    if status != lib.BN254_VALID:
        raise MalformedProof("verification key: a point is at infinity, off its curve or outside the order-r subgroup")
    return _NativeKey(handle=ffi.gc(out[0], lib.bn254_groth16_key_free), public_count=key.public_count)


def _raise_for(status: int) -> None:
    if status in _POINT_ERRORS:
        raise MalformedProof(_POINT_ERRORS[status])
    if status == lib.BN254_ERROR_OUT_OF_MEMORY:
        raise NativeVerifierError("native verifier: out of memory")
    # Counts and ranges were checked in Python first, so any other code is a bug here.
    raise NativeVerifierError(f"native verifier: unexpected status {status}")


class NativeBackend:
    """Groth16 verification in C; same contract as the py_ecc backend (see `backends`)."""

    name = "native"

    def verify(self, key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> bool:
        signals = tuple(public_signals)
        check_ranges(key, proof, signals)
        native_key = _prepare_key(key)
        status = lib.bn254_groth16_verify(native_key.handle, _proof_bytes(proof), _signal_bytes(signals), len(signals))
        if status in (lib.BN254_VALID, lib.BN254_INVALID):
            return bool(status == lib.BN254_VALID)
        _raise_for(status)
        return False

    def verify_batch(self, key: VerificationKey, items: Sequence[ProofItem]) -> list[bool]:
        """n + 2 Miller loops and one final exponentiation with random 128-bit weights from
        getrandom(2); on failure the C code re-checks each proof alone."""
        results = [False] * len(items)
        native_key = _prepare_key(key)
        candidates: list[int] = []
        for index, (proof, public_signals) in enumerate(items):
            try:
                check_ranges(key, proof, tuple(public_signals))
            except MalformedProof:
                continue
            candidates.append(index)
        if not candidates:
            return results
        proofs = b"".join(_proof_bytes(items[index][0]) for index in candidates)
        signals = b"".join(_signal_bytes(tuple(items[index][1])) for index in candidates)
        statuses = ffi.new("int[]", len(candidates))
        outcome = lib.bn254_groth16_verify_batch(
            native_key.handle, proofs, signals, native_key.public_count, len(candidates), statuses
        )
        if outcome == lib.BN254_ERROR_RANDOMNESS:
            raise NativeVerifierError("native verifier: the OS random source failed; batch not checked")
        if outcome != 0:
            _raise_for(outcome)
        for position, index in enumerate(candidates):
            results[index] = statuses[position] == lib.BN254_VALID
        return results


register_backend("native", NativeBackend)

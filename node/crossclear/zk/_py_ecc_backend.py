"""The pure-Python Groth16 backend (py_ecc field arithmetic, `crossclear.zk._pairing`).

Single proof:  e(-A, B) * e(vk_x, gamma) * e(C, delta) == e(alpha, beta)^-1, one multi-Miller
loop over three pairs and one final exponentiation; e(alpha, beta)^-1 and the G2 halves of
the gamma and delta loops are prepared once per key.

Batch of n: with random 128-bit weights w_i from the OS source,
    prod_i e(-w_i A_i, B_i) * e(sum_i w_i vk_x_i, gamma) * e(sum_i w_i C_i, delta)
        == e(alpha, beta)^-(sum_i w_i),
n + 2 Miller loops and one final exponentiation. A forged proof passes only if the weights
happen to cancel its error, probability about 2^-128. If the batch fails it is split in
halves recursively, so a failing item costs O(log n) extra batches.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from py_ecc.fields import optimized_bn128_FQ as FQ
from py_ecc.fields import optimized_bn128_FQ12 as FQ12
from py_ecc.optimized_bn128 import optimized_curve as curve

from crossclear.zk import _pairing
from crossclear.zk.backends import ProofItem
from crossclear.zk.groth16 import (
    SCALAR_FIELD,
    G1Point,
    MalformedProof,
    Proof,
    VerificationKey,
    check_proof_points,
    check_ranges,
    g1_to_py_ecc,
    g2_to_py_ecc,
)

WEIGHT_BITS = 128
ProjectiveG1 = tuple[FQ, FQ, FQ]


@dataclass(frozen=True)
class _PreparedKey:
    """Per-key values computed once."""

    gamma: _pairing.PreparedG2
    """G2 half of the Miller loop for gamma."""
    delta: _pairing.PreparedG2
    """G2 half of the Miller loop for delta."""
    alpha_beta_inverse: FQ12
    """e(alpha, beta)^-1."""
    ic: tuple[ProjectiveG1, ...]
    """IC points in py_ecc form."""


@lru_cache(maxsize=16)
def _prepare_key(key: VerificationKey) -> _PreparedKey:
    alpha_beta = _pairing.pairing(g2_to_py_ecc(key.beta_g2), key.alpha_g1)
    return _PreparedKey(
        gamma=_pairing.prepare_g2(g2_to_py_ecc(key.gamma_g2)),
        delta=_pairing.prepare_g2(g2_to_py_ecc(key.delta_g2)),
        alpha_beta_inverse=FQ12.one() / alpha_beta,
        ic=tuple(g1_to_py_ecc(point) for point in key.ic),
    )


def _affine(point: ProjectiveG1) -> G1Point | None:
    if curve.is_inf(point):
        return None
    x, y = curve.normalize(point)
    return (int(x), int(y))


def _linear_combination(points: Sequence[ProjectiveG1], scalars: Sequence[int]) -> ProjectiveG1:
    total: ProjectiveG1 = curve.Z1
    for point, scalar in zip(points, scalars):
        if scalar % SCALAR_FIELD:
            total = curve.add(total, curve.multiply(point, scalar % SCALAR_FIELD))
    return total


def _pairs(
    prepared: _PreparedKey,
    proofs: Sequence[tuple[_pairing.PreparedG2, Proof]],
    signals: Sequence[Sequence[int]],
    weights: Sequence[int],
) -> list[tuple[_pairing.PreparedG2, G1Point]]:
    pairs: list[tuple[_pairing.PreparedG2, G1Point]] = []
    for (prepared_b, proof), weight in zip(proofs, weights):
        minus_weighted_a = _affine(curve.neg(curve.multiply(g1_to_py_ecc(proof.a), weight)))
        if minus_weighted_a is not None:
            pairs.append((prepared_b, minus_weighted_a))
    # sum_i w_i vk_x_i = (sum_i w_i) IC_0 + sum_j (sum_i w_i s_ij) IC_j: one multiplication per IC.
    ic_scalars = [sum(weights)] + [
        sum(weight * item_signals[j] for weight, item_signals in zip(weights, signals))
        for j in range(len(prepared.ic) - 1)
    ]
    vk_x = _affine(_linear_combination(prepared.ic, ic_scalars))
    c_sum = _affine(_linear_combination([g1_to_py_ecc(proof.c) for _, proof in proofs], weights))
    if vk_x is not None:
        pairs.append((prepared.gamma, vk_x))
    if c_sum is not None:
        pairs.append((prepared.delta, c_sum))
    return pairs


def _check_input(key: VerificationKey, proof: Proof, signals: tuple[int, ...]) -> None:
    """Everything a pairing must never see, in the native backend's order and words: the
    integer checks, then A, C and B not at infinity, on their curves, B in the subgroup.
    `check_well_formed` does not check curve membership, so this backend must."""
    check_ranges(key, proof, signals)
    check_proof_points(proof)


class PyEccBackend:
    """Groth16 verification in pure Python; see the module docstring for the equations."""

    name = "py_ecc"

    def verify(self, key: VerificationKey, proof: Proof, public_signals: Sequence[int]) -> bool:
        signals = tuple(public_signals)
        _check_input(key, proof, signals)
        prepared = _prepare_key(key)
        prepared_b = _pairing.prepare_g2(g2_to_py_ecc(proof.b))
        pairs = _pairs(prepared, [(prepared_b, proof)], [signals], [1])
        return _pairing.pairing_product_is_one(pairs, prepared.alpha_beta_inverse)

    def verify_batch(self, key: VerificationKey, items: Sequence[ProofItem]) -> list[bool]:
        results = [False] * len(items)
        well_formed: list[int] = []
        for index, (proof, public_signals) in enumerate(items):
            try:
                _check_input(key, proof, tuple(public_signals))
            except MalformedProof:
                continue
            well_formed.append(index)
        if not well_formed:
            return results
        prepared = _prepare_key(key)
        prepared_bs = {index: _pairing.prepare_g2(g2_to_py_ecc(items[index][0].b)) for index in well_formed}

        def batch_holds(indices: list[int]) -> bool:
            weights = [secrets.randbits(WEIGHT_BITS) | 1 for _ in indices]
            proofs = [(prepared_bs[index], items[index][0]) for index in indices]
            signals = [tuple(items[index][1]) for index in indices]
            pairs = _pairs(prepared, proofs, signals, weights)
            target = prepared.alpha_beta_inverse ** (sum(weights) % SCALAR_FIELD)
            return _pairing.pairing_product_is_one(pairs, target)

        def settle(indices: list[int], known_to_fail: bool) -> bool:
            # known_to_fail: the parent failed and the sibling passed, so skip re-checking.
            if not known_to_fail and batch_holds(indices):
                for index in indices:
                    results[index] = True
                return True
            if len(indices) > 1:
                middle = len(indices) // 2
                left_holds = settle(indices[:middle], known_to_fail=False)
                settle(indices[middle:], known_to_fail=left_holds)
            return False

        settle(well_formed, known_to_fail=False)
        return results

"""`crossclear bench zk --json`: single and batch Groth16 verification time per backend.

Uses real proofs of the committed circuit: the fixture proofs in tests/zk/fixtures (made by
circuits/scripts/make_fixture_proofs.py) or a folder given with --proofs holding
NN/proof.json and NN/public.json. Batches larger than the number of distinct proofs reuse
them (each batch item still gets its own random weight), so every backend times the same
proofs. py_ecc runs fewer repetitions because one verification takes a large fraction of a
second.

Output: {"py_ecc": {"single_ms", "batch8_ms_per_proof", "batch64_ms_per_proof"}, and when
the native backend is registered "native": {...}, "speedup_single" and
"claim_cpu_ms": {"p50", "p99"}}. claim_cpu_ms is the process CPU time of the node's whole
per-claim check (parse_proof, parse_public_signals, check_well_formed, from_signals, native
verify) on the first proof's JSON documents, over CLAIM_SAMPLES passes
(`crossclear.zk.measure_claim_cpu`); the other figures are wall-clock medians.

With --reference it also times the textbook py_ecc check on the same first proof: the four
pairings of e(A,B) = e(alpha,beta) e(vk_x,gamma) e(C,delta), each with py_ecc's own `pairing()`
and final exponentiation. That is the ~1.3 s path the native verifier's issue measured its
targets against; our py_ecc backend (one multi-Miller loop, one final exponentiation,
prepared G2 lines) is several times faster than it, so both ratios are reported.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossclear._errors import UsageError
from crossclear.zk.artifacts import REPOSITORY_ROOT, default_artifacts
from crossclear.zk.backends import Groth16Backend, ProofItem, available_backends, get_backend
from crossclear.zk.claim_cost import measure_claim_cpu
from crossclear.zk.groth16 import (
    MalformedProof,
    VerificationKey,
    load_proof,
    load_public_signals,
    load_verification_key,
)

DEFAULT_PROOFS_DIR = REPOSITORY_ROOT / "tests" / "zk" / "fixtures" / "proofs"


@dataclass(frozen=True)
class _Repetitions:
    """How many times each measurement runs for one backend."""

    single: int
    """Single verifications timed (median reported)."""
    batch8: int
    """Batches of 8 timed."""
    batch64: int
    """Batches of 64 timed."""


_REPETITIONS = {"py_ecc": _Repetitions(single=3, batch8=1, batch64=1)}
_FAST_REPETITIONS = _Repetitions(single=200, batch8=50, batch64=10)
#: Claims timed for claim_cpu_ms.
CLAIM_SAMPLES = 300


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = subparsers.add_parser("zk", help="time Groth16 verification (single and batched) per backend")
    bench.add_argument("--json", action="store_true", help="print the figures as one JSON object (the default)")
    bench.add_argument("--proofs", type=Path, default=DEFAULT_PROOFS_DIR, help="folder of NN/proof.json + public.json")
    bench.add_argument("--vkey", type=Path, help="verification key (default: circuits/artifacts/vkey.json)")
    bench.add_argument("--backend", action="append", help="only these backends (repeatable)")
    bench.add_argument("--reference", action="store_true", help="also time the textbook py_ecc check (four pairings), once")
    bench.set_defaults(handler=run_bench)


def load_proof_items(folder: Path) -> list[ProofItem]:
    if not folder.is_dir():
        raise UsageError(f"--proofs {folder}: not a folder")
    items: list[ProofItem] = []
    for entry in sorted(path for path in folder.iterdir() if (path / "proof.json").exists()):
        items.append((load_proof(entry / "proof.json"), load_public_signals(entry / "public.json")))
    if not items:
        raise UsageError(f"--proofs {folder}: no NN/proof.json found")
    return items


def load_claim_documents(folder: Path) -> tuple[Any, Any]:
    """The first NN/proof.json and NN/public.json of `folder`, decoded as the API gets them."""
    first = sorted(path for path in folder.iterdir() if (path / "proof.json").exists())[0]
    try:
        return json.loads((first / "proof.json").read_text()), json.loads((first / "public.json").read_text())
    except (OSError, ValueError) as error:
        raise UsageError(f"--proofs {first}: cannot read the claim documents ({error})") from None


def _median_ms(action: Callable[[], object], repetitions: int, divide_by: int = 1) -> float:
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000.0 / divide_by)
    samples.sort()
    return float(f"{samples[len(samples) // 2]:.4g}")


def measure(backend: Groth16Backend, key: VerificationKey, items: list[ProofItem], repetitions: _Repetitions) -> dict[str, float]:
    proof, signals = items[0]
    if not backend.verify(key, proof, signals):
        raise UsageError("benchmark proofs do not verify against the verification key (stale fixtures?)")
    batch8 = [items[i % len(items)] for i in range(8)]
    batch64 = [items[i % len(items)] for i in range(64)]
    return {
        "single_ms": _median_ms(lambda: backend.verify(key, proof, signals), repetitions.single),
        "batch8_ms_per_proof": _median_ms(lambda: backend.verify_batch(key, batch8), repetitions.batch8, 8),
        "batch64_ms_per_proof": _median_ms(lambda: backend.verify_batch(key, batch64), repetitions.batch64, 64),
    }


def _textbook_check(key: VerificationKey, proof: object, signals: object) -> bool:
    """Groth16 as textbooks write it with py_ecc: four separate pairings, compared in Fp12."""
    from py_ecc.optimized_bn128.optimized_curve import add, multiply
    from py_ecc.optimized_bn128.optimized_pairing import pairing

    from crossclear.zk.groth16 import Proof, g1_to_py_ecc, g2_to_py_ecc

    assert isinstance(proof, Proof) and isinstance(signals, tuple)
    vk_x = g1_to_py_ecc(key.ic[0])
    for coefficient, point in zip(signals, key.ic[1:]):
        vk_x = add(vk_x, multiply(g1_to_py_ecc(point), coefficient))
    left = pairing(g2_to_py_ecc(proof.b), g1_to_py_ecc(proof.a))
    right = (
        pairing(g2_to_py_ecc(key.beta_g2), g1_to_py_ecc(key.alpha_g1))
        * pairing(g2_to_py_ecc(key.gamma_g2), vk_x)
        * pairing(g2_to_py_ecc(key.delta_g2), g1_to_py_ecc(proof.c))
    )
    return bool(left == right)


def run_bench(args: argparse.Namespace) -> int:
    vkey_path = args.vkey or default_artifacts().verification_key
    try:
        key = load_verification_key(vkey_path)
        items = load_proof_items(args.proofs)
    except MalformedProof as error:
        raise UsageError(f"benchmark input rejected: {error}") from None
    names = args.backend or available_backends()
    unknown = [name for name in names if name not in available_backends()]
    if unknown:
        raise UsageError(f"--backend {unknown[0]}: not available (available: {', '.join(available_backends())})")
    # Fast backends first so their figures do not depend on py_ecc having warmed anything.
    ordered = sorted(names, key=lambda name: name == "py_ecc")
    figures: dict[str, dict[str, float]] = {}
    for name in ordered:
        repetitions = _REPETITIONS.get(name, _FAST_REPETITIONS)
        figures[name] = measure(get_backend(name), key, items, repetitions)
    result: dict[str, object] = {name: figures[name] for name in sorted(figures, key=lambda name: name != "py_ecc")}
    if "py_ecc" in figures and "native" in figures and figures["native"]["single_ms"] > 0:
        result["speedup_single"] = round(figures["py_ecc"]["single_ms"] / figures["native"]["single_ms"], 1)
    if "native" in figures:
        proof_document, public_document = load_claim_documents(args.proofs)
        try:
            result["claim_cpu_ms"] = measure_claim_cpu(proof_document, public_document, key, CLAIM_SAMPLES, get_backend("native"))
        except (MalformedProof, ValueError) as error:
            raise UsageError(f"claim benchmark: {error}") from None
    if args.reference:
        reference_ms = _median_ms(lambda: _textbook_check(key, *items[0]), 1)
        result["py_ecc_textbook"] = {"single_ms": reference_ms}
        if "native" in figures and figures["native"]["single_ms"] > 0:
            result["speedup_single_vs_textbook"] = round(reference_ms / figures["native"]["single_ms"], 1)
    print(json.dumps(result))
    return 0

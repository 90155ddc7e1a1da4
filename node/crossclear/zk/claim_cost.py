"""CPU cost of checking one collateral claim, the way the node checks it.

`measure_claim_cpu(proof_document, public_document, key, samples)` runs, `samples` times,
exactly the sequence `crossclear.node.claims.ClaimProcessor` runs on every claim:

    parse_proof -> parse_public_signals -> check_well_formed -> ClaimPublicSignals.from_signals
        -> backend.verify

and returns the median and 99th percentile of the process CPU time one pass took
(`time.process_time_ns`, so time the process spent waiting for a shared core does not
count; CPU used meanwhile by other threads of the same process does). The node's own
checks between from_signals and verify (domain, token, certified root, nullifier lookup)
are not included: they are dictionary and SQLite look-ups, not proof checking.

`crossclear bench zk --json` reports it as `"claim_cpu_ms": {"p50", "p99"}`.
"""

from __future__ import annotations

import time
from typing import Any

from crossclear.zk.backends import Groth16Backend, get_backend
from crossclear.zk.claim import ClaimPublicSignals
from crossclear.zk.groth16 import VerificationKey, check_well_formed, parse_proof, parse_public_signals

#: Passes run before timing starts (key preparation, caches).
WARM_UP = 5


def check_claim(backend: Groth16Backend, key: VerificationKey, proof_document: Any, public_document: Any) -> bool:
    """One pass of the node's claim check on snarkjs JSON documents (already decoded).

    Raises `MalformedProof` like the node's path does; returns `backend.verify`'s answer."""
    proof = parse_proof(proof_document)
    signals = parse_public_signals(public_document)
    check_well_formed(key, proof, signals)
    ClaimPublicSignals.from_signals(signals)
    return backend.verify(key, proof, signals)


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


def measure_claim_cpu(
    proof_document: Any,
    public_document: Any,
    key: VerificationKey,
    samples: int = 200,
    backend: Groth16Backend | str = "native",
) -> dict[str, float]:
    """`{"p50": ms, "p99": ms}`: process CPU milliseconds per claim over `samples` passes
    of the claim path (see module doc) with `backend` (a name or an instance; the native
    backend by default, KeyError when it is not built).

    The documents are the decoded `proof.json` object and `public.json` list. A claim that
    does not verify raises ValueError (a bench of a rejected claim measures the wrong path);
    a malformed one raises `MalformedProof`."""
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    chosen = get_backend(backend) if isinstance(backend, str) else backend
    for _ in range(WARM_UP):
        if not check_claim(chosen, key, proof_document, public_document):
            raise ValueError("the claim does not verify against the verification key; nothing to measure")
    timings: list[float] = []
    clock = time.process_time_ns
    for _ in range(samples):
        start = clock()
        accepted = check_claim(chosen, key, proof_document, public_document)
        timings.append((clock() - start) / 1e6)
        if not accepted:
            raise ValueError("the claim stopped verifying during the measurement")
    timings.sort()
    return {"p50": float(f"{_percentile(timings, 0.5):.4g}"), "p99": float(f"{_percentile(timings, 0.99):.4g}")}

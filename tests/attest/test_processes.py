"""Four nodes as four OS processes: certify, lose one to SIGKILL, keep certifying, bring it
back on the same SQLite file and watch it catch up without losing what it had."""

import time
from pathlib import Path

import pytest

from crossclear.attest._cluster import ProcessCluster
from crossclear.store import AttestationStore

CHAIN = 31337


def _certified(cluster: ProcessCluster, index: int) -> set[int]:
    store = AttestationStore(cluster.store_path(index))
    try:
        return {int(block) for block in _blocks(store)}
    finally:
        store.close()


def _blocks(store: AttestationStore) -> list[int]:
    from crossclear.v1 import attestation_pb2

    blocks = []
    for blob in store.certificates(CHAIN, 0, 1_000_000):
        certificate = attestation_pb2.QuorumCertificate()
        certificate.ParseFromString(blob)
        blocks.append(certificate.observation.block_number)
    return blocks


def _wait(condition: object, timeout_seconds: float, what: str) -> None:
    deadline = time.monotonic() + timeout_seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds:.0f} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_separate_processes_certify_survive_a_kill_and_catch_up(tmp_path: Path) -> None:
    cluster = ProcessCluster(tmp_path, 4, [{"chain_id": CHAIN, "blocks_per_second": 10.0}])
    try:
        cluster.start_all_and_go()
        _wait(lambda: all(len(_certified(cluster, i)) >= 10 for i in range(4)), 60, "10 certificates on every process")

        cluster.kill(3)  # SIGKILL: no chance to flush anything
        held_at_kill = _certified(cluster, 3)
        mark = max(max(_certified(cluster, i)) for i in range(3))
        _wait(
            lambda: all(set(range(1, mark + 10)) <= _certified(cluster, i) for i in range(3)),
            60,
            "3 of 4 processes certifying 10 more blocks",
        )

        cluster.start(3)
        cluster.wait_for_line(3, "ready")
        assert held_at_kill <= _certified(cluster, 3)  # nothing it had was lost
        target = max(max(_certified(cluster, i)) for i in range(3))
        _wait(
            lambda: set(range(1, target + 1)) <= _certified(cluster, 3),
            60,
            f"the restarted process holding certificates 1..{target}",
        )
    finally:
        codes = cluster.stop_all()
    assert codes[:3] == [0, 0, 0]

"""Four node processes, each in its own network namespace, partitioned by taking links down.

Each node runs the attestation service over synthetic chains (crossclear.attest._process) and
applies certified blocks per chain in block order to a log, as the processor does; the tests
read the nodes' stores and logs from outside.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from crossclear.attest._cluster import ProcessCluster
from crossclear.attest._synthetic import SyntheticChain
from crossclear.p2p import now_ms
from crossclear.store import AttestationStore
from crossclear.v1 import attestation_pb2

from .harness import NamespaceNetwork

CHAIN = 31337
RATE = 5.0  # blocks per second


@contextmanager
def _cluster(
    tmp_path: Path,
    network: NamespaceNetwork,
    node_overrides: dict[int, dict[str, object]] | None = None,
    **overrides: object,
) -> Iterator[ProcessCluster]:
    cluster = ProcessCluster(
        tmp_path,
        network.size,
        [{"chain_id": CHAIN, "blocks_per_second": RATE}],
        hosts=network.hosts,
        launchers=[network.launcher(index) for index in range(network.size)],
        overrides={"catch_up_seconds": 1.0, "gossip": {"silent_peer_seconds": 3.0}, **overrides},
        node_overrides=node_overrides or {},
    )
    try:
        cluster.genesis_ms = cluster.start_all_and_go()  # type: ignore[attr-defined]
        assert cluster.connected == [network.size - 1] * network.size, f"not all peers connected: {cluster.connected}"
        yield cluster
    finally:
        cluster.stop_all()


def _chain(cluster: ProcessCluster) -> SyntheticChain:
    return SyntheticChain(CHAIN, cluster.genesis_ms, RATE)  # type: ignore[attr-defined]


def _certified(cluster: ProcessCluster, index: int) -> dict[int, bytes]:
    store = AttestationStore(cluster.store_path(index))
    try:
        roots = {}
        for blob in store.certificates(CHAIN, 0, 10_000_000):
            certificate = attestation_pb2.QuorumCertificate.FromString(blob)
            roots[certificate.observation.block_number] = bytes(certificate.observation.root)
        return roots
    finally:
        store.close()


def _wait(condition: Callable[[], bool], seconds: float, what: str, detail: Callable[[], object] = lambda: "") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what} {detail()}")
        time.sleep(0.2)


def _all_certified(cluster: ProcessCluster, nodes: range, last: int) -> Callable[[], bool]:
    return lambda: all(set(range(1, last + 1)) <= set(_certified(cluster, index)) for index in nodes)


def _highest(cluster: ProcessCluster, index: int) -> int:
    return max(_certified(cluster, index), default=0)


def _check_honest_and_applied_in_order(cluster: ProcessCluster, through: int) -> None:
    """Every certificate anywhere is the honest root; every node applied 1..n once each, in order."""
    chain = _chain(cluster)
    for index in range(cluster.size):
        roots = _certified(cluster, index)
        assert all(root == chain.observation(block).root for block, root in roots.items()), f"node {index} diverged"
    cluster.stop_all()  # flushes and closes the logs
    for index in range(cluster.size):
        lines = Path(cluster.configs[index]["applied_file"]).read_text().split("\n")
        applied = [(int(block), root) for chain_id, block, root in (line.split() for line in lines if line)]
        blocks = [block for block, _ in applied]
        assert blocks == list(range(1, len(blocks) + 1)), f"node {index} applied out of order or twice: {blocks[:50]}"
        assert len(blocks) >= through, f"node {index} applied {len(blocks)} blocks, expected at least {through}"
        assert all(bytes.fromhex(root) == chain.observation(block).root for block, root in applied)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_two_two_partition_certifies_nothing_then_everything_after_the_heal(tmp_path: Path, namespaces: NamespaceNetwork) -> None:
    with _cluster(tmp_path, namespaces) as cluster:
        chain = _chain(cluster)
        _wait(_all_certified(cluster, range(4), 10), 30, "blocks 1..10 certified on all four")
        namespaces.set_up(namespaces.trunk, False)
        time.sleep(1.0)  # what was in flight lands
        frozen = max(_highest(cluster, index) for index in range(4))
        time.sleep(12.0)  # 60 more blocks, each signed by two nodes on either side
        for index in range(4):
            assert _highest(cluster, index) <= frozen + 1, f"node {index} certified during the partition"
        namespaces.set_up(namespaces.trunk, True)
        target = chain.head(now_ms())
        _wait(
            _all_certified(cluster, range(4), target),
            40,
            f"blocks 1..{target} certified on all four after the heal",
            lambda: [_highest(cluster, index) for index in range(4)],
        )
        _check_honest_and_applied_in_order(cluster, target)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_three_one_partition_the_three_certify_and_the_one_catches_up(tmp_path: Path, namespaces: NamespaceNetwork) -> None:
    with _cluster(tmp_path, namespaces) as cluster:
        chain = _chain(cluster)
        _wait(_all_certified(cluster, range(4), 10), 30, "blocks 1..10 certified on all four")
        namespaces.set_up(namespaces.link(3), False)
        time.sleep(1.0)
        isolated_at = _highest(cluster, 3)
        mark = chain.head(now_ms())
        _wait(_all_certified(cluster, range(3), mark + 40), 20, f"the three certifying through block {mark + 40}")
        assert _highest(cluster, 3) <= isolated_at + 1, "the isolated node certified alone"
        namespaces.set_up(namespaces.link(3), True)
        target = chain.head(now_ms())
        _wait(
            _all_certified(cluster, range(4), target),
            40,
            f"the isolated node holding blocks 1..{target}",
            lambda: [_highest(cluster, index) for index in range(4)],
        )
        _check_honest_and_applied_in_order(cluster, target)


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_flapping_link_loses_nothing_and_applies_nothing_twice(tmp_path: Path, namespaces: NamespaceNetwork) -> None:
    with _cluster(tmp_path, namespaces) as cluster:
        chain = _chain(cluster)
        _wait(_all_certified(cluster, range(4), 10), 30, "blocks 1..10 certified on all four")
        until = time.monotonic() + 60
        up = True
        while time.monotonic() < until:  # the trunk between the two halves, down and up every 3 s
            up = not up
            namespaces.set_up(namespaces.trunk, up)
            time.sleep(3.0)
        namespaces.set_up(namespaces.trunk, True)
        target = chain.head(now_ms())
        _wait(
            _all_certified(cluster, range(4), target),
            40,
            f"blocks 1..{target} certified on all four after the flapping",
            lambda: [_highest(cluster, index) for index in range(4)],
        )
        _check_honest_and_applied_in_order(cluster, target)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_member_flooding_at_its_budget_does_not_stop_the_others(tmp_path: Path, namespaces: NamespaceNetwork) -> None:
    # A short window (50 blocks behind the head) so that pruning shows within the run.
    with _cluster(tmp_path, namespaces, {3: {"flood": 1.0}}, admission={"behind_blocks": 50}) as cluster:
        chain = _chain(cluster)
        _wait(_all_certified(cluster, range(3), 10), 30, "blocks 1..10 certified on the three honest nodes")
        time.sleep(20.0)
        target = chain.head(now_ms())
        _wait(
            _all_certified(cluster, range(3), target),
            20,
            f"blocks 1..{target} certified on the three honest nodes under the flood",
            lambda: [_highest(cluster, index) for index in range(3)],
        )
        assert _highest(cluster, 3) <= target  # the flooder signs nothing honest, and certifies only what the three did
        cluster.stop_all()
        flooded = cluster.stats(3)["flood"]
        assert flooded["observations"] > 10_000, flooded
        flooder = bytes.fromhex(cluster.configs[3]["members"][3])
        for index in range(3):
            stats = cluster.stats(index)
            # Its fabrications were counted (evidence once per slot) and pruned behind the window.
            assert stats["pruned_rows"] > 0, stats
            store = AttestationStore(cluster.store_path(index))
            try:
                assert store.evidence_by_signer().get(flooder, 0) > 0
                assert store.logical_bytes() < 2 * 1024 * 1024, store.logical_bytes()
            finally:
                store.close()

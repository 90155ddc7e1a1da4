"""In-process clusters of attestation nodes on 127.0.0.1 for the network tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from crossclear._net import free_tcp_port
from crossclear.attest import AttestationNode, NodeConfig, NodeKey
from crossclear.attest._synthetic import SyntheticChain, run_synthetic_adapter
from crossclear.p2p import PeerAddress, now_ms, peer_id_for

from .helpers import KEYS, node_set


def configs(tmp_path: Path, size: int, **overrides: object) -> list[NodeConfig]:
    members = node_set(size)
    keys: Sequence[NodeKey] = KEYS[:size]
    p2p_ports = [free_tcp_port() for _ in keys]
    sync_ports = [free_tcp_port() for _ in keys]
    result = []
    for index, key in enumerate(keys):
        bootstrap = tuple(
            PeerAddress(peer_id_for(other.secret), p2p_ports[j]) for j, other in enumerate(keys) if j != index
        )
        config = NodeConfig(
            key=key,
            node_set=members,
            store_path=tmp_path / f"node{index}.sqlite",
            p2p_port=p2p_ports[index],
            bootstrap=bootstrap,
            sync_port=sync_ports[index],
            sync_peers=tuple(f"127.0.0.1:{port}" for j, port in enumerate(sync_ports) if j != index),
            heartbeat_seconds=0.5,
            catch_up_seconds=1.0,
        )
        result.append(replace(config, **overrides))  # type: ignore[arg-type]
    return result


def chain_clock(chains: Sequence[SyntheticChain]) -> Callable[[int], int | None]:
    """A node's own view of each synthetic chain's head: the chain's clock."""
    by_id = {chain.chain_id: chain for chain in chains}

    def head(chain_id: int) -> int | None:
        chain = by_id.get(chain_id)
        return None if chain is None else chain.head(now_ms())

    return head


class RunningNode:
    """A node plus its synthetic adapter task. Unless the config says otherwise, the node
    admits its chains' emitter and sees each chain's head on the chain's clock."""

    def __init__(self, config: NodeConfig, chains: Sequence[SyntheticChain], byzantine: bool = False) -> None:
        if config.admission.emitters is None:
            emitters = frozenset((chain.chain_id, chain.emitter) for chain in chains)
            config = replace(config, admission=replace(config.admission, emitters=emitters))
        if config.own_head is None:
            config = replace(config, own_head=chain_clock(chains))
        self.config = config
        self.chains = chains
        self.byzantine = byzantine
        self.node: AttestationNode | None = None
        self._adapter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.node = AttestationNode(self.config)
        await self.node.start()
        self._adapter = asyncio.create_task(run_synthetic_adapter(self.node, self.chains, byzantine=self.byzantine))

    async def stop(self) -> None:
        if self._adapter is not None:
            self._adapter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._adapter
            self._adapter = None
        if self.node is not None:
            await self.node.stop()
            self.node = None

    @property
    def running(self) -> AttestationNode:
        assert self.node is not None, "node is stopped"
        return self.node


async def wait_until(
    condition: Callable[[], bool], timeout_seconds: float, what: str, detail: Callable[[], object] = lambda: ""
) -> None:
    """Poll a condition until it holds; fail with `what` (and `detail()`) after the deadline."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_seconds:.0f} s waiting for {what} {detail()}")
        await asyncio.sleep(0.05)


def certified_blocks(node: AttestationNode, chain_id: int) -> set[int]:
    return {
        int(row.block_number)
        for row in _certificates(node, chain_id)
    }


def _certificates(node: AttestationNode, chain_id: int) -> list["_Row"]:
    from crossclear.v1 import attestation_pb2

    rows = []
    for blob in node.store.certificates(chain_id, 0, 1_000_000):
        certificate = attestation_pb2.QuorumCertificate()
        certificate.ParseFromString(blob)
        rows.append(_Row(certificate.observation.block_number, bytes(certificate.observation.root)))
    return rows


class _Row:
    def __init__(self, block_number: int, root: bytes) -> None:
        self.block_number = block_number
        self.root = root


def certified_roots(node: AttestationNode, chain_id: int) -> dict[int, bytes]:
    return {row.block_number: row.root for row in _certificates(node, chain_id)}

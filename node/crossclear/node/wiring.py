"""One crossclear node: every component, and how they connect, in one place.

    chain adapters --observations--> facts --signed facts--> attestation node (libp2p gossip)
                                       ^                            |
                                       +------- certificates -------+
    facts --certified events--> clearing state <--credits-- claims <-- ClaimService / gossip
    clearing state --> MarginService, WithdrawalService (release signatures), liquidations

Everything runs on one asyncio loop; libp2p runs behind the attestation node's bridge, and
CPU-heavy work (kernel recomputes, proof checks) runs on worker threads. At start-up the
clearing state is rebuilt from the node's SQLite file: credited claims, then applied events,
then reserved releases, so a node restarted at any moment comes back with what it had.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from crossclear import __version__
from crossclear._tasks import cancel_and_wait
from crossclear.attest import AttestationNode, Certificate, NodeKey, NodeSet, ObservationKind
from crossclear.attest import NodeConfig as AttestationConfig
from crossclear.chains import ChainAdapterError, Cursor, ReorgTooDeep
from crossclear.chains.cursor_store import CursorStore
from crossclear.chains.evm import EvmChainAdapter
from crossclear.margin import parse_inputs
from crossclear.node.claims import ClaimLedger, ClaimOutcome, ClaimProcessor, CollateralToken, RejectReason
from crossclear.node.clearing import ClearingState
from crossclear.node.config import NodeConfig
from crossclear.node.facts import CertifiedFacts, ChainNames, facts_for_block
from crossclear.node.liquidations import LiquidationDesk
from crossclear.node.metrics import LiveReadings, NodeMetrics
from crossclear.node.withdrawals import WithdrawalDesk
from crossclear.p2p import PeerAddress
from crossclear.rpc import ApiServer, ClaimServicer, LiquidationServicer, ServerLimits, WithdrawalServicer
from crossclear.v1 import claim_pb2, node_pb2
from crossclear.zk import load_verification_key

_log = logging.getLogger("crossclear.node")

#: Pause before a chain follower retries after its adapter failed.
FOLLOW_RETRY_SECONDS = 2.0
#: Gossiped claims whose root this node has not certified yet wait at most this long, and at
#: most this many at once, for the root's certificate (then they are checked again).
EARLY_CLAIM_TTL_SECONDS = 600.0
EARLY_CLAIM_LIMIT = 1000


@dataclass(frozen=True)
class Ports:
    """Where a running node listens."""

    rpc: int
    sync: int
    metrics: int | None


def _peer_address(multiaddr: str) -> PeerAddress:
    parts = multiaddr.strip("/").split("/")
    return PeerAddress(peer_id=parts[5], port=int(parts[3]), host=parts[1])


def _collateral_tokens(config: NodeConfig) -> dict[tuple[int, str], CollateralToken]:
    tokens = {}
    for asset in config.collateral.values():
        for chain_name, token in asset.tokens.items():
            chain = config.chains[chain_name]
            tokens[(chain.chain_id, asset.name)] = CollateralToken(chain.chain_id, int(chain.vault, 16), int(token, 16), asset.name, asset.decimals)
    return tokens


def _chain_names(config: NodeConfig) -> list[ChainNames]:
    names = []
    for chain_name, chain in config.chains.items():
        feeds: dict[str, list[str]] = {}
        for feed in config.feeds.values():
            if feed.chain == chain_name:
                feeds.setdefault(feed.address.lower(), []).append(feed.name)
        names.append(
            ChainNames(
                chain_id=chain.chain_id,
                vault=chain.vault.lower(),
                underlyings={ids[chain_name].lower(): name for name, ids in config.underlyings.items() if chain_name in ids},
                feeds={address: tuple(feed_names) for address, feed_names in feeds.items()},
                collateral={a.tokens[chain_name].lower(): (a.name, a.decimals) for a in config.collateral.values() if chain_name in a.tokens},
            )
        )
    return names


class Node:
    """A crossclear node assembled from its configuration."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        database = config.database

        risk = parse_inputs(json.loads(config.risk_file.read_text()), {"accounts": []}, str(config.risk_file))
        heartbeats = {feed.name: feed.heartbeat_seconds for feed in config.feeds.values()}
        self.state = ClearingState(risk.params, risk.market, heartbeats)

        tokens = _collateral_tokens(config)
        self.ledger = ClaimLedger(database)
        self.withdrawals = WithdrawalDesk(database, self.ledger, self.state, tokens, config.clearinghouse_domain, config.private_key)
        self.liquidations = LiquidationDesk(self.state, tokens, config.liquidation_recipient, config.private_key)
        self.facts = CertifiedFacts(database, self.state, _chain_names(config), self.withdrawals.settle_reservation, self.liquidations.record_seized)
        claim_tokens = {(t.chain_id, t.vault, t.token): t for t in tokens.values()}
        self.claims = ClaimProcessor(load_verification_key(config.verification_key), config.clearinghouse_domain, claim_tokens, self.facts, self.ledger, self.state)

        self.attestation = AttestationNode(
            AttestationConfig(
                key=NodeKey(config.private_key),
                node_set=NodeSet(frozenset(bytes.fromhex(s[2:]) for s in config.node_set)),
                store_path=database,
                p2p_port=config.p2p_listen.port,
                bootstrap=tuple(_peer_address(address) for address in config.p2p_bootstrap),
                sync_port=config.sync_listen.port,
                sync_peers=config.sync_peers,
                chain_ids=frozenset(chain.chain_id for chain in config.chains.values()),
                network=f"crossclear-{config.clearinghouse_domain}",
            )
        )
        self.attestation.certificate_listeners.append(self._on_certificate)
        self.attestation.claim_listeners.append(self._on_gossiped_claim)

        self.adapters = {name: EvmChainAdapter(chain) for name, chain in config.chains.items()}
        self.cursors = CursorStore(database)
        self.metrics = NodeMetrics(
            LiveReadings(
                connected_peers=lambda: self.attestation.status().connected_peers,
                certificates=lambda: self.attestation.status().certificate_count,
                equivocations=lambda: self.attestation.status().equivocation_count,
                state_height=lambda: self.state.height,
                chain_heads=self._heads,
                stale_feeds=lambda: len(self.state.stale_feeds()),
            )
        )
        self.api = ApiServer(
            self.state,
            self.status,
            ServerLimits(max_receive_bytes=config.rpc_max_receive_bytes),
            claims=ClaimServicer(self.claims, lambda: self.state.height, on_accepted=self._gossip_claim),
            withdrawals=WithdrawalServicer(self.withdrawals, config.node_set, config.rpc_peers),
            liquidations=LiquidationServicer(self.liquidations, config.private_key),
        )
        self.claims.outcome_observers.append(
            lambda outcome: self.metrics.claims.labels(result=outcome.reason.value if outcome.reason else "accepted").inc()
        )
        self.claims.outcome_observers.append(self._settle_after_credit)
        self.state.recompute_observers.append(self.metrics.margin_recompute_seconds.observe)
        self.withdrawals.result_observers.append(lambda result: self.metrics.releases.labels(result=result).inc())
        self._heads_seen: dict[str, tuple[int, int]] = {}
        self._early_claims: dict[tuple[int, int, int], list[tuple[float, bytes]]] = {}
        self._early_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Ports:
        """Restore state, check every chain answers, then start serving; returns the ports."""
        self._loop = asyncio.get_running_loop()
        credited = self.claims.restore()
        replayed = self.facts.replay()
        for account in self.state.accounts():
            self.facts.settle_pending_debits(account)
        reserved = self.withdrawals.restore()
        _log.info("restored %d claims, %d certified event blocks, %d reserved releases", credited, replayed, reserved)
        for adapter in self.adapters.values():
            await adapter.connect()  # an unreachable chain, wrong chain id or missing contract stops the start here
        await self.attestation.start()
        rpc_port = await self.api.start(self.config.rpc_listen.port)
        metrics_port = self.metrics.serve(self.config.metrics_listen.port) if self.config.metrics_listen else None
        for name, adapter in self.adapters.items():
            self._tasks.append(asyncio.create_task(self._follow(name, adapter), name=f"follow-{name}"))
            self._tasks.append(asyncio.create_task(self._watch_heads(name, adapter), name=f"heads-{name}"))
        self._tasks.append(asyncio.create_task(self._expire_reservations(), name="expire-reservations"))
        return Ports(rpc=rpc_port, sync=self.config.sync_listen.port, metrics=metrics_port)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.api.stop(0.5)
        await self.attestation.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        self.metrics.close()
        self.cursors.close()
        self.facts.close()
        self.withdrawals.close()
        self.ledger.close()

    # --- chains -> facts -> attestations -----------------------------------------------------

    async def _follow(self, name: str, adapter: EvmChainAdapter) -> None:
        chain = self.config.chains[name]
        while not self._stopping:
            cursor = self.cursors.load(name) or Cursor.before(chain.chain_id, chain.start_block)
            try:
                async for batch in adapter.observations(cursor):
                    if self._stopping:
                        return
                    by_block: dict[tuple[int, bytes], list[object]] = {}
                    for observation in batch.observations:
                        by_block.setdefault((observation.block_number, observation.block_hash), []).append(observation)
                    signed = []
                    for (number, block_hash), events in sorted(by_block.items(), key=lambda item: item[0][0]):
                        for fact, encoded in facts_for_block(chain.chain_id, number, block_hash, chain.vault.lower(), events):  # type: ignore[arg-type]
                            self.facts.observed(fact, encoded)
                            signed.append(fact)
                    if signed:
                        await self.attestation.attest_many(signed)
                    self.cursors.save(name, batch.cursor)
            except ReorgTooDeep as error:
                _log.error("%s", error)
                return  # halted: the adapter refuses to go on, and says so in status
            except ChainAdapterError as error:
                _log.warning("%s; retrying in %.0f s", error, FOLLOW_RETRY_SECONDS)
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)

    async def _watch_heads(self, name: str, adapter: EvmChainAdapter) -> None:
        while not self._stopping:
            try:
                head, finalized = await adapter.head(), await adapter.finalized_head()
                self._heads_seen[name] = (head.number, finalized.number)
            except (ChainAdapterError, OSError, TimeoutError) as error:
                _log.debug("%s: head unavailable: %s", name, error)
            except Exception as error:  # an RPC outage surfaces as many exception types
                _log.debug("%s: head unavailable: %s", name, error)
            await asyncio.sleep(1.0)

    async def _expire_reservations(self) -> None:
        # Releases never submitted before their deadline give their collateral back.
        while not self._stopping:
            expired = await asyncio.to_thread(self.withdrawals.expire_reservations)
            if expired:
                _log.info("handed back %d expired release reservation(s)", expired)
            await asyncio.sleep(5.0)

    def _heads(self) -> Mapping[str, tuple[int, int]]:
        return dict(self._heads_seen)

    # --- claims gossip -----------------------------------------------------------------------

    def _gossip_claim(self, proof_document: object, signals: list[str]) -> None:
        body = claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof_document), public_signals=signals).SerializeToString()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(self.attestation.publish_claim(body)))

    def _on_certificate(self, certificate: Certificate) -> None:
        fact = certificate.observation
        self.facts.certified(fact)
        if fact.kind == ObservationKind.ROOT:
            self._retry_early_claims((fact.chain_id, int.from_bytes(fact.emitter, "big"), int.from_bytes(fact.root, "big")))

    def _on_gossiped_claim(self, sender: bytes, body: bytes) -> None:
        # A peer's acceptance is not proof: run every check here too, off the event loop.
        del sender

        def check() -> None:
            try:
                request = claim_pb2.SubmitClaimRequest.FromString(body)
                proof = json.loads(request.proof_json)
            except ValueError:
                return
            outcome = self.claims.submit(proof, list(request.public_signals))
            if outcome.reason is RejectReason.UNCERTIFIED_ROOT and outcome.claim is not None:
                # The peer certified this root before we did: keep the claim for our certificate.
                self._keep_early_claim((outcome.claim.source_chain_id, outcome.claim.vault, outcome.claim.root), body)

        if self._loop is not None:
            self._loop.run_in_executor(None, check)

    def _keep_early_claim(self, key: tuple[int, int, int], body: bytes) -> None:
        now = time.monotonic()
        with self._early_lock:
            for stale_key in [k for k, items in self._early_claims.items() if all(now - t > EARLY_CLAIM_TTL_SECONDS for t, _ in items)]:
                del self._early_claims[stale_key]
            if sum(len(items) for items in self._early_claims.values()) >= EARLY_CLAIM_LIMIT:
                return
            self._early_claims.setdefault(key, []).append((now, body))
        # The certificate may have formed between the check and now.
        if self.facts.is_certified(*key):
            self._retry_early_claims(key)

    def _retry_early_claims(self, key: tuple[int, int, int]) -> None:
        """Check again the gossiped claims that were waiting for root `key` to be certified."""
        with self._early_lock:
            waiting = self._early_claims.pop(key, [])
        for _, body in waiting:
            self._on_gossiped_claim(b"", body)

    def _settle_after_credit(self, outcome: ClaimOutcome) -> None:
        if outcome.accepted and outcome.claim is not None:
            self.facts.settle_pending_debits(f"{outcome.claim.account:#042x}")

    # --- status ------------------------------------------------------------------------------

    def status(self) -> node_pb2.NodeStatus:
        attestation = self.attestation.status()
        reply = node_pb2.NodeStatus(
            version=__version__,
            node_address=self.config.address,
            connected_peers=attestation.connected_peers,
            certificate_count=attestation.certificate_count,
            equivocation_count=attestation.equivocation_count,
            state_height=self.state.height,
            accounts=len(self.state.accounts()),
        )
        for name, adapter in self.adapters.items():
            head, finalized = self._heads_seen.get(name, (0, 0))
            reply.chains.add(
                chain_id=adapter.chain_id,
                network=name,
                head=head,
                finalized=finalized,
                finality=self.config.chains[name].finality.describe(),
                health=adapter.health().state.name.lower(),
            )
        stale = set(self.state.stale_feeds())
        for name, feed in sorted(self.state.feed_prices().items()):
            reply.feeds.add(name=name, price=feed.price, updated_at=feed.updated_at, heartbeat_seconds=feed.heartbeat_seconds, stale=name in stale)
        return reply

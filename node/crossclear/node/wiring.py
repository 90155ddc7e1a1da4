"""One crossclear node: every component, and how they connect, in one place.

    chain adapters --batches--> followers --(observed facts + cursor, one transaction)--> store
         followers --sign--> attestation node (libp2p gossip) --certificates--+
                                                                              v
    ClaimService / gossip --check (worker thread)--> processor queue <---------+
    WithdrawalService, LiquidationService --requests with a future--> processor queue
    processor (the only writer of clearing state) --MarginSnapshot--> MarginService, metrics

Everything runs on one asyncio loop; libp2p runs behind the attestation node's bridge; the
kernel and proof checks run on worker threads. The processor is the one task that changes
clearing state; the others send it typed messages. At start-up it loads the ledger from the
node's SQLite file, and every fact observed but not yet applied is signed again (signing is
deterministic), so a node killed at any step comes back with nothing lost and nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from crossclear import __version__
from crossclear._tasks import cancel_and_wait
from crossclear.attest import Admission, AttestationCollector, AttestationNode, Certificate, NodeKey, NodeSet, observation_digest
from crossclear.attest import NodeConfig as AttestationConfig
from crossclear.chains import ChainAdapterError, Cursor, Health, ReorgTooDeep
from crossclear.chains.interface import ChainAdapter
from crossclear.chains.registry import build_adapters
from crossclear.node.claims import ClaimChecker, ClaimOutcome, CollateralToken, RejectReason, VerifiedClaim
from crossclear.node.clearing import ClearingState
from crossclear.node.config import NodeConfig
from crossclear.node.facts import ChainNames, facts_for_block
from crossclear.node.liquidations import SignedCloseOut, SignedSeize
from crossclear.node.metrics import LiveReadings, NodeMetrics
from crossclear.node.processor import CertificatesFormed, ChainProgress, CreditClaim, Processor, ProcessorConfig, SignCloseOuts, SignRelease, SignSeizes
from crossclear.node.withdrawals import WithdrawalRequest
from crossclear.chains.vault_orders import ReleaseOrder, VaultDomain
from crossclear.p2p import PeerAddress
from crossclear.rpc import ApiServer, ClaimServicer, LiquidationServicer, ServerLimits, WithdrawalServicer
from crossclear.risk.live import FhsPortfolio, RiskCollector, load_node_history, parse_risk_file, risk_status_message
from crossclear.store import ClaimRow, ClearingStore, CursorRow, ObservedRow
from crossclear.v1 import claim_pb2, node_pb2
from crossclear.zk import load_verification_key

_log = logging.getLogger("crossclear.node")

#: Pause before a chain follower retries after its adapter failed.
FOLLOW_RETRY_SECONDS = 2.0
#: Gossiped claims whose root this node has not certified yet wait for the root's certificate,
#: at most this many at once (a peer may certify a root a moment before this node does).
EARLY_CLAIM_LIMIT = 1000
#: Gossiped claims checked at once on worker threads; more wait (a flood cannot take every thread).
GOSSIPED_CLAIM_CHECKS = 4


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


def _followed_emitters(config: NodeConfig) -> frozenset[tuple[int, bytes]]:
    """(chain id, contract) pairs whose observations peers may gossip to this node."""
    pairs = set()
    for chain_name, chain in config.chains.items():
        feeds = [feed.address for feed in config.feeds.values() if feed.chain == chain_name]
        for address in (chain.vault, *chain.markets, *chain.price_feeds, *feeds):
            digits = address[2:] if address[:2].lower() == "0x" else ""
            if len(digits) == 40 and all(c in "0123456789abcdefABCDEF" for c in digits):
                pairs.add((chain.chain_id, bytes.fromhex(digits)))
    return frozenset(pairs)


def _chain_names(config: NodeConfig) -> dict[int, ChainNames]:
    names = {}
    for chain_name, chain in config.chains.items():
        feeds: dict[str, list[str]] = {}
        for feed in config.feeds.values():
            if feed.chain == chain_name:
                feeds.setdefault(feed.address.lower(), []).append(feed.name)
        names[chain.chain_id] = ChainNames(
            chain_id=chain.chain_id,
            vault=chain.vault.lower(),
            underlyings={ids[chain_name].lower(): name for name, ids in config.underlyings.items() if chain_name in ids},
            feeds={address: tuple(feed_names) for address, feed_names in feeds.items()},
            collateral={a.tokens[chain_name].lower(): (a.name, a.decimals) for a in config.collateral.values() if chain_name in a.tokens},
        )
    return names


class Node:
    """A crossclear node assembled from its configuration."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        database = config.database

        risk, fhs_params = parse_risk_file(config.risk_file)
        heartbeats = {feed.name: feed.heartbeat_seconds for feed in config.feeds.values()}
        decimals = {asset.name: asset.decimals for asset in config.collateral.values()}
        self.state = ClearingState(risk.params, risk.market, heartbeats, decimals, config.settlement_asset)
        self.risk_model: FhsPortfolio | None = None
        if config.risk_model == "fhs" and config.history_file is not None:  # risk v2: crossclear.risk.live
            history = load_node_history(config.history_file, risk, fhs_params)
            self.risk_model = FhsPortfolio(history, fhs_params, risk.params, risk.market)
            self.state.portfolio_model = self.risk_model
        self.store = ClearingStore(database)
        tokens = _collateral_tokens(config)

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
                admission=Admission(emitters=_followed_emitters(config)),
                # The adapters' latest head (read on the libp2p thread; None until first seen).
                own_head=lambda chain_id: (
                    self._heads_seen[self._healthy[chain_id]][0]
                    if self._healthy.get(chain_id, "") in self._heads_seen
                    else None
                ),
            )
        )
        self.attestation.certificate_listeners.append(self._on_certificate)
        self.attestation.claim_listeners.append(self._on_gossiped_claim)

        self.adapters: dict[str, ChainAdapter] = build_adapters(config.chains)  # every kind through the registry
        chain_ids = {name: chain.chain_id for name, chain in config.chains.items()}
        self._healthy = {chain.chain_id: name for name, chain in config.chains.items()}
        self.processor = Processor(
            ProcessorConfig(
                chains=_chain_names(config),
                tokens=tokens,
                feed_chains={feed.name: chain_ids[feed.chain] for feed in config.feeds.values()},
                clearinghouse_domain=config.clearinghouse_domain,
                private_key=config.private_key,
                liquidation_recipient=config.liquidation_recipient,
                price_band=config.price_band,
                settlement_asset=config.settlement_asset,
                insurance_fund=config.insurance_fund.lower() if config.insurance_fund else None,
                close_out_discount_bps=config.close_out_discount_bps,
            ),
            self.store,
            self.state,
            self.attestation.store.has_certificate,
            self._chain_healthy,
        )
        claim_tokens = {(t.chain_id, t.vault, t.token): t for t in tokens.values()}
        self.checker = ClaimChecker(
            load_verification_key(config.verification_key),
            config.clearinghouse_domain,
            claim_tokens,
            self.processor,
            self.processor.is_credited,
        )
        self.metrics = NodeMetrics(
            LiveReadings(
                connected_peers=lambda: self.attestation.status().connected_peers,
                certificates=lambda: self.attestation.status().certificate_count,
                equivocations=lambda: self.attestation.status().equivocation_count,
                state_height=lambda: self.state.height,
                chain_heads=self._heads,
                stale_feeds=lambda: len(self.processor.snapshot.stale_feeds) if self.processor.snapshot else 0,
                signing_halted=lambda: 1 if self.processor.halted else 0,
            )
        )
        self.api = ApiServer(
            lambda: self.processor.snapshot,
            self.status,
            ServerLimits(max_receive_bytes=config.rpc_max_receive_bytes),
            claims=ClaimServicer(self.checker, self.credit, self._claim_lookup, lambda: self.state.height, on_accepted=self._gossip_claim),
            withdrawals=WithdrawalServicer(self.sign_release, config.node_set, config.rpc_peers),
            liquidations=LiquidationServicer(self.sign_seizes, config.private_key, self.sign_close_outs),
        )
        self.processor.snapshot_observers.append(self.api.watch.notify)
        self.processor.root_observers.append(self._retry_early_claims)
        self.processor.event_observers.append(lambda event: self.metrics.clearing_events.labels(event=event).inc())
        self.state.recompute_observers.append(self.metrics.margin_recompute_seconds.observe)
        if self.risk_model is not None:
            self.metrics.registry.register(RiskCollector(self.risk_model))
        self.metrics.registry.register(AttestationCollector(self.attestation))
        self._heads_seen: dict[str, tuple[int, int]] = {}
        self._early_claims: dict[tuple[int, int, int], list[bytes]] = {}
        self._claim_checks = asyncio.Semaphore(GOSSIPED_CLAIM_CHECKS)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> Ports:
        """Load state, check every chain answers, then start serving; returns the ports."""
        for adapter in self.adapters.values():
            await adapter.connect()  # an unreachable chain, wrong chain id or missing contract stops the start here
        await self.processor.load()
        _log.info("loaded clearing state at height %d: %d claims credited", self.state.height, self.store.claim_count())
        await self.attestation.start()
        unsigned = self.processor.unsigned_facts()
        if unsigned:
            # Stored before this node stopped, maybe never gossiped: sign (the same signature) again.
            await self.attestation.attest_many(unsigned)
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        rpc_port = await self.api.start(self.config.rpc_listen.port)
        metrics_port = await self.metrics.serve(self.config.metrics_listen.port) if self.config.metrics_listen else None
        for name, adapter in self.adapters.items():
            self._tasks.append(asyncio.create_task(self._follow(name, adapter), name=f"follow-{name}"))
            self._tasks.append(asyncio.create_task(self._watch_heads(name, adapter), name=f"heads-{name}"))
        return Ports(rpc=rpc_port, sync=self.config.sync_listen.port, metrics=metrics_port)

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._tasks)
        self._tasks = []
        await self.api.stop(0.5)
        await self.attestation.stop()
        for adapter in self.adapters.values():
            await adapter.close()
        await self.metrics.close()
        self.processor.close()
        self.store.close()

    # --- requests to the processor -----------------------------------------------------------

    async def credit(self, verified: VerifiedClaim) -> ClaimOutcome:
        """Hand a checked claim to the processor; its outcome."""
        reply: asyncio.Future[ClaimOutcome] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(CreditClaim(verified, reply))
        outcome = await reply
        self.metrics.claims.labels(result=outcome.reason.value if outcome.reason else "accepted").inc()
        return outcome

    async def sign_release(self, request: WithdrawalRequest, owner_signature: bytes) -> tuple[VaultDomain, ReleaseOrder, bytes]:
        reply: asyncio.Future[tuple[VaultDomain, ReleaseOrder, bytes]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignRelease(request, owner_signature, reply))
        try:
            result = await reply
        except Exception:
            self.metrics.releases.labels(result="refused").inc()
            raise
        self.metrics.releases.labels(result="signed").inc()
        return result

    async def sign_seizes(self) -> list[SignedSeize]:
        reply: asyncio.Future[list[SignedSeize]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignSeizes(reply))
        return await reply

    async def sign_close_outs(self) -> list[SignedCloseOut]:
        reply: asyncio.Future[list[SignedCloseOut]] = asyncio.get_running_loop().create_future()
        await self.processor.queue.put(SignCloseOuts(reply))
        return await reply

    def _claim_lookup(self, nullifier: int) -> tuple[ClaimRow, int] | None:
        row = self.store.claim(nullifier)
        return None if row is None else (row, self.state.decimals(row.asset))

    def _chain_healthy(self, chain_id: int) -> bool:
        name = self._healthy.get(chain_id)
        return name is not None and self.adapters[name].health().state is Health.OK

    # --- chains -> facts -> attestations -----------------------------------------------------

    async def _follow(self, name: str, adapter: ChainAdapter) -> None:
        chain = self.config.chains[name]
        while not self._stopping:
            stored = self.store.cursor(name)
            cursor = (
                Cursor(chain.chain_id, stored.block_number, stored.block_hash) if stored is not None else Cursor.before(chain.chain_id, chain.start_block)
            )
            try:
                async for batch in adapter.observations(cursor):
                    if self._stopping:
                        return
                    by_block: dict[tuple[int, bytes, int], list[object]] = {}
                    for observation in batch.observations:
                        by_block.setdefault((observation.block_number, observation.block_hash, observation.block_timestamp), []).append(observation)
                    observed = []
                    for (number, block_hash, timestamp), events in sorted(by_block.items(), key=lambda item: item[0][0]):
                        observed.extend(facts_for_block(chain.chain_id, number, block_hash, timestamp, chain.vault.lower(), events))  # type: ignore[arg-type]
                    # What was seen and where to resume commit together: a crash leaves both or neither.
                    with self.store.transaction():
                        for item in observed:
                            fact = item.fact
                            digest = observation_digest(self.attestation.config.domain, fact)
                            self.store.insert_observed(ObservedRow(
                                digest, int(fact.kind), fact.chain_id, fact.emitter, fact.block_number, fact.block_hash,
                                fact.root, fact.leaf_count, item.block_timestamp, item.events, False,
                            ))
                        end = batch.cursor
                        self.store.save_cursor(name, CursorRow(chain.chain_id, end.block_number, end.block_hash, end.block_timestamp))
                    if observed:
                        await self.attestation.attest_many([item.fact for item in observed])
                    await self.processor.queue.put(ChainProgress(chain.chain_id))
            except ReorgTooDeep as error:
                _log.error("%s", error)
                return  # halted: the adapter refuses to go on, and says so in status
            except ChainAdapterError as error:
                _log.warning("%s; retrying in %.0f s", error, FOLLOW_RETRY_SECONDS)
                await asyncio.sleep(FOLLOW_RETRY_SECONDS)

    async def _watch_heads(self, name: str, adapter: ChainAdapter) -> None:
        while not self._stopping:
            try:
                head, finalized = await adapter.head(), await adapter.finalized_head()
                self._heads_seen[name] = (head.number, finalized.number)
            except Exception as error:  # an RPC outage surfaces as many exception types
                _log.debug("%s: head unavailable: %s", name, error)
            await asyncio.sleep(1.0)

    def _heads(self) -> Mapping[str, tuple[int, int]]:
        return dict(self._heads_seen)

    def _on_certificate(self, certificate: Certificate) -> None:
        message = CertificatesFormed((certificate.observation,))
        try:
            self.processor.queue.put_nowait(message)
        except asyncio.QueueFull:
            # Certificates are in the attestation store: the processor re-reads them on the next message.
            asyncio.ensure_future(self.processor.queue.put(message))

    # --- claims gossip -----------------------------------------------------------------------

    def _gossip_claim(self, proof_document: object, signals: list[str]) -> None:
        body = claim_pb2.SubmitClaimRequest(proof_json=json.dumps(proof_document), public_signals=signals).SerializeToString()
        asyncio.ensure_future(self.attestation.publish_claim(body))

    def _on_gossiped_claim(self, sender: bytes, body: bytes) -> None:
        # A member may start only so many proof checks (the gate's per-sender budget), and a
        # claim that failed once is not checked again: a flood costs a hash per message.
        gate_key = self.attestation.claim_gate.admit(sender, body)
        if gate_key is not None:
            asyncio.ensure_future(self._check_gossiped_claim(body, gate_key))

    async def _check_gossiped_claim(self, body: bytes, gate_key: bytes) -> None:
        # A peer's acceptance is not proof: run every check here too, off the event loop.
        gate = self.attestation.claim_gate
        try:
            request = claim_pb2.SubmitClaimRequest.FromString(body)
            proof = json.loads(request.proof_json)
        except ValueError:
            gate.finished(gate_key, failed=True)
            return
        try:
            async with self._claim_checks:
                checked = await asyncio.to_thread(self.checker.check, proof, list(request.public_signals))
        except BaseException:
            gate.finished(gate_key, failed=False)
            raise
        # An uncertified root is not a failure: the claim may pass once this node certifies it.
        uncertified = not isinstance(checked, VerifiedClaim) and checked.reason is RejectReason.UNCERTIFIED_ROOT
        gate.finished(gate_key, failed=not isinstance(checked, VerifiedClaim) and not uncertified)
        if isinstance(checked, VerifiedClaim):
            await self.processor.queue.put(CreditClaim(checked, None))
        elif uncertified and checked.claim is not None:
            # The peer certified this root before we did: keep the claim for our certificate.
            key = (checked.claim.source_chain_id, checked.claim.vault, checked.claim.root)
            if sum(len(v) for v in self._early_claims.values()) < EARLY_CLAIM_LIMIT:
                self._early_claims.setdefault(key, []).append(body)
            if self.processor.is_root_certified(*key):  # certified between the check and now
                self._retry_early_claims(*key)

    def _retry_early_claims(self, chain_id: int, vault: int, root: int) -> None:
        for body in self._early_claims.pop((chain_id, vault, root), []):
            # Its sender already paid for one check; this one is on the root's certificate.
            gate_key = self.attestation.claim_gate.readmit(body)
            if gate_key is not None:
                asyncio.ensure_future(self._check_gossiped_claim(body, gate_key))

    # --- status ------------------------------------------------------------------------------

    def status(self) -> node_pb2.NodeStatus:
        attestation = self.attestation.status()
        processor = self.processor.status()
        snapshot = self.processor.snapshot
        reply = node_pb2.NodeStatus(
            version=__version__,
            node_address=self.config.address,
            connected_peers=attestation.connected_peers,
            certificate_count=attestation.certificate_count,
            equivocation_count=attestation.equivocation_count,
            state_height=processor.height,
            accounts=len(snapshot.rows) if snapshot else 0,
            signing_halted=processor.signing_halted,
            pending_payouts=processor.pending_payouts,
            ignored_events=processor.ignored_events,
            risk=risk_status_message(self.risk_model),
        )
        for name, adapter in self.adapters.items():
            head, finalized = self._heads_seen.get(name, (0, 0))
            applied_block, chain_time = processor.chain_time.get(adapter.chain_id, (-1, 0))
            reply.chains.add(
                chain_id=adapter.chain_id,
                network=name,
                head=head,
                finalized=finalized,
                finality=self.config.chains[name].finality.describe(),
                health=adapter.health().state.name.lower(),
                applied_block=max(applied_block, 0),
                chain_time=chain_time,
                waiting_blocks=processor.waiting_blocks.get(adapter.chain_id, 0),
            )
        if snapshot is not None:
            stale = set(snapshot.stale_feeds)
            for name, feed in sorted(snapshot.feeds.items()):
                updated = feed.updated_at if feed.updated_at > 0 else 0.0
                reply.feeds.add(name=name, price=feed.price, updated_at=updated, heartbeat_seconds=feed.heartbeat_seconds, stale=name in stale)
        return reply

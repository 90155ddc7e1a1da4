"""The EVM chain adapter: web3.py polling with finality, reorg checks and back-off.

How it stays exactly-once:
- it emits only blocks at or below the finality line (head minus the configured confirmations,
  or the RPC's finalized/safe tag), so a reorg above that line never reaches a consumer;
- it remembers the hash of the last block it delivered (the cursor) and checks it before every
  step; if that block changed, the chain reorganised deeper than configured: the adapter
  halts, raises ReorgTooDeep and delivers nothing more (state stays as it was);
- a failing or slow RPC call (every call has a time-out) is retried with capped exponential
  back-off on the same block range, health reads "degraded" meanwhile, so an outage neither
  skips nor repeats a range;
- each batch carries its cursor; the consumer persists it (CursorStore) after handling the
  batch, and a restarted adapter resumes from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar, cast

import aiohttp
from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.exceptions import Web3Exception

from crossclear._tasks import wait_for
from crossclear.chains._decode import (
    ALL_TOPICS,
    MARKET_EVENTS,
    PRICE_FEED_EVENTS,
    VAULT_EVENTS,
    EventLayout,
    LogContext,
    MalformedLog,
    decode_log,
)
from crossclear.chains.config import EvmChainConfig
from crossclear.chains.interface import (
    Address,
    AnyObservation,
    BlockRef,
    ChainAdapterError,
    Cursor,
    Health,
    HealthReport,
    ObservationBatch,
    ReorgTooDeep,
    VaultRoot,
)

_T = TypeVar("_T")

#: Errors that mean "the RPC did not answer properly right now": retried, never fatal.
RPC_FAILURES: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    aiohttp.ClientError,
    Web3Exception,
)

_log = logging.getLogger("crossclear.chains")

_TREE_STATE_SELECTOR = bytes(keccak(text="treeState()"))[:4]
_INITIAL_BACKOFF_SECONDS = 0.1


class EvmChainAdapter:
    """A `ChainAdapter` for any EVM chain, configured by `EvmChainConfig` alone."""

    def __init__(self, config: EvmChainConfig) -> None:
        self.config = config
        self._provider = AsyncHTTPProvider(
            config.rpc_url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=config.rpc_timeout_seconds)},
            # Retries are ours (with health reporting), not the provider's silent ones.
            exception_retry_configuration=None,
        )
        self._web3 = AsyncWeb3(self._provider)
        self._health = HealthReport(Health.OK, "", time.time())
        self._halt_error: ChainAdapterError | None = None
        self._connected = False
        allowed: dict[Address, tuple[EventLayout, ...]] = {config.vault: VAULT_EVENTS}
        allowed.update({market: MARKET_EVENTS for market in config.markets})
        allowed.update({feed: PRICE_FEED_EVENTS for feed in config.price_feeds})
        self._allowed = allowed

    # -- identity and health ---------------------------------------------------------------------

    @property
    def network(self) -> str:
        return self.config.network

    @property
    def chain_id(self) -> int:
        return self.config.chain_id

    def health(self) -> HealthReport:
        return self._health

    def _set_health(self, state: Health, reason: str) -> None:
        if state is self._health.state and reason == self._health.reason:
            return
        if state is Health.HALTED:
            _log.error("%s", reason)
        elif state is Health.DEGRADED and self._health.state is not Health.DEGRADED:
            _log.warning("%s", reason)
        elif state is Health.OK and self._health.state is Health.DEGRADED:
            _log.info("%s: RPC answers again", self._name())
        self._health = HealthReport(state, reason, time.time())

    def _halt(self, error: ChainAdapterError) -> ChainAdapterError:
        self._halt_error = error
        self._set_health(Health.HALTED, str(error))
        return error

    def _name(self) -> str:
        return f"chain {self.config.network} (id {self.config.chain_id})"

    # -- one RPC call with a time-out ------------------------------------------------------------------

    async def _rpc(self, call: Callable[[], Awaitable[_T]]) -> _T:
        return await wait_for(call(), self.config.rpc_timeout_seconds)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[_T]]) -> _T:
        """Retry `call` with capped exponential back-off until it answers; health shows the outage."""
        backoff = _INITIAL_BACKOFF_SECONDS
        while True:
            try:
                result = await self._rpc(call)
            except RPC_FAILURES as error:
                reason = f"{self._name()}: {what} at {self.config.rpc_url} failed ({_describe(error)}); retrying"
                self._set_health(Health.DEGRADED, reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.config.max_backoff_seconds)
                continue
            if self._health.state is Health.DEGRADED:
                self._set_health(Health.OK, "")
            return result

    # -- setup -----------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Check the RPC answers with the configured chain id and that every contract has code."""
        try:
            reported = int(await self._rpc(lambda: self._web3.eth.chain_id))
        except RPC_FAILURES as error:
            message = f"{self._name()}: RPC {self.config.rpc_url} is unreachable ({_describe(error)})"
            self._set_health(Health.DEGRADED, message)
            raise ChainAdapterError(message) from None
        if reported != self.config.chain_id:
            raise self._halt(
                ChainAdapterError(
                    f"{self._name()}: RPC {self.config.rpc_url} reports chain id {reported}, config says {self.config.chain_id}"
                )
            )
        for address in self.config.contracts:
            try:
                code = await self._rpc(lambda: self._web3.eth.get_code(to_checksum_address(address)))
            except RPC_FAILURES as error:
                message = f"{self._name()}: RPC {self.config.rpc_url} failed reading code ({_describe(error)})"
                raise ChainAdapterError(message) from None
            if len(code) == 0:
                raise self._halt(ChainAdapterError(f"{self._name()}: no contract code at {address} ({self._role(address)})"))
        self._connected = True
        self._set_health(Health.OK, "")

    def _role(self, address: Address) -> str:
        if address == self.config.vault:
            return "vault"
        return "market" if address in self.config.markets else "price feed"

    async def close(self) -> None:
        await self._provider.disconnect()

    # -- heads -----------------------------------------------------------------------------------

    async def _block(self, identifier: int | Literal["latest", "safe", "finalized"]) -> BlockRef:
        block = await self._web3.eth.get_block(identifier)
        return BlockRef(number=int(block["number"]), hash=bytes(block["hash"]), timestamp=int(block["timestamp"]))

    async def head(self) -> BlockRef:
        return await self._rpc(lambda: self._block("latest"))

    async def finalized_head(self) -> BlockRef:
        return await self._rpc(self._finalized_block)

    async def _finalized_block(self) -> BlockRef:
        finality = self.config.finality
        if finality.tag is not None:
            return await self._block(cast(Literal["safe", "finalized"], finality.tag))
        latest = int(await self._web3.eth.block_number)
        return await self._block(max(0, latest - finality.confirmations))

    # -- the stream ------------------------------------------------------------------------------

    async def observations(self, cursor: Cursor) -> AsyncIterator[ObservationBatch]:
        if self._halt_error is not None:
            raise self._halt_error
        if cursor.chain_id != self.config.chain_id:
            raise ChainAdapterError(f"{self._name()}: cursor belongs to chain id {cursor.chain_id}")
        if not self._connected:
            await self.connect()
        if cursor.block_number < self.config.start_block - 1:
            cursor = Cursor.before(self.config.chain_id, self.config.start_block)
        delivered = cursor
        while True:
            batch = await self._retrying("reading new final blocks", lambda: self._next_batch(delivered))
            if batch is None:
                await asyncio.sleep(self.config.poll_interval_seconds)
                continue
            # Outside the retry: whatever the consumer does with the batch is not an RPC failure.
            yield batch
            delivered = batch.cursor

    async def _next_batch(self, delivered: Cursor) -> ObservationBatch | None:
        final = await self._finalized_block()
        if final.number <= delivered.block_number:
            await self._check_still_canonical(delivered)
            return None
        start = delivered.block_number + 1
        end_number = min(final.number, delivered.block_number + self.config.max_block_range)
        end = final if end_number == final.number else await self._block(end_number)
        logs = await self._web3.eth.get_logs(
            {
                "fromBlock": start,
                "toBlock": end.number,
                "address": [to_checksum_address(address) for address in self.config.contracts],
                "topics": [["0x" + topic.hex() for topic in ALL_TOPICS]],
            }
        )
        headers: dict[int, BlockRef] = {end.number: end}
        for number in sorted({int(log["blockNumber"]) for log in logs}):
            headers.setdefault(number, await self._block(number))
        # Both checks are against blocks already final: a mismatch means a deep reorg, not a race.
        await self._check_still_canonical(delivered)
        if (await self._block(end.number)).hash != end.hash:
            raise self._halt(ReorgTooDeep(f"{self._name()}: final block {end.number} changed while reading it"))
        observations = self._decode(logs, headers)
        return ObservationBatch(
            chain_id=self.config.chain_id,
            first_block=start,
            cursor=Cursor(chain_id=self.config.chain_id, block_number=end.number, block_hash=end.hash, block_timestamp=end.timestamp),
            observations=observations,
        )

    async def _check_still_canonical(self, delivered: Cursor) -> None:
        if delivered.block_number < 0 or not delivered.block_hash:
            return
        current = await self._block(delivered.block_number)
        if current.hash != delivered.block_hash:
            raise self._halt(
                ReorgTooDeep(
                    f"{self._name()}: block {delivered.block_number} was delivered as final with hash "
                    f"0x{delivered.block_hash.hex()} but is now 0x{current.hash.hex()}: the chain reorganised "
                    f"deeper than its finality ({self.config.finality.describe()}); adapter halted"
                )
            )

    def _decode(self, logs: Any, headers: dict[int, BlockRef]) -> tuple[AnyObservation, ...]:
        observations: list[AnyObservation] = []
        for log in sorted(logs, key=lambda entry: (int(entry["blockNumber"]), int(entry["logIndex"]))):
            if log.get("removed"):
                continue
            number = int(log["blockNumber"])
            header = headers[number]
            if bytes(log["blockHash"]) != header.hash:
                raise self._halt(ReorgTooDeep(f"{self._name()}: a log of final block {number} names another block hash"))
            context = LogContext(
                chain_id=self.config.chain_id,
                contract=str(to_checksum_address(log["address"])),
                block_number=number,
                block_hash=header.hash,
                block_timestamp=header.timestamp,
                tx_hash=bytes(log["transactionHash"]),
                log_index=int(log["logIndex"]),
            )
            try:
                observation = decode_log(context, [bytes(t) for t in log["topics"]], bytes(log["data"]), self._allowed)
            except MalformedLog as error:
                raise self._halt(MalformedLog(f"{self._name()}: malformed log from {context.contract}: {error}")) from None
            if observation is not None:
                observations.append(observation)
        return tuple(observations)

    # -- reads and writes ------------------------------------------------------------------------

    async def vault_root(self, block_number: int) -> VaultRoot:
        async def read() -> VaultRoot:
            block = await self._block(block_number)
            answer = await self._web3.eth.call(
                {"to": to_checksum_address(self.config.vault), "data": _TREE_STATE_SELECTOR}, block_identifier=block.number
            )
            if len(answer) != 64:
                # An empty answer: the vault did not exist yet at this block (or is not a vault).
                raise ChainAdapterError(
                    f"{self._name()}: vault {self.config.vault} has no tree state at block {block_number}"
                )
            root, leaf_count = abi_decode(["uint256", "uint32"], bytes(answer))
            return VaultRoot(root=int(root), leaf_count=int(leaf_count), block=block)

        try:
            return await self._rpc(read)
        except RPC_FAILURES as error:
            raise ChainAdapterError(f"{self._name()}: reading the vault root at block {block_number} failed ({_describe(error)})") from None

    async def submit_transaction(self, raw_transaction: bytes) -> bytes:
        try:
            tx_hash = await self._rpc(lambda: self._web3.eth.send_raw_transaction(raw_transaction))
        except RPC_FAILURES as error:
            raise ChainAdapterError(f"{self._name()}: transaction rejected ({_describe(error)})") from None
        return bytes(tx_hash)


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__

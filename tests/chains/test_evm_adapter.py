"""The EVM adapter against real anvil chains: bad config, finality, reorgs, outages, restarts."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils.address import to_checksum_address

from crossclear._net import free_tcp_port
from crossclear.chains import (
    ChainAdapterError,
    Cursor,
    DepositObserved,
    Health,
    ObservationBatch,
    Traded,
    PriceUpdated,
    Released,
    ReorgTooDeep,
    RootUpdated,
    Seized,
)
from crossclear.chains._decode import DEPOSITED, MalformedLog
from crossclear.chains.config import Finality
from crossclear.chains.conformance import StreamFollower, collect_batches, reached, run
from crossclear.chains.cursor_store import CursorStore
from crossclear.chains.evm import EvmChainAdapter
from crossclear.chains.vault_orders import NO_DEADLINE, ReleaseOrder, SeizeOrder, VaultDomain, quorum_signatures, sign
from crossclear.devnet.chain import DevChain
from crossclear.devnet.deploy import deploy_contract
from crossclear.zk import secret_hash

_secrets = itertools.count(1)


def _deposit(chain: DevChain, amount: int = 1_000) -> bytes:
    receipt = chain.deposit(chain.accounts[1].address, "USDC", amount, secret_hash(next(_secrets)))
    return bytes(receipt["transactionHash"])


def _start(chain: DevChain) -> Cursor:
    return Cursor.before(chain.anvil.chain_id, chain.deployment.deploy_block)


def _deposits(batches: Sequence[ObservationBatch]) -> list[DepositObserved]:
    return [o for batch in batches for o in batch.observations if isinstance(o, DepositObserved)]


def _has_deposit(tx_hash: bytes) -> Callable[[Sequence[ObservationBatch]], bool]:
    return lambda batches: any(d.tx_hash == tx_hash for d in _deposits(batches))


async def _stream_until(adapter: EvmChainAdapter, cursor: Cursor, block: int) -> list[ObservationBatch]:
    await adapter.connect()
    try:
        return await collect_batches(adapter, cursor, reached(block))
    finally:
        await adapter.close()


# ---- configuration that cannot work: one clear error naming the chain ------------------------


def test_unreachable_rpc_is_one_clear_error(chain: DevChain) -> None:
    adapter = EvmChainAdapter(chain.adapter_config("lost", rpc_url=f"http://127.0.0.1:{free_tcp_port()}"))
    with pytest.raises(ChainAdapterError, match=r"chain lost .*unreachable"):
        run(adapter.connect())
    assert adapter.health().state is Health.DEGRADED
    run(adapter.close())


def test_wrong_chain_id_is_refused(chain: DevChain) -> None:
    adapter = EvmChainAdapter(chain.adapter_config("mislabelled", chain_id=chain.anvil.chain_id + 1))
    with pytest.raises(ChainAdapterError, match=rf"chain mislabelled .*reports chain id {chain.anvil.chain_id}"):
        run(adapter.connect())
    assert adapter.health().state is Health.HALTED
    with pytest.raises(ChainAdapterError):  # and it stays refused: no retry loop
        run(collect_batches(adapter, Cursor.genesis(chain.anvil.chain_id + 1), lambda b: True, timeout_seconds=5))
    run(adapter.close())


def test_missing_contract_is_refused(chain: DevChain) -> None:
    empty = "0x000000000000000000000000000000000000dEaD"
    adapter = EvmChainAdapter(chain.adapter_config("nocode", markets=(empty,)))
    with pytest.raises(ChainAdapterError, match=r"chain nocode .*no contract code at 0x000000000000000000000000000000000000dEaD \(market\)"):
        run(adapter.connect())
    run(adapter.close())


# ---- what is observed ----------------------------------------------------------------------


def test_every_event_kind_is_observed_once_in_order(chain: DevChain) -> None:
    trader, counterparty = chain.accounts[2], chain.accounts[3]
    deposit_tx = _deposit(chain, 77)
    chain.trade_perpetual(trader, counterparty, "WETH", -2 * 10**18, 3_000 * 10**18)
    chain.set_price("WETH", 3_100 * 10**8)
    head = chain.anvil.block_number()
    batches = run(_stream_until(EvmChainAdapter(chain.adapter_config()), _start(chain), head))
    observations = [o for batch in batches for o in batch.observations]
    assert [o.key for o in observations] == sorted({o.key for o in observations})
    deposit = next(o for o in observations if isinstance(o, DepositObserved) and o.tx_hash == deposit_tx)
    assert deposit.amount == 77 and deposit.asset == chain.token("USDC") and deposit.account == chain.accounts[1].address
    root = next(o for o in observations if isinstance(o, RootUpdated) and o.tx_hash == deposit_tx)
    assert (root.root, root.leaf_count) == (deposit.root, deposit.leaf_index + 1)
    traded = [o for o in observations if isinstance(o, Traded)][-1]
    assert (traded.maker, traded.taker, traded.maker_size, traded.price, traded.kind.name) == (
        trader.address, counterparty.address, -2 * 10**18, 3_000 * 10**18, "PERPETUAL"
    )
    assert not traded.is_close_out
    price = [o for o in observations if isinstance(o, PriceUpdated)][-1]
    assert (price.asset, price.answer, price.decimals) == (chain.token("WETH"), 3_100 * 10**8, 8)


def test_quorum_payouts_are_observed_as_released_and_seized(chain: DevChain) -> None:
    domain = VaultDomain(chain.anvil.chain_id, chain.deployment.vault)
    account, recipient, token = chain.accounts[1].address, chain.accounts[8].address, chain.token("USDC")
    _deposit(chain, 500)
    release = ReleaseOrder(b"\x01" * 32, account, token, 200, recipient)
    seize = SeizeOrder(b"\x02" * 32, account, token, 100, recipient, NO_DEADLINE)
    vault = chain.vault
    sender = {"from": chain.accounts[0].address}
    for order in (release, seize):
        signatures = quorum_signatures(domain, order, [sign(domain, order, key.private_key) for key in chain.node_set[:3]])
        if isinstance(order, ReleaseOrder):
            call = vault.functions.release(order.release_id, order.account, order.token, order.amount, order.recipient, order.deadline, signatures)
        else:
            call = vault.functions.seize(order.seize_id, order.account, order.token, order.amount, order.recipient, order.deadline, signatures)
        call.transact(sender)
    head = chain.anvil.block_number()
    batches = run(_stream_until(EvmChainAdapter(chain.adapter_config()), Cursor.before(chain.anvil.chain_id, head - 1), head))
    observations = [o for b in batches for o in b.observations]
    released = [o for o in observations if isinstance(o, Released)]
    seized = [o for o in observations if isinstance(o, Seized)]
    assert [(o.order_id, o.account, o.asset, o.amount, o.recipient) for o in released] == [
        (release.release_id, account, token, 200, recipient)
    ]
    assert [(o.order_id, o.account, o.asset, o.amount, o.recipient) for o in seized] == [
        (seize.seize_id, account, token, 100, recipient)
    ]


def test_small_block_ranges_deliver_the_same_events_contiguously(chain: DevChain) -> None:
    _deposit(chain)
    _deposit(chain)
    head = chain.anvil.block_number()
    whole = run(_stream_until(EvmChainAdapter(chain.adapter_config()), _start(chain), head))
    pieces = run(_stream_until(EvmChainAdapter(chain.adapter_config(max_block_range=3)), _start(chain), head))
    assert all(b.cursor.block_number - b.first_block < 3 for b in pieces)
    for previous, batch in zip(pieces, pieces[1:]):
        assert batch.first_block == previous.cursor.block_number + 1
    assert [o.key for b in pieces for o in b.observations] == [o.key for b in whole for o in b.observations]


def test_events_of_unconfigured_contracts_are_ignored(chain: DevChain) -> None:
    # A second vault on the same chain, emitting the very same events, is not ours.
    stranger = deploy_contract(chain.web3, "CollateralVault", chain.deployment.poseidon2, chain.deployment.poseidon4, [chain.accounts[0].address])
    depositor = chain.accounts[3].address
    token = chain.contract("MockERC20", chain.token("USDC"))
    token.functions.approve(stranger, 10).transact({"from": depositor})
    chain.contract("CollateralVault", stranger).functions.deposit(chain.token("USDC"), 10, 1).transact({"from": depositor})
    head = chain.anvil.block_number()
    batches = run(_stream_until(EvmChainAdapter(chain.adapter_config()), _start(chain), head))
    assert all(o.contract in chain.adapter_config().contracts for b in batches for o in b.observations)


def test_nothing_is_emitted_above_the_finality_line(chain: DevChain) -> None:
    adapter = EvmChainAdapter(chain.adapter_config(finality=Finality(confirmations=3)))
    tx_hash = _deposit(chain)
    deposit_block = chain.anvil.block_number()
    chain.mine(2)  # two confirmations: not final yet
    batches = run(_stream_until(adapter, _start(chain), deposit_block - 1))
    assert batches[-1].cursor.block_number == deposit_block - 1
    assert not any(d.tx_hash == tx_hash for d in _deposits(batches))
    chain.mine(1)
    adapter = EvmChainAdapter(chain.adapter_config(finality=Finality(confirmations=3)))
    later = run(_stream_until(adapter, batches[-1].cursor, deposit_block))
    assert [d.tx_hash for d in _deposits(later)] == [tx_hash]


def test_finalized_tag_finality_follows_the_chains_own_finalized_block() -> None:
    # With one slot per epoch, anvil finalizes the block two below the head.
    with DevChain.start(chain_id=41901, slots_in_an_epoch=1) as chain:
        tx_hash = _deposit(chain)
        deposit_block = chain.anvil.block_number()
        adapter = EvmChainAdapter(chain.adapter_config("tagged", finality=Finality(tag="finalized")))
        final = run(adapter.finalized_head())
        assert final.number == deposit_block - 2
        early = run(_stream_until(adapter, _start(chain), final.number))
        assert not any(d.tx_hash == tx_hash for d in _deposits(early))
        chain.mine(2)
        adapter = EvmChainAdapter(chain.adapter_config("tagged", finality=Finality(tag="finalized")))
        later = run(_stream_until(adapter, early[-1].cursor, deposit_block))
        assert [d.tx_hash for d in _deposits(later)] == [tx_hash]


def test_vault_root_is_read_at_a_past_block(chain: DevChain) -> None:
    _deposit(chain)
    first_block = chain.anvil.block_number()
    first_root, first_count = chain.vault.functions.treeState().call()
    _deposit(chain)
    adapter = EvmChainAdapter(chain.adapter_config())
    state = run(adapter.vault_root(first_block))
    run(adapter.close())
    assert (state.root, state.leaf_count, state.block.number) == (first_root, first_count, first_block)


def test_vault_root_before_the_vault_existed_is_a_clear_error(chain: DevChain) -> None:
    adapter = EvmChainAdapter(chain.adapter_config("early"))
    with pytest.raises(ChainAdapterError, match=r"chain early .*has no tree state at block 0"):
        run(adapter.vault_root(0))
    run(adapter.close())


def test_submit_transaction_broadcasts_and_rejects_garbage(chain: DevChain) -> None:
    sender = chain.accounts[4]
    transaction = {
        "to": chain.accounts[5].address,
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 2 * int(chain.web3.eth.get_block("latest")["baseFeePerGas"]) + 10**9,
        "maxPriorityFeePerGas": 1,
        "nonce": chain.web3.eth.get_transaction_count(sender.address),
        "chainId": chain.anvil.chain_id,
        "type": 2,
    }
    raw = bytes(Account.sign_transaction(transaction, sender.private_key).raw_transaction)
    adapter = EvmChainAdapter(chain.adapter_config())
    tx_hash = run(adapter.submit_transaction(raw))
    assert chain.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=10)["status"] == 1
    with pytest.raises(ChainAdapterError, match="transaction rejected"):
        run(adapter.submit_transaction(b"\x02not a transaction"))
    run(adapter.close())


def test_malformed_log_from_a_configured_contract_halts_with_a_clear_error(chain: DevChain) -> None:
    # A "vault" whose code emits a Deposited topic with no indexed fields and no data.
    fake_vault = to_checksum_address("0x00000000000000000000000000000000000face0")
    runtime = "0x7f" + DEPOSITED.topic0.hex() + "60006000a100"  # PUSH32 topic; PUSH1 0; PUSH1 0; LOG1; STOP
    chain.anvil.rpc("anvil_setCode", [fake_vault, runtime])
    chain.web3.eth.send_transaction({"from": chain.accounts[0].address, "to": fake_vault})
    head = chain.anvil.block_number()
    adapter = EvmChainAdapter(chain.adapter_config("broken", vault=fake_vault, markets=(), price_feeds=()))
    with pytest.raises(MalformedLog, match=rf"chain broken .*malformed log from {fake_vault}: block {head} log 0"):
        run(_stream_until(adapter, Cursor.before(chain.anvil.chain_id, head), head))
    assert adapter.health().state is Health.HALTED


# ---- reorgs --------------------------------------------------------------------------------


def test_reorg_above_finality_emits_only_the_surviving_events_once(chain: DevChain) -> None:
    confirmations = 3
    adapter = EvmChainAdapter(chain.adapter_config(finality=Finality(confirmations=confirmations)))
    chain.mine(confirmations)
    start = Cursor.before(chain.anvil.chain_id, chain.anvil.block_number() - confirmations + 1)

    async def scenario() -> tuple[list[ObservationBatch], bytes, bytes, bytes]:
        await adapter.connect()
        follower = StreamFollower(adapter, start)  # follows the chain while it forks under it
        snapshot = await asyncio.to_thread(chain.anvil.rpc, "evm_snapshot")
        orphaned = await asyncio.to_thread(_deposit, chain, 1)
        await asyncio.to_thread(chain.mine, 1)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(chain.anvil.rpc, "evm_revert", [snapshot])
        survivor = await asyncio.to_thread(_deposit, chain, 2)
        await asyncio.to_thread(chain.mine, 1)
        replaced = await asyncio.to_thread(_deposit, chain, 3)
        await asyncio.to_thread(chain.anvil.rpc, "anvil_reorg", [1, []])  # drops the block holding `replaced`
        await asyncio.to_thread(chain.mine, confirmations + 1)
        final = await adapter.finalized_head()
        await follower.wait_until(reached(final.number))
        await follower.stop()
        await adapter.close()
        return follower.batches, orphaned, survivor, replaced

    batches, orphaned, survivor, replaced = run(scenario())
    seen = [d.tx_hash for d in _deposits(batches)]
    assert seen.count(survivor) == 1
    assert orphaned not in seen and replaced not in seen
    keys = [o.key for b in batches for o in b.observations]
    assert len(keys) == len(set(keys))
    assert adapter.health().state is Health.OK


def test_reorg_deeper_than_finality_halts_without_emitting_anything_new(chain: DevChain) -> None:
    adapter = EvmChainAdapter(chain.adapter_config(finality=Finality(confirmations=1)))
    snapshot = chain.anvil.rpc("evm_snapshot")
    first = _deposit(chain)
    chain.mine(3)
    start = Cursor.before(chain.anvil.chain_id, chain.anvil.block_number() - 4)

    async def scenario() -> tuple[StreamFollower, BaseException, int]:
        await adapter.connect()
        follower = StreamFollower(adapter, start)
        await follower.wait_until(_has_deposit(first))
        await follower.wait_until(reached(chain.anvil.block_number() - 1))
        delivered = len(follower.batches)
        # Rewrite history below the finality line: the block the adapter delivered changes.
        await asyncio.to_thread(chain.anvil.rpc, "evm_revert", [snapshot])
        await asyncio.to_thread(_deposit, chain, 5)
        await asyncio.to_thread(chain.mine, 8)
        error = await follower.wait_for_error()
        await adapter.close()
        return follower, error, delivered

    follower, error, delivered = run(scenario())
    assert isinstance(error, ReorgTooDeep)
    assert "deeper than its finality (1 confirmations)" in str(error) and "chain test" in str(error)
    assert len(follower.batches) == delivered  # nothing from the new branch got through
    assert adapter.health().state is Health.HALTED
    with pytest.raises(ReorgTooDeep):  # and it stays halted
        run(collect_batches(adapter, follower.batches[-1].cursor, lambda b: True, timeout_seconds=5))


# ---- outages and restarts --------------------------------------------------------------------


@pytest.mark.slow
def test_rpc_killed_and_restarted_misses_and_repeats_nothing(tmp_path: Path) -> None:
    with DevChain.start(chain_id=41900, state_path=tmp_path / "anvil-state.json") as chain:
        adapter = EvmChainAdapter(chain.adapter_config(rpc_timeout_seconds=1.0, max_backoff_seconds=0.3))

        async def scenario() -> tuple[list[ObservationBatch], bytes, bytes, list[Health]]:
            await adapter.connect()
            follower = StreamFollower(adapter, _start(chain))
            before = await asyncio.to_thread(_deposit, chain, 11)
            await follower.wait_until(_has_deposit(before))
            states = [adapter.health().state]
            await asyncio.to_thread(chain.anvil.stop)
            async with asyncio.timeout(15):
                while adapter.health().state is not Health.DEGRADED:
                    await asyncio.sleep(0.05)
            states.append(adapter.health().state)
            await asyncio.sleep(1.0)  # a few failed polls and back-offs
            await asyncio.to_thread(chain.anvil.start)
            after = await asyncio.to_thread(_deposit, chain, 12)
            await follower.wait_until(_has_deposit(after))
            states.append(adapter.health().state)
            await follower.stop()
            await adapter.close()
            return follower.batches, before, after, states

        batches, before, after, states = run(scenario())
        seen = [d.tx_hash for d in _deposits(batches)]
        assert seen.count(before) == 1 and seen.count(after) == 1
        keys = [o.key for b in batches for o in b.observations]
        assert len(keys) == len(set(keys))
        for previous, batch in zip(batches, batches[1:]):
            assert batch.first_block == previous.cursor.block_number + 1
        assert states == [Health.OK, Health.DEGRADED, Health.OK]


def test_restarted_adapter_resumes_from_its_stored_cursor(chain: DevChain, tmp_path: Path) -> None:
    store = CursorStore(tmp_path / "node.sqlite")
    network = "restart-test"

    async def consume_until(tx_hash: bytes) -> list[ObservationBatch]:
        adapter = EvmChainAdapter(chain.adapter_config(network))
        await adapter.connect()
        cursor = store.load(network) or _start(chain)
        handled: list[ObservationBatch] = []
        stream = adapter.observations(cursor)
        try:
            async with asyncio.timeout(20):
                async for batch in stream:
                    handled.append(batch)
                    store.save(network, batch.cursor)  # after handling: the consumer's commit point
                    if _has_deposit(tx_hash)(handled):
                        break
        finally:
            await stream.aclose()
            await adapter.close()
        return handled

    first = _deposit(chain)
    before_restart = run(consume_until(first))
    second = _deposit(chain)
    after_restart = run(consume_until(second))
    store.close()
    all_deposits = [d.tx_hash for d in _deposits(before_restart + after_restart)]
    assert all_deposits.count(first) == 1 and all_deposits.count(second) == 1
    assert after_restart[0].first_block == before_restart[-1].cursor.block_number + 1

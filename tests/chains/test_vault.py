"""CollateralVault on a real anvil chain: the Merkle root, deposits' checks, quorum payouts."""

from __future__ import annotations

import os
from typing import Any

import pytest
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from crossclear.chains.vault_orders import (
    NO_DEADLINE,
    NodeSetUpdate,
    ReleaseOrder,
    SeizeOrder,
    VaultDomain,
    VaultOrder,
    quorum_signatures,
    sign,
    sorted_signers,
    typed_data,
)
from crossclear.devnet.accounts import DevAccount, node_keys
from crossclear.devnet.chain import DevChain
from crossclear.devnet.deploy import transact
from crossclear.zk import SNARK_SCALAR_FIELD, IncrementalMerkleTree, address_to_field, deposit_leaf, secret_hash

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _domain(chain: DevChain) -> VaultDomain:
    return VaultDomain(chain_id=chain.anvil.chain_id, vault=chain.deployment.vault)


def _signatures(chain: DevChain, order: VaultOrder, signers: list[DevAccount]) -> list[bytes]:
    return quorum_signatures(_domain(chain), order, [sign(_domain(chain), order, s.private_key) for s in signers])


def _balance(chain: DevChain, symbol: str, holder: str) -> int:
    balance: int = chain.contract("MockERC20", chain.token(symbol)).functions.balanceOf(holder).call()
    return balance


def _tree_state(chain: DevChain) -> tuple[int, int]:
    root, count = chain.vault.functions.treeState().call()
    return int(root), int(count)


def _release(chain: DevChain, order: ReleaseOrder, signatures: list[bytes]) -> Any:
    function = chain.vault.functions.release(
        order.release_id, order.account, order.token, order.amount, order.recipient, order.deadline, signatures
    )
    return function.transact({"from": chain.accounts[0].address})


def _seize(chain: DevChain, order: SeizeOrder, signatures: list[bytes]) -> Any:
    function = chain.vault.functions.seize(
        order.seize_id, order.account, order.token, order.amount, order.recipient, order.deadline, signatures
    )
    return function.transact({"from": chain.accounts[0].address})


@pytest.fixture(scope="module")
def funded_vault(chain: DevChain) -> DevChain:
    """The module chain with USDC in the vault to pay out."""
    chain.deposit(chain.accounts[5].address, "USDC", 1_000 * 10**6, secret_hash(5))
    return chain


def _release_order(chain: DevChain, amount: int = 10 * 10**6) -> ReleaseOrder:
    return ReleaseOrder(
        release_id=os.urandom(32),
        account=chain.accounts[5].address,
        token=chain.token("USDC"),
        amount=amount,
        recipient=chain.accounts[6].address,
    )


# ---- the tree -------------------------------------------------------------------------------


def test_zero_values_and_empty_root_match_python(chain: DevChain) -> None:
    tree = IncrementalMerkleTree()
    for level in (0, 1, 10, 20):
        assert chain.vault.functions.zeroValue(level).call() == tree.zeros[level]


def test_on_chain_root_equals_python_root_after_each_deposit() -> None:
    # A fresh chain, so the Python tree can replay every leaf from index 0.
    with DevChain.start(chain_id=41999) as chain:
        tree = IncrementalMerkleTree()
        assert _tree_state(chain) == (tree.root, 0)
        deposits = [(1, "USDC", 5 * 10**6), (2, "WETH", 3 * 10**18), (1, "WBTC", 1), (3, "USDC", 7), (2, "USDC", 11)]
        for number, (account_index, symbol, amount) in enumerate(deposits):
            depositor = chain.accounts[account_index].address
            hashed_secret = secret_hash(1000 + number)
            receipt = chain.deposit(depositor, symbol, amount, hashed_secret)
            event = chain.vault.events.Deposited().process_receipt(receipt, errors=DISCARD)[0]["args"]
            leaf = deposit_leaf(address_to_field(depositor), address_to_field(chain.token(symbol)), amount, hashed_secret)
            assert event["leaf"] == leaf
            assert event["leafIndex"] == tree.insert(leaf)
            assert event["root"] == tree.root
            assert _tree_state(chain) == (tree.root, number + 1)
            assert chain.vault.functions.isKnownRoot(tree.root).call()
        assert not chain.vault.functions.isKnownRoot(12345).call()


@pytest.mark.parametrize(
    ("amount", "hashed_secret", "reason"),
    [
        (0, 1, "amount must be positive"),
        (10, SNARK_SCALAR_FIELD, "secretHash is not a field element"),
        (1 << 252, 1, r"amount must be below 2\*\*252"),
    ],
    ids=["zero amount", "secret hash outside the field", "amount beyond 252 bits"],
)
def test_deposit_rejects_bad_input_without_changing_the_tree(chain: DevChain, amount: int, hashed_secret: int, reason: str) -> None:
    depositor = chain.accounts[2].address
    token = chain.token("USDC")
    transact(chain.web3, "MockERC20", token, "mint", depositor, amount)
    transact(chain.web3, "MockERC20", token, "approve", chain.deployment.vault, amount, sender=depositor)
    before = _tree_state(chain)
    with pytest.raises(ContractLogicError, match=reason):
        chain.vault.functions.deposit(token, amount, hashed_secret).transact({"from": depositor})
    assert _tree_state(chain) == before


def test_deposit_without_allowance_reverts(chain: DevChain) -> None:
    before = _tree_state(chain)
    with pytest.raises(ContractLogicError, match="allowance too low"):
        chain.vault.functions.deposit(chain.token("WETH"), 10**30, 1).transact({"from": chain.accounts[3].address})
    assert _tree_state(chain) == before


# ---- EIP-712 agreement ----------------------------------------------------------------------


def test_python_domain_separator_matches_the_contract(chain: DevChain) -> None:
    from eth_account.messages import encode_typed_data

    signable = encode_typed_data(full_message=typed_data(_domain(chain), _release_order(chain)))
    assert chain.vault.functions.domainSeparator().call() == signable.header


# ---- release ----------------------------------------------------------------------------------


def test_release_with_a_quorum_pays_once(funded_vault: DevChain) -> None:
    chain = funded_vault
    order = _release_order(chain)
    signatures = _signatures(chain, order, list(chain.node_set[:3]))
    before = _balance(chain, "USDC", order.recipient)
    _release(chain, order, signatures)
    assert _balance(chain, "USDC", order.recipient) == before + order.amount
    assert chain.vault.functions.releaseUsed(order.release_id).call()
    with pytest.raises(ContractLogicError, match="release id already used"):
        _release(chain, order, signatures)
    assert _balance(chain, "USDC", order.recipient) == before + order.amount


def test_release_with_all_four_signers_is_accepted(funded_vault: DevChain) -> None:
    chain = funded_vault
    order = _release_order(chain, amount=1)
    _release(chain, order, _signatures(chain, order, list(chain.node_set)))
    assert chain.vault.functions.releaseUsed(order.release_id).call()


def _bad_signature_sets(chain: DevChain, order: ReleaseOrder) -> dict[str, tuple[list[bytes], str]]:
    good = _signatures(chain, order, list(chain.node_set[:3]))
    outsider = node_keys(6)[5]
    other_vault = VaultDomain(chain_id=chain.anvil.chain_id, vault=chain.deployment.market)
    high_s = bytearray(good[0])
    s_value = int.from_bytes(high_s[32:64], "big")
    high_s[32:64] = (SECP256K1_ORDER - s_value).to_bytes(32, "big")
    high_s[64] = 55 - high_s[64]  # 27 <-> 28: the same signer, malleated
    return {
        "fewer than threshold": (good[:2], "fewer signatures than the threshold"),
        "duplicate signer": ([good[0], good[0], good[1]], "distinct and in ascending order"),
        "descending order": (list(reversed(good)), "distinct and in ascending order"),
        "unknown signer": (
            quorum_signatures(
                _domain(chain), order, good[:2] + [sign(_domain(chain), order, outsider.private_key)]
            ),
            "not in the node set",
        ),
        "signed for another vault": (
            [sign(other_vault, order, s.private_key) for s in sorted(chain.node_set[:3], key=lambda s: int(s.address, 16))],
            "not in the node set|ascending order",
        ),
        "malleable high s": ([bytes(high_s), *good[1:]], "malleable signature"),
        "truncated signature": ([good[0][:64], *good[1:]], "signature must be 65 bytes"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "fewer than threshold",
        "duplicate signer",
        "descending order",
        "unknown signer",
        "signed for another vault",
        "malleable high s",
        "truncated signature",
    ],
)
def test_release_without_a_valid_quorum_reverts_and_pays_nothing(funded_vault: DevChain, case: str) -> None:
    chain = funded_vault
    order = _release_order(chain)
    signatures, reason = _bad_signature_sets(chain, order)[case]
    before = _balance(chain, "USDC", order.recipient)
    with pytest.raises(ContractLogicError, match=reason):
        _release(chain, order, signatures)
    assert _balance(chain, "USDC", order.recipient) == before
    assert not chain.vault.functions.releaseUsed(order.release_id).call()


def test_release_signatures_do_not_cover_a_changed_amount(funded_vault: DevChain) -> None:
    chain = funded_vault
    order = _release_order(chain)
    signatures = _signatures(chain, order, list(chain.node_set[:3]))
    inflated = ReleaseOrder(order.release_id, order.account, order.token, order.amount * 10, order.recipient)
    with pytest.raises(ContractLogicError):
        _release(chain, inflated, signatures)
    assert not chain.vault.functions.releaseUsed(order.release_id).call()


# ---- seize ------------------------------------------------------------------------------------


def test_seize_with_a_quorum_pays_the_liquidator_once(funded_vault: DevChain) -> None:
    chain = funded_vault
    order = SeizeOrder(os.urandom(32), chain.accounts[5].address, chain.token("USDC"), 3 * 10**6, chain.accounts[7].address, NO_DEADLINE)
    signatures = _signatures(chain, order, list(chain.node_set[1:]))
    before = _balance(chain, "USDC", order.recipient)
    _seize(chain, order, signatures)
    assert _balance(chain, "USDC", order.recipient) == before + order.amount
    with pytest.raises(ContractLogicError, match="seize id already used"):
        _seize(chain, order, signatures)


def test_release_signatures_cannot_be_used_to_seize(funded_vault: DevChain) -> None:
    chain = funded_vault
    release = _release_order(chain)
    signatures = _signatures(chain, release, list(chain.node_set[:3]))
    seize = SeizeOrder(release.release_id, release.account, release.token, release.amount, release.recipient, release.deadline)
    before = _balance(chain, "USDC", release.recipient)
    with pytest.raises(ContractLogicError, match="not in the node set|ascending order"):
        _seize(chain, seize, signatures)
    assert _balance(chain, "USDC", release.recipient) == before


# ---- node set ---------------------------------------------------------------------------------


def test_node_set_changes_only_by_a_quorum_signed_update() -> None:
    with DevChain.start(chain_id=41998) as chain:
        vault = chain.vault
        old = list(chain.node_set)
        new = list(node_keys(7)[3:7])  # keys 3..6: one member kept, three new
        update = NodeSetUpdate(epoch=vault.functions.epoch().call(), signers=sorted_signers(k.address for k in new))
        sender = {"from": chain.accounts[0].address}

        with pytest.raises(ContractLogicError, match="fewer signatures than the threshold"):
            vault.functions.updateNodeSet(list(update.signers), _signatures(chain, update, old[:2])).transact(sender)
        outsiders = _signatures(chain, update, new[1:])
        with pytest.raises(ContractLogicError, match="not in the node set"):
            vault.functions.updateNodeSet(list(update.signers), outsiders).transact(sender)
        assert vault.functions.getSigners().call() == list(sorted_signers(k.address for k in old))

        quorum = _signatures(chain, update, old[:3])
        vault.functions.updateNodeSet(list(update.signers), quorum).transact(sender)
        assert vault.functions.getSigners().call() == list(update.signers)
        assert vault.functions.threshold().call() == 3
        with pytest.raises(ContractLogicError):  # the epoch moved on: the update cannot replay
            vault.functions.updateNodeSet(list(update.signers), quorum).transact(sender)

        chain.deposit(chain.accounts[5].address, "USDC", 100, secret_hash(9))
        order = _release_order(chain, amount=100)
        with pytest.raises(ContractLogicError, match="not in the node set"):
            _release(chain, order, _signatures(chain, order, old[:3]))
        _release(chain, order, _signatures(chain, order, new[:3]))
        assert vault.functions.releaseUsed(order.release_id).call()


def test_node_set_update_must_be_sorted_and_non_empty() -> None:
    with DevChain.start(chain_id=41997) as chain:
        vault = chain.vault
        sender = {"from": chain.accounts[0].address}
        epoch = vault.functions.epoch().call()
        unsorted = tuple(reversed(sorted_signers(k.address for k in node_keys(2))))
        for signers, reason in ((unsorted, "ascending, distinct, non-zero"), ((), "node set is empty")):
            update = NodeSetUpdate(epoch=epoch, signers=signers)
            with pytest.raises(ContractLogicError, match=reason):
                vault.functions.updateNodeSet(list(signers), _signatures(chain, update, list(chain.node_set[:3]))).transact(sender)
        assert vault.functions.epoch().call() == epoch


def test_vault_deploys_with_the_node_set_threshold(chain: DevChain) -> None:
    assert chain.vault.functions.threshold().call() == 3
    assert chain.vault.functions.getSigners().call() == list(sorted_signers(k.address for k in chain.node_set))


def test_release_after_its_deadline_reverts_and_pays_nothing(funded_vault: DevChain) -> None:
    chain = funded_vault
    now = int(chain.web3.eth.get_block("latest")["timestamp"])
    expired = ReleaseOrder(os.urandom(32), chain.accounts[5].address, chain.token("USDC"), 10 * 10**6, chain.accounts[6].address, deadline=now - 1)
    signatures = _signatures(chain, expired, list(chain.node_set[:3]))
    before = _balance(chain, "USDC", expired.recipient)
    with pytest.raises(ContractLogicError, match="release expired"):
        _release(chain, expired, signatures)
    assert _balance(chain, "USDC", expired.recipient) == before
    # The same signatures cannot be moved to a later deadline either.
    later = ReleaseOrder(expired.release_id, expired.account, expired.token, expired.amount, expired.recipient, deadline=now + 3600)
    with pytest.raises(ContractLogicError):
        _release(chain, later, signatures)


# ---- deadlines and ids of seizes ----------------------------------------------------------------


def _chain_time(chain: DevChain) -> int:
    return int(chain.web3.eth.get_block("latest")["timestamp"])


def _seize_order(chain: DevChain, deadline: int, seize_id: bytes | None = None, amount: int = 2 * 10**6) -> SeizeOrder:
    return SeizeOrder(
        seize_id=os.urandom(32) if seize_id is None else seize_id,
        account=chain.accounts[5].address,
        token=chain.token("USDC"),
        amount=amount,
        recipient=chain.accounts[7].address,
        deadline=deadline,
    )


@pytest.mark.parametrize(("primary_type", "getter"), [("Release", "RELEASE_TYPEHASH"), ("Seize", "SEIZE_TYPEHASH")])
def test_python_type_strings_match_the_contract_typehashes(chain: DevChain, primary_type: str, getter: str) -> None:
    from eth_utils.crypto import keccak

    order = _release_order(chain) if primary_type == "Release" else _seize_order(chain, NO_DEADLINE)
    fields = typed_data(_domain(chain), order)["types"][primary_type]
    members = ",".join(f"{field['type']} {field['name']}" for field in fields)
    type_string = f"{primary_type}({members})"
    assert getattr(chain.vault.functions, getter)().call() == keccak(text=type_string)


def test_seize_after_its_deadline_reverts_and_pays_nothing(funded_vault: DevChain) -> None:
    chain = funded_vault
    now = _chain_time(chain)
    expired = _seize_order(chain, deadline=now - 1)
    signatures = _signatures(chain, expired, list(chain.node_set[:3]))
    before = _balance(chain, "USDC", expired.recipient)
    with pytest.raises(ContractLogicError, match="seize expired"):
        _seize(chain, expired, signatures)
    assert _balance(chain, "USDC", expired.recipient) == before
    assert not chain.vault.functions.seizeUsed(expired.seize_id).call()
    # The same signatures cannot be moved to a later deadline: they sign the old one.
    later = _seize_order(chain, deadline=now + 3600, seize_id=expired.seize_id)
    with pytest.raises(ContractLogicError, match="not in the node set|ascending order"):
        _seize(chain, later, signatures)
    assert _balance(chain, "USDC", expired.recipient) == before


def test_seize_is_accepted_in_the_block_at_its_deadline(funded_vault: DevChain) -> None:
    chain = funded_vault
    deadline = _chain_time(chain) + 100
    order = _seize_order(chain, deadline=deadline, amount=1)
    signatures = _signatures(chain, order, list(chain.node_set[:3]))
    chain.anvil.rpc("evm_setNextBlockTimestamp", [deadline])
    receipt = chain.web3.eth.wait_for_transaction_receipt(_seize(chain, order, signatures))
    assert chain.web3.eth.get_block(receipt["blockNumber"])["timestamp"] == deadline
    assert chain.vault.functions.seizeUsed(order.seize_id).call()


def test_a_used_seize_id_cannot_be_reused_with_another_deadline(funded_vault: DevChain) -> None:
    chain = funded_vault
    now = _chain_time(chain)
    first = _seize_order(chain, deadline=now + 3600)
    before = _balance(chain, "USDC", first.recipient)
    _seize(chain, first, _signatures(chain, first, list(chain.node_set[:3])))
    assert _balance(chain, "USDC", first.recipient) == before + first.amount
    # A fresh quorum over the same id with a later deadline is a different digest, but the id is spent.
    again = _seize_order(chain, deadline=now + 7200, seize_id=first.seize_id)
    with pytest.raises(ContractLogicError, match="seize id already used"):
        _seize(chain, again, _signatures(chain, again, list(chain.node_set[1:])))
    assert _balance(chain, "USDC", first.recipient) == before + first.amount

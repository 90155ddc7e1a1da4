"""EIP-712 vault orders: thresholds, signer ordering, signing round trips, bad input."""

from __future__ import annotations

import pytest

from crossclear.chains.vault_orders import (
    NO_DEADLINE,
    ReleaseOrder,
    SeizeOrder,
    VaultDomain,
    digest,
    quorum_signatures,
    recover_signer,
    sign,
    sorted_signers,
    threshold,
    typed_data,
)
from crossclear.devnet.accounts import node_keys

DOMAIN = VaultDomain(chain_id=31001, vault="0x998abeb3E57409262aE5b751f60747921B33613E")
ACCOUNT = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize(("size", "needed"), [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7)])
def test_threshold_is_two_thirds_plus_one(size: int, needed: int) -> None:
    assert threshold(size) == needed


def test_threshold_of_an_empty_set_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        threshold(0)


def test_signatures_recover_to_their_signers_and_sort_by_address() -> None:
    order = ReleaseOrder(b"\x11" * 32, ACCOUNT, TOKEN, 5, ACCOUNT)
    keys = node_keys(4)
    signatures = [sign(DOMAIN, order, key.private_key) for key in keys]
    for key, signature in zip(keys, signatures):
        assert recover_signer(DOMAIN, order, signature) == key.address
    arranged = quorum_signatures(DOMAIN, order, signatures + signatures[:2])  # duplicates collapse
    assert [recover_signer(DOMAIN, order, s) for s in arranged] == list(sorted_signers(k.address for k in keys))


def test_release_and_seize_with_equal_fields_have_different_digests() -> None:
    release = ReleaseOrder(b"\x22" * 32, ACCOUNT, TOKEN, 5, ACCOUNT)
    seize = SeizeOrder(b"\x22" * 32, ACCOUNT, TOKEN, 5, ACCOUNT, NO_DEADLINE)
    assert digest(DOMAIN, release) != digest(DOMAIN, seize)
    other_chain = VaultDomain(chain_id=31002, vault=DOMAIN.vault)
    assert digest(DOMAIN, release) != digest(other_chain, release)


def test_order_id_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="releaseId must be 32 bytes"):
        digest(DOMAIN, ReleaseOrder(b"short", ACCOUNT, TOKEN, 5, ACCOUNT))


def test_recovery_refuses_signatures_the_vault_refuses() -> None:
    order = ReleaseOrder(b"\x33" * 32, ACCOUNT, TOKEN, 5, ACCOUNT)
    key = node_keys(1)[0]
    good = sign(DOMAIN, order, key.private_key)
    assert recover_signer(DOMAIN, order, good) == key.address
    order_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = good[:32] + (order_n - int.from_bytes(good[32:64], "big")).to_bytes(32, "big") + bytes([55 - good[64]])
    for refused in (good[:64] + bytes([good[64] - 27]), high_s, good[:64]):
        with pytest.raises(ValueError):
            recover_signer(DOMAIN, order, refused)


def test_the_seize_deadline_is_signed() -> None:
    key = node_keys(1)[0]
    order = SeizeOrder(b"\x44" * 32, ACCOUNT, TOKEN, 5, ACCOUNT, deadline=1_700_000_000)
    later = SeizeOrder(b"\x44" * 32, ACCOUNT, TOKEN, 5, ACCOUNT, deadline=1_700_000_001)
    assert digest(DOMAIN, order) != digest(DOMAIN, later)
    signature = sign(DOMAIN, order, key.private_key)
    assert recover_signer(DOMAIN, order, signature) == key.address
    assert recover_signer(DOMAIN, later, signature) != key.address


def test_seize_typed_data_has_the_vault_type_fields_in_order() -> None:
    fields = typed_data(DOMAIN, SeizeOrder(b"\x55" * 32, ACCOUNT, TOKEN, 5, ACCOUNT, deadline=7))["types"]["Seize"]
    assert [(f["type"], f["name"]) for f in fields] == [
        ("bytes32", "seizeId"),
        ("address", "account"),
        ("address", "token"),
        ("uint256", "amount"),
        ("address", "recipient"),
        ("uint64", "deadline"),
    ]

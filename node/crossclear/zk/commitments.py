"""What a deposit commits to, and the nullifier a claim reveals.

    secret_hash = Poseidon(secret)
    leaf        = Poseidon(account, asset, amount, secret_hash)          (computed by the vault)
    nullifier   = Poseidon(secret, leaf_index, source_chain_id, vault)

The nullifier uses only the secret and source-side data: the same deposit yields the same
nullifier at every clearinghouse node and on every chain it is claimed at, so it can be
claimed once. The leaf index makes two deposits made with one secret distinct. The
clearinghouse domain is deliberately absent (it is a separate public input), otherwise one
deposit could be claimed once per domain.
"""

from __future__ import annotations

from crossclear.zk.poseidon import SNARK_SCALAR_FIELD, poseidon


def address_to_field(address: str | int) -> int:
    """An EVM address ("0x" + 40 hex digits, or an int) as the uint160 the vault hashes."""
    if isinstance(address, int):
        value = address
    else:
        text = address.lower().removeprefix("0x")
        if len(text) != 40:
            raise ValueError(f"address {address!r} is not 20 bytes of hex")
        value = int(text, 16)
    if not 0 <= value < 1 << 160:
        raise ValueError(f"address {address!r} does not fit in 160 bits")
    return value


def secret_hash(secret: int) -> int:
    _check_field("secret", secret)
    return poseidon([secret])


def deposit_leaf(account: int, asset: int, amount: int, secret_hash_value: int) -> int:
    return poseidon([account, asset, amount, secret_hash_value])


def nullifier(secret: int, leaf_index: int, source_chain_id: int, vault: int) -> int:
    _check_field("secret", secret)
    return poseidon([secret, leaf_index, source_chain_id, vault])


def _check_field(name: str, value: int) -> None:
    if not 0 <= value < SNARK_SCALAR_FIELD:
        raise ValueError(f"{name} must be a field element (0 <= x < r)")

"""Devnet keys: anvil's funded dev accounts and the node set's signing keys. DEV-ONLY.

Both are derived from public, well-known seeds: anyone can spend from them. They exist so
every devnet run, test and demo sees the same addresses.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_account import Account
from eth_utils.crypto import keccak

from crossclear.chains.interface import Address
from crossclear.devnet.anvil import DEFAULT_MNEMONIC


@dataclass(frozen=True)
class DevAccount:
    """A devnet key pair."""

    address: Address
    """Checksummed address."""
    private_key: bytes
    """32-byte secp256k1 private key (public knowledge: devnet only)."""


def funded_accounts(count: int = 10, mnemonic: str = DEFAULT_MNEMONIC) -> tuple[DevAccount, ...]:
    """The accounts anvil funds with ether: m/44'/60'/0'/0/i of its mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    accounts = []
    for index in range(count):
        account = Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{index}")
        accounts.append(DevAccount(address=str(account.address), private_key=bytes(account.key)))
    return tuple(accounts)


def node_keys(count: int) -> tuple[DevAccount, ...]:
    """Signing keys of devnet nodes 0..count-1: keccak256("crossclear devnet node <i>")."""
    keys = []
    for index in range(count):
        private_key = bytes(keccak(text=f"crossclear devnet node {index}"))
        keys.append(DevAccount(address=str(Account.from_key(private_key).address), private_key=private_key))
    return tuple(keys)

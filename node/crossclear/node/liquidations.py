"""Liquidations: every node signs Seize orders for accounts whose equity fell below portfolio
maintenance; a liquidator submits an order to the vault once a quorum signed it.

Honest nodes must sign the *same* order for their signatures to add up, so an order depends
only on certified state: it seizes an account's whole holding of one token on one chain, and
its id is derived from the account, chain, token, amount and how many seizes of that account
were already certified. Prices decide *whether* to sign; they never enter the order. A node
whose prices are stale signs nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from crossclear.chains.vault_orders import SeizeOrder, VaultDomain, sign
from crossclear.node.claims import CollateralToken
from crossclear.node.clearing import ClearingState


@dataclass(frozen=True)
class SignedSeize:
    """One node's signature over one seize order, with why it signed."""

    domain: VaultDomain
    """The vault that pays."""
    order: SeizeOrder
    """What the vault is asked to do."""
    signature: bytes
    """This node's EIP-712 signature over the order."""
    equity: float
    """The account's equity when the node signed."""
    maintenance: float
    """The account's portfolio maintenance margin when the node signed."""
    height: int
    """Clearing-state height the decision was made at."""


def seize_id(account: str, chain_id: int, token: str, amount: int, seizes_so_far: int) -> bytes:
    """A 32-byte id every honest node derives identically from certified state."""
    encoded = b"".join(
        (
            b"crossclear-seize-v1",
            bytes.fromhex(account.removeprefix("0x").rjust(40, "0")),
            chain_id.to_bytes(32, "big"),
            bytes.fromhex(token.removeprefix("0x").rjust(40, "0")),
            amount.to_bytes(32, "big"),
            seizes_so_far.to_bytes(32, "big"),
        )
    )
    return bytes(keccak(encoded))


class LiquidationDesk:
    """Decides which accounts to liquidate and signs their seize orders."""

    def __init__(
        self,
        state: ClearingState,
        tokens: Mapping[tuple[int, str], CollateralToken],
        liquidator: str | None,
        node_private_key: bytes,
    ) -> None:
        """`tokens` maps (chain id, asset name) to the token its vault pays; `liquidator` is
        the address seized collateral goes to, the same on every node (None: sign nothing)."""
        self._state = state
        self._tokens = dict(tokens)
        self._liquidator = to_checksum_address(liquidator) if liquidator else None
        self._key = node_private_key
        self._seizes: dict[str, int] = {}

    def record_seized(self, account: str) -> None:
        """A Seized event for the account was certified (the next order gets a new id)."""
        self._seizes[account.lower()] = self._seizes.get(account.lower(), 0) + 1

    def sign_orders(self) -> list[SignedSeize]:
        """Seize orders for every liquidatable account, signed by this node."""
        if self._liquidator is None or self._state.stale_feeds():
            return []
        signed = []
        for account in self._state.accounts():
            margin = self._state.margin(account)
            if not margin.liquidatable:
                continue
            maintenance = margin.mm[3]
            for line in margin.collateral:
                token = self._tokens.get((line.chain_id, line.asset))
                if token is None:
                    continue
                amount = math.floor(line.amount * 10**token.decimals)
                if amount <= 0:
                    continue
                token_address = to_checksum_address(f"{token.token:#042x}")
                order = SeizeOrder(
                    seize_id=seize_id(account, line.chain_id, token_address, amount, self._seizes.get(account, 0)),
                    account=to_checksum_address(account),
                    token=token_address,
                    amount=amount,
                    recipient=self._liquidator,
                )
                domain = VaultDomain(chain_id=line.chain_id, vault=to_checksum_address(f"{token.vault:#042x}"))
                signed.append(SignedSeize(domain, order, sign(domain, order, self._key), margin.equity, maintenance, margin.height))
        return signed

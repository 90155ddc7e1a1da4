"""Liquidations: what a seize order is, and how every honest node derives the same one.

Every node signs Seize orders for accounts whose equity fell below portfolio maintenance; a
liquidator submits an order to the vault once a quorum signed it. Honest nodes must sign the
*same* order for their signatures to add up, so an order depends only on certified state:

- it seizes one holding (account, chain, token) whole: its free base units in the ledger;
- its id is derived from the holding and the holding's seize nonce, which only that holding's
  own certified `Seized` advances. The id therefore names one payout of that holding, however
  often it is signed: the vault pays an id once;
- its deadline is chain time rounded up to a whole window (`seize_deadline`), so nodes whose
  views of the chain are a few blocks apart still sign the same deadline;
- signing reserves the amount until the order is paid, or until this node's certified view
  of that chain is past the deadline.

Prices decide *whether* to sign; they never enter the order. A node whose prices are stale,
whose adapter for the chain is not healthy, or whose ledger failed its conservation check
signs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

from crossclear.chains.market_orders import CloseOut, MarketDomain
from crossclear.chains.vault_orders import SeizeOrder, VaultDomain

#: Seize deadlines are whole multiples of this many seconds of chain time.
SEIZE_WINDOW_SECONDS = 300
#: A seize signed at chain time t is valid until the end of the window after t's window.
SEIZE_WINDOWS_AHEAD = 2


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


@dataclass(frozen=True)
class SignedCloseOut:
    """One node's signature over one close-out order, with why it signed."""

    domain: MarketDomain
    """The market that executes it."""
    order: CloseOut
    """What the market is asked to do."""
    signature: bytes
    """This node's EIP-712 signature over the order."""
    equity: float
    """The account's equity when the node signed."""
    maintenance: float
    """The account's portfolio maintenance margin when the node signed."""
    height: int
    """Clearing-state height the decision was made at."""


def seize_id(account: str, chain_id: int, token: str, nonce: int) -> bytes:
    """A 32-byte id every honest node derives identically: holding and its seize nonce."""
    encoded = b"".join(
        (
            b"crossclear-seize-v2",
            bytes.fromhex(account.removeprefix("0x").rjust(40, "0")),
            chain_id.to_bytes(32, "big"),
            bytes.fromhex(token.removeprefix("0x").rjust(40, "0")),
            nonce.to_bytes(32, "big"),
        )
    )
    return bytes(keccak(encoded))


def seize_deadline(chain_time: int) -> int:
    """The deadline of a seize signed at `chain_time`: a window boundary, the same on every node
    whose view of the chain is in the same window."""
    return (chain_time // SEIZE_WINDOW_SECONDS + SEIZE_WINDOWS_AHEAD) * SEIZE_WINDOW_SECONDS

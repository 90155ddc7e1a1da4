"""The public signals of a collateral claim, in the one order the circuit defines.

`circuits/collateral_claim.circom` declares
`main {public [root, sourceChainId, vault, account, asset, claimedAmount, nullifier, domain]}`
and has no outputs, so snarkjs' `public.json` lists exactly these eight values in this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields

from crossclear.zk.groth16 import MalformedProof

ADDRESS_BITS = 160
#: Amounts are range-checked to 252 bits inside the circuit.
AMOUNT_BITS = 252


@dataclass(frozen=True)
class ClaimPublicSignals:
    """What a collateral-claim proof proves, as its public signals."""

    root: int
    """Deposit-tree root the leaf is under (must be a root the node set certified)."""
    source_chain_id: int
    """EIP-155 chain id of the chain holding the vault."""
    vault: int
    """Vault contract address as uint160."""
    account: int
    """Depositor address as uint160: the account credited."""
    asset: int
    """Token address as uint160."""
    claimed_amount: int
    """Amount credited; the deposit holds at least this much."""
    nullifier: int
    """Poseidon(secret, leaf index, source chain id, vault): one claim per deposit."""
    domain: int
    """Clearinghouse deployment the proof is bound to."""

    def to_signals(self) -> tuple[int, ...]:
        return astuple(self)

    @classmethod
    def from_signals(cls, signals: Sequence[int]) -> ClaimPublicSignals:
        """Read the signal list in circuit order; MalformedProof on a wrong count or range."""
        if len(signals) != len(PUBLIC_SIGNAL_NAMES):
            raise MalformedProof(f"a claim has {len(PUBLIC_SIGNAL_NAMES)} public signals, got {len(signals)}")
        claim = cls(*signals)
        for name in ("vault", "account", "asset"):
            if not 0 <= getattr(claim, name) < 1 << ADDRESS_BITS:
                raise MalformedProof(f"public signal {name} is not a 160-bit address")
        if not 0 <= claim.claimed_amount < 1 << AMOUNT_BITS:
            raise MalformedProof(f"public signal claimed_amount does not fit in {AMOUNT_BITS} bits")
        return claim

    def to_json(self) -> list[str]:
        """The snarkjs `public.json` form."""
        return [str(value) for value in self.to_signals()]


#: Field names in circuit order (what `public.json` index i means).
PUBLIC_SIGNAL_NAMES: tuple[str, ...] = tuple(field.name for field in fields(ClaimPublicSignals))

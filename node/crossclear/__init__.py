"""crossclear: a cross-chain clearinghouse node.

Peer nodes watch several EVM chains, agree on what they saw through signed attestations,
accept Groth16 proofs of collateral held on one chain, and compute one shared margin per
account across all chains with a C kernel.

The public surface of each concern lives in its subpackage (`crossclear.margin`,
`crossclear.zk`, `crossclear.chains`, ...); modules whose names start with an underscore are
private.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

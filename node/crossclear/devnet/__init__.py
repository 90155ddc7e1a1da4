"""The local multi-chain devnet: anvil chains, contract deployment and the devnet manifest.

`DevChain` (one deployed chain for tests) lives in `crossclear.devnet.chain`, imported on
demand because it pulls in web3.
"""

from crossclear._paths import repo_root
from crossclear.devnet.anvil import DEFAULT_MNEMONIC, Anvil, AnvilError, anvil_binary
from crossclear.devnet.manifest import default_state_dir, read_manifest

__all__ = ["DEFAULT_MNEMONIC", "Anvil", "AnvilError", "anvil_binary", "default_state_dir", "read_manifest", "repo_root"]

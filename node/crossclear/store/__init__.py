"""Per-node SQLite state (one file per node, WAL, crash-safe commits)."""

from crossclear.store._database import open_database
from crossclear.store._store import AttestationStore, ChainProgressRow, StoredObservation, StoredSignature

__all__ = ["AttestationStore", "ChainProgressRow", "StoredObservation", "StoredSignature", "open_database"]

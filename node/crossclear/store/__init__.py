"""Per-node SQLite state (one file per node, WAL, crash-safe commits): every table lives here."""

from crossclear.store._clearing import FUND, MIGRATIONS, ClaimRow, ClearingStore, CloseOutRow, CursorRow, ObservedRow, OrderRow, migrate
from crossclear.store._database import open_database
from crossclear.store._store import WAL_SIZE_LIMIT_BYTES, AttestationStore, ChainProgressRow, StoredObservation, StoredSignature

__all__ = [
    "FUND",
    "MIGRATIONS",
    "AttestationStore",
    "ChainProgressRow",
    "ClaimRow",
    "ClearingStore",
    "CloseOutRow",
    "CursorRow",
    "ObservedRow",
    "OrderRow",
    "StoredObservation",
    "StoredSignature",
    "WAL_SIZE_LIMIT_BYTES",
    "migrate",
    "open_database",
]

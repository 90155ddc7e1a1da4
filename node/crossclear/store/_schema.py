"""The attestation tables. Other concerns add their own tables to the same file, so only
`CREATE ... IF NOT EXISTS` of tables named attest_* lives here."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS attest_observations (
    digest BLOB PRIMARY KEY,
    kind INTEGER NOT NULL,
    chain_id INTEGER NOT NULL,
    emitter BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    block_hash BLOB NOT NULL,
    root BLOB NOT NULL,
    leaf_count INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL
);
-- Pruning walks observations by block.
CREATE INDEX IF NOT EXISTS attest_observations_by_block ON attest_observations (chain_id, block_number);
-- One signature per signer per slot: the primary key is the equivocation rule itself.
CREATE TABLE IF NOT EXISTS attest_signatures (
    signer BLOB NOT NULL,
    kind INTEGER NOT NULL,
    chain_id INTEGER NOT NULL,
    emitter BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    digest BLOB NOT NULL,
    signature BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    PRIMARY KEY (signer, kind, chain_id, emitter, block_number)
);
CREATE INDEX IF NOT EXISTS attest_signatures_by_digest ON attest_signatures (digest);
CREATE INDEX IF NOT EXISTS attest_signatures_by_block ON attest_signatures (chain_id, block_number);
CREATE TABLE IF NOT EXISTS attest_certificates (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    digest BLOB NOT NULL UNIQUE,
    chain_id INTEGER NOT NULL,
    block_number INTEGER NOT NULL,
    certified_ms INTEGER NOT NULL,
    certificate BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS attest_certificates_by_block ON attest_certificates (chain_id, block_number);
CREATE TABLE IF NOT EXISTS attest_evidence (
    signer BLOB NOT NULL,
    kind INTEGER NOT NULL,
    chain_id INTEGER NOT NULL,
    emitter BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    second_digest BLOB NOT NULL,
    evidence BLOB NOT NULL,
    recorded_ms INTEGER NOT NULL,
    PRIMARY KEY (signer, kind, chain_id, emitter, block_number, second_digest)
);
CREATE TABLE IF NOT EXISTS attest_cursors (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

"""The committed protobuf stubs are exactly what proto/generate.py produces now."""

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "node" / "crossclear" / "v1"


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "proto" / "generate.py"), "--out", str(tmp_path)], check=True)
    fresh = tmp_path / "crossclear" / "v1"
    fresh_names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    committed_names = sorted(p.name for p in COMMITTED.iterdir() if p.is_file())
    assert fresh_names == committed_names, "run proto/generate.py: the set of generated files changed"
    _, mismatched, errors = filecmp.cmpfiles(fresh, COMMITTED, fresh_names, shallow=False)
    assert not mismatched and not errors, f"stale generated stubs {mismatched + errors}: run proto/generate.py"


def test_stubs_import_through_our_package() -> None:
    from crossclear.v1 import attestation_pb2, sync_pb2, sync_pb2_grpc

    assert sync_pb2.DESCRIPTOR.package == "crossclear.v1"
    assert attestation_pb2.GossipEnvelope.DESCRIPTOR.full_name == "crossclear.v1.GossipEnvelope"
    assert hasattr(sync_pb2_grpc, "SyncStub")

"""`crossclear zk verify|prove` exit codes and messages, and `crossclear bench zk`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crossclear._cli import main
from crossclear.zk import backends
from crossclear.zk.artifacts import default_artifacts

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VKEY = str(default_artifacts().verification_key)
PROOF = str(FIXTURES / "proofs" / "00" / "proof.json")
PUBLIC = str(FIXTURES / "proofs" / "00" / "public.json")


def _verify(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main(["zk", "verify", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_verify_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _verify(capsys, "--vkey", VKEY, "--proof", PROOF, "--public", PUBLIC, "--backend", "py_ecc")
    assert code == 0 and out.startswith("verified (py_ecc)")


def test_verify_invalid_is_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    signals = json.loads(Path(PUBLIC).read_text())
    signals[5] = str(int(signals[5]) + 1)
    (tmp_path / "public.json").write_text(json.dumps(signals))
    code, out, _ = _verify(capsys, "--vkey", VKEY, "--proof", PROOF, "--public", str(tmp_path / "public.json"), "--backend", "py_ecc")
    assert code == 1 and out.startswith("not verified (py_ecc)")


@pytest.mark.parametrize(
    ("public", "reason"),
    [
        (["1", "2"], "expected 8 public signals, got 2"),
        (["21888242871839275222246405745257275088548364400416034343698204186575808495617"] * 8, "scalar field"),
        ("not a list", "expected a JSON list"),
    ],
)
def test_verify_rejected_is_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, public: Any, reason: str) -> None:
    (tmp_path / "public.json").write_text(json.dumps(public))
    code, out, err = _verify(capsys, "--vkey", VKEY, "--proof", PROOF, "--public", str(tmp_path / "public.json"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "rejected before verification" in err and reason in err


def test_verify_missing_file_and_unknown_backend(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _verify(capsys, "--vkey", VKEY, "--proof", str(tmp_path / "none.json"), "--public", PUBLIC)
    assert code == 2 and "cannot read JSON" in err and err.count("\n") == 1
    code, _, err = _verify(capsys, "--vkey", VKEY, "--proof", PROOF, "--public", PUBLIC, "--backend", "gpu")
    assert code == 2 and "--backend gpu: not available" in err


def _deposit_file(tmp_path: Path, **overrides: Any) -> Path:
    fixtures = json.loads((FIXTURES / "deposits.json").read_text())
    claim = dict(fixtures["claims"][2])
    document = {key: claim[key] for key in ("secret", "account", "asset", "amount", "leaf_index", "source_chain_id", "vault")}
    document["account"] = "0x" + format(int(document["account"]), "040x")
    document["leaves"] = fixtures["leaves"]
    document.update(overrides)
    path = tmp_path / "deposit.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.slow
def test_prove_then_verify(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    deposit = _deposit_file(tmp_path)
    out_dir = tmp_path / "out"
    code = main(["zk", "prove", "--deposit", str(deposit), "--claimed-amount", "1000", "--domain", "7", "--out-dir", str(out_dir)])
    assert code == 0, capsys.readouterr().err
    public = json.loads((out_dir / "public.json").read_text())
    assert public[5] == "1000" and public[7] == "7"
    code, out, _ = _verify(capsys, "--vkey", VKEY, "--proof", str(out_dir / "proof.json"), "--public", str(out_dir / "public.json"), "--backend", "py_ecc")
    assert code == 0, out


@pytest.mark.parametrize(
    ("overrides", "claimed", "reason"),
    [
        ({}, str(10**30), "exceeds the deposit amount"),
        ({"secret": "1"}, "1", "not the leaf at index 2"),
        ({"leaf_index": 9}, "1", "'leaves' must list the tree's leaves through leaf_index"),
        ({"amount": "lots"}, "1", "'amount' must be an integer"),
        ({"vault": "0x1234"}, "1", "'vault' is not an address"),
    ],
)
def test_prove_refuses_unsatisfiable_input(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, overrides: dict[str, Any], claimed: str, reason: str
) -> None:
    deposit = _deposit_file(tmp_path, **overrides)
    out_dir = tmp_path / "out"
    code = main(["zk", "prove", "--deposit", str(deposit), "--claimed-amount", claimed, "--domain", "7", "--out-dir", str(out_dir)])
    err = capsys.readouterr().err
    assert code == 2 and reason in err and err.count("\n") == 1
    assert not out_dir.exists()


def test_bench_prints_json(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Timing real py_ecc batches of 64 takes tens of seconds, so the smoke test swaps in
    # instant backends under both names and checks the command's output shape.
    class Instant:
        def verify(self, key: Any, proof: Any, public_signals: Any) -> bool:
            return True

        def verify_batch(self, key: Any, items: Any) -> list[bool]:
            return [True] * len(items)

    monkeypatch.setattr(backends, "_factories", {"py_ecc": Instant, "native": Instant})
    monkeypatch.setattr(backends, "_instances", {})
    assert main(["bench", "zk", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    keys = {"single_ms", "batch8_ms_per_proof", "batch64_ms_per_proof"}
    assert set(figures) == {"py_ecc", "native", "speedup_single", "claim_cpu_ms"}
    assert set(figures["py_ecc"]) == keys and set(figures["native"]) == keys
    assert set(figures["claim_cpu_ms"]) == {"p50", "p99"}
    assert 0 <= figures["claim_cpu_ms"]["p50"] <= figures["claim_cpu_ms"]["p99"]

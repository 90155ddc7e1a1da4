"""Build the collateral-claim circuit and its DEV-ONLY Groth16 setup into circuits/artifacts/.

Run from anywhere (paths are resolved from this file); heavy steps run under `nice`:

    .venv/bin/python circuits/build.py            # compile, setup, export, write manifest
    .venv/bin/python circuits/build.py --compile-only OUT_DIR   # just the r1cs + wasm

Steps: circom2 compiles `collateral_claim.circom` (circom2 runs in WASM and only sees files
under its working directory, so it runs from the repository root with circomlib's path
inside node_modules); a power-13 powers of tau is generated here (one contribution with OS
entropy, then a public beacon) and cached in circuits/build/ (not committed, its sha256 is in
the manifest; a cached file whose hash differs is regenerated); the Groth16 phase 2 gets one
contribution with OS entropy and a beacon; the verification key and the Solidity verifier are
exported. The ceremony's randomness came from one machine, so anyone who kept it could forge
proofs: these artifacts are for the devnet only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CIRCUITS_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = CIRCUITS_DIR.parent
ARTIFACTS_DIR = CIRCUITS_DIR / "artifacts"
CACHE_DIR = CIRCUITS_DIR / "build"
CIRCUIT_NAME = "collateral_claim"
CIRCUIT_SOURCE = CIRCUITS_DIR / f"{CIRCUIT_NAME}.circom"
PTAU_POWER = 13
BIN = REPOSITORY_ROOT / "node_modules" / ".bin"
#: A fixed, public beacon value: it only has to be unknown before the contributions.
BEACON_HASH = hashlib.sha256(b"crossclear devnet beacon 2026-11-27").hexdigest()
BEACON_ITERATIONS_EXP = "10"
CIRCOM_FLAGS = ("--r1cs", "--wasm", "--O2")
VERIFIER_CONTRACT = "CollateralClaimVerifier"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(*command: str | Path, cwd: Path = REPOSITORY_ROOT) -> str:
    completed = subprocess.run(
        ["nice", *map(str, command)], cwd=cwd, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise SystemExit(f"build failed: {' '.join(map(str, command))}\n{completed.stdout}\n{completed.stderr}")
    return completed.stdout


def compile_circuit(output_dir: Path) -> tuple[Path, Path]:
    """Compile the circuit; returns (r1cs, wasm). Deterministic: same source, same r1cs."""
    output_dir.mkdir(parents=True, exist_ok=True)
    # circom2 resolves its input and -l paths relative to its working directory (the repo).
    _run(
        BIN / "circom2",
        CIRCUIT_SOURCE.relative_to(REPOSITORY_ROOT),
        *CIRCOM_FLAGS,
        "-l",
        "node_modules/circomlib/circuits",
        "-o",
        output_dir,
    )
    return output_dir / f"{CIRCUIT_NAME}.r1cs", output_dir / f"{CIRCUIT_NAME}_js" / f"{CIRCUIT_NAME}.wasm"


def _snarkjs(*arguments: str | Path) -> str:
    return _run(BIN / "snarkjs", *arguments)


def powers_of_tau(expected_sha256: str | None) -> Path:
    """The phase-2-ready power-13 ptau, from the cache when its hash matches the manifest."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    final = CACHE_DIR / f"pot{PTAU_POWER}_final.ptau"
    if final.exists() and (expected_sha256 is None or sha256_file(final) == expected_sha256):
        return final
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch_name:
        scratch = Path(scratch_name)
        _snarkjs("powersoftau", "new", "bn128", str(PTAU_POWER), scratch / "pot_0000.ptau")
        _snarkjs(
            "powersoftau", "contribute", scratch / "pot_0000.ptau", scratch / "pot_0001.ptau",
            "--name=crossclear devnet", f"-e={secrets.token_hex(32)}",
        )
        _snarkjs(
            "powersoftau", "beacon", scratch / "pot_0001.ptau", scratch / "pot_beacon.ptau",
            BEACON_HASH, BEACON_ITERATIONS_EXP, "-n=crossclear devnet beacon",
        )
        _snarkjs("powersoftau", "prepare", "phase2", scratch / "pot_beacon.ptau", scratch / "pot_final.ptau")
        shutil.move(scratch / "pot_final.ptau", final)
    return final


def _rename_verifier(source: str) -> str:
    # snarkjs names the contract Groth16Verifier; a specific name avoids clashes in devnet/.
    renamed, count = re.subn(r"\bcontract Groth16Verifier\b", f"contract {VERIFIER_CONTRACT}", source)
    if count != 1:
        raise SystemExit("build failed: snarkjs' Solidity verifier no longer declares Groth16Verifier")
    return renamed


def _constraint_count(r1cs: Path) -> int:
    info = _snarkjs("r1cs", "info", r1cs)
    match = re.search(r"# of Constraints:\s*(\d+)", info)
    if match is None:
        raise SystemExit(f"build failed: cannot read the constraint count from snarkjs r1cs info:\n{info}")
    return int(match.group(1))


def build() -> None:
    manifest_path = ARTIFACTS_DIR / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    ptau = powers_of_tau(previous.get("ptau", {}).get("sha256"))
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch_name:
        scratch = Path(scratch_name)
        r1cs, wasm = compile_circuit(scratch)
        _snarkjs("groth16", "setup", r1cs, ptau, scratch / "claim_0000.zkey")
        _snarkjs(
            "zkey", "contribute", scratch / "claim_0000.zkey", scratch / "claim_0001.zkey",
            "--name=crossclear devnet phase 2", f"-e={secrets.token_hex(32)}",
        )
        _snarkjs(
            "zkey", "beacon", scratch / "claim_0001.zkey", scratch / "claim_final.zkey",
            BEACON_HASH, BEACON_ITERATIONS_EXP, "-n=crossclear devnet phase 2 beacon",
        )
        _snarkjs("zkey", "export", "verificationkey", scratch / "claim_final.zkey", scratch / "vkey.json")
        _snarkjs("zkey", "export", "solidityverifier", scratch / "claim_final.zkey", scratch / "verifier.sol")

        shutil.copyfile(wasm, ARTIFACTS_DIR / f"{CIRCUIT_NAME}.wasm")
        shutil.copyfile(scratch / "claim_final.zkey", ARTIFACTS_DIR / f"{CIRCUIT_NAME}.zkey")
        shutil.copyfile(scratch / "vkey.json", ARTIFACTS_DIR / "vkey.json")
        verifier = _rename_verifier((scratch / "verifier.sol").read_text())
        (ARTIFACTS_DIR / f"{VERIFIER_CONTRACT}.sol").write_text(verifier)

        files = [f"{CIRCUIT_NAME}.wasm", f"{CIRCUIT_NAME}.zkey", "vkey.json", f"{VERIFIER_CONTRACT}.sol"]
        manifest = {
            "dev_only": "Trusted setup run on one machine for the devnet. Never use these keys for real value.",
            "circuit": str(CIRCUIT_SOURCE.relative_to(REPOSITORY_ROOT)),
            "circom_flags": list(CIRCOM_FLAGS),
            "constraints": _constraint_count(r1cs),
            "r1cs_sha256": sha256_file(r1cs),
            "ptau": {"power": PTAU_POWER, "file": f"circuits/build/{ptau.name}", "sha256": sha256_file(ptau)},
            "beacon_hash": BEACON_HASH,
            "files": {name: sha256_file(ARTIFACTS_DIR / name) for name in files},
        }
        manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {ARTIFACTS_DIR.relative_to(REPOSITORY_ROOT)} ({manifest['constraints']} constraints)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile-only", metavar="OUT_DIR", type=Path, help="only compile the circuit into OUT_DIR")
    args = parser.parse_args()
    if args.compile_only is not None:
        r1cs, _ = compile_circuit(args.compile_only.resolve())
        print(f"{r1cs} sha256 {sha256_file(r1cs)}")
        return 0
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())

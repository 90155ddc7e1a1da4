// Regenerates devnet/artifacts/: one JSON file (abi + bytecode) per deployable contract.
//
//   node devnet/scripts/compile.mjs [--out DIR]
//
// Sources: devnet/contracts/*.sol, plus circuits/artifacts/CollateralClaimVerifier.sol when
// the ZK build has produced it. The Poseidon hashers are not Solidity: their bytecode comes
// from circomlibjs' generator (poseidon_gencontract.createCode), the same code the circuit's
// hash matches. Output is deterministic (pinned solc from package.json, no metadata hash,
// sorted keys) so a test can recompile and compare with what is committed.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");
const { poseidonContract } = await import("circomlibjs");

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const contractsDir = join(repoRoot, "devnet", "contracts");
const verifierSource = join(repoRoot, "circuits", "artifacts", "CollateralClaimVerifier.sol");

function outputDir() {
  const flag = process.argv.indexOf("--out");
  return flag === -1 ? join(repoRoot, "devnet", "artifacts") : resolve(process.argv[flag + 1]);
}

// The EVM version is pinned rather than left to the compiler default so that a solc bump
// cannot silently emit opcodes the local chains do not run.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
};

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

function sortedJson(value) {
  if (Array.isArray(value)) return value.map(sortedJson);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((key) => [key, sortedJson(value[key])]));
  }
  return value;
}

function write(dir, name, artifact) {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(sortedJson(artifact), null, 2) + "\n");
  console.log(`wrote ${relative(repoRoot, path)}`);
}

function sources() {
  const files = readdirSync(contractsDir)
    .filter((name) => name.endsWith(".sol"))
    .sort()
    .map((name) => join(contractsDir, name));
  if (existsSync(verifierSource)) files.push(verifierSource);
  return Object.fromEntries(files.map((path) => [relative(repoRoot, path), { content: readFileSync(path, "utf8") }]));
}

function compileSolidity(dir) {
  const input = { language: "Solidity", sources: sources(), settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors ?? []).filter((entry) => entry.severity === "error");
  for (const entry of output.errors ?? []) console.error(entry.formattedMessage);
  if (errors.length > 0) {
    console.error(`compile failed: ${errors.length} error(s)`);
    process.exit(1);
  }
  for (const [sourceName, { content }] of Object.entries(input.sources)) {
    const stem = basename(sourceName, ".sol");
    const deployable = Object.entries(output.contracts[sourceName]).filter(([, c]) => c.evm.bytecode.object.length > 0);
    // One artifact per file, named after the file: the contract of that name, or the only
    // deployable one (snarkjs names its verifier contract Groth16Verifier).
    const chosen = deployable.find(([name]) => name === stem) ?? (deployable.length === 1 ? deployable[0] : undefined);
    if (!chosen) {
      console.error(`${sourceName}: expected a contract named ${stem} or exactly one deployable contract`);
      process.exit(1);
    }
    const [contractName, compiled] = chosen;
    write(dir, stem, {
      contractName,
      sourceName,
      sourceSha256: sha256(content),
      compiler: { solc: solc.version(), settings: { ...SETTINGS, outputSelection: undefined } },
      abi: compiled.abi,
      bytecode: "0x" + compiled.evm.bytecode.object,
    });
  }
}

function circomlibjsVersion() {
  const manifest = join(repoRoot, "node_modules", "circomlibjs", "package.json");
  return JSON.parse(readFileSync(manifest, "utf8")).version;
}

function writePoseidon(dir) {
  for (const inputs of [2, 4]) {
    write(dir, `Poseidon${inputs}`, {
      contractName: `Poseidon${inputs}`,
      sourceName: `circomlibjs/src/poseidon_gencontract.js createCode(${inputs})`,
      compiler: { circomlibjs: circomlibjsVersion() },
      abi: poseidonContract.generateABI(inputs),
      bytecode: poseidonContract.createCode(inputs),
    });
  }
}

const dir = outputDir();
mkdirSync(dir, { recursive: true });
compileSolidity(dir);
writePoseidon(dir);

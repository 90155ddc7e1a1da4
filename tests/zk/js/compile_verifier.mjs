// Reads {"source": path} on stdin, compiles that Solidity verifier with the pinned solc and
// prints {"bytecode": "0x..."} for its only deployable contract.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const solc = require("solc");

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { source } = JSON.parse(Buffer.concat(chunks).toString());
const input = {
  language: "Solidity",
  sources: { "Verifier.sol": { content: readFileSync(source, "utf8") } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((entry) => entry.severity === "error");
if (errors.length > 0) {
  console.error(errors.map((entry) => entry.formattedMessage).join("\n"));
  process.exit(1);
}
const contracts = Object.values(output.contracts["Verifier.sol"]);
process.stdout.write(JSON.stringify({ bytecode: "0x" + contracts[0].evm.bytecode.object }));
process.exit(0);

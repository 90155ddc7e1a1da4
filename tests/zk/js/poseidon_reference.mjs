// Reads a JSON array of input arrays (decimal strings) on stdin and prints the circomlibjs
// Poseidon of each (decimal strings), so the Python port is checked against the reference.
import { buildPoseidon } from "circomlibjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const vectors = JSON.parse(Buffer.concat(chunks).toString());
const poseidon = await buildPoseidon();
const out = vectors.map((inputs) => poseidon.F.toString(poseidon(inputs.map(BigInt))));
process.stdout.write(JSON.stringify(out));
process.exit(0);

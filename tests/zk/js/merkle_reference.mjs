// Reads {"depth": d, "leaves": [...]} on stdin and prints the incremental-tree root after
// each insertion, computed independently with circomlibjs Poseidon (the vault's hashing).
import { buildPoseidon } from "circomlibjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { depth, leaves } = JSON.parse(Buffer.concat(chunks).toString());
const poseidon = await buildPoseidon();
const F = poseidon.F;
const hash = (left, right) => F.toObject(poseidon([left, right]));

const zeros = [0n];
for (let level = 0; level < depth; level++) zeros.push(hash(zeros[level], zeros[level]));
const filled = zeros.slice(0, depth);
const roots = [];
leaves.forEach((leafText, index) => {
  // The contract's filled-subtrees algorithm, not the Python one.
  let node = BigInt(leafText);
  let current = index;
  for (let level = 0; level < depth; level++) {
    if (current % 2 === 0) {
      filled[level] = node;
      node = hash(node, zeros[level]);
    } else {
      node = hash(filled[level], node);
    }
    current >>= 1;
  }
  roots.push(node.toString());
});
process.stdout.write(JSON.stringify({ zeros: zeros.map(String), roots }));
process.exit(0);

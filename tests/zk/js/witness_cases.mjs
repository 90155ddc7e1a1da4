// Reads {"wasm": path, "cases": {name: circuit input}} on stdin and tries to compute the
// witness of each case with snarkjs (the circuit's own wasm witness calculator). Prints
// {name: "ok"} or {name: "rejected: <first line of the error>"}.
import * as snarkjs from "snarkjs";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { wasm, cases } = JSON.parse(Buffer.concat(chunks).toString());
const results = {};
for (const [name, input] of Object.entries(cases)) {
  try {
    await snarkjs.wtns.calculate(input, wasm, { type: "mem" });
    results[name] = "ok";
  } catch (error) {
    results[name] = "rejected: " + String(error.message || error).split("\n")[0];
  }
}
process.stdout.write(JSON.stringify(results));
process.exit(0);

/**
 * Run by `npm run synth` in a fresh `node` per run: imports one built Lambda bundle, as the runtime
 * does at a cold start, and prints the import's wall and CPU milliseconds ("<wall> <cpu>").
 * Usage: node scripts/import-probe.mjs <bundle.mjs>
 */
import { Agent } from "node:http";
import { pathToFileURL } from "node:url";

// What the nodejs22.x runtime has done before it imports the handler, so it is not counted: its
// Runtime API client holds an http.Agent, and it sets the `awslambda` global streamed handlers call
// at import (a stand-in here, never invoked).
new Agent({ keepAlive: true, maxSockets: 1 });
globalThis.awslambda = {
  streamifyResponse: (handler) => handler,
  HttpResponseStream: { from: (stream) => stream },
};

const cpu = process.cpuUsage();
const started = performance.now();
await import(pathToFileURL(process.argv[2]).href);
const wallMs = performance.now() - started;
const used = process.cpuUsage(cpu);
process.stdout.write(`${wallMs.toFixed(2)} ${((used.user + used.system) / 1000).toFixed(2)}\n`);

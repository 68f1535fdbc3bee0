/**
 * Run by `npm run synth` in a fresh `node` per bundle: imports one built Lambda bundle, as the
 * runtime does at a cold start, and prints how long the import took in milliseconds.
 * Usage: node scripts/import-probe.mjs <bundle.mjs>
 */
import { pathToFileURL } from "node:url";

// The runtime's global, which streamed handlers call at import; a stand-in, never invoked here.
globalThis.awslambda ??= { streamifyResponse: (handler) => handler, HttpResponseStream: { from: (stream) => stream } };

const started = performance.now();
await import(pathToFileURL(process.argv[2]).href);
process.stdout.write(`${(performance.now() - started).toFixed(2)}\n`);

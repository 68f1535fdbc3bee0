/**
 * `npm run bench:request-path`: chat completions through the whole local platform (gateway emulator,
 * authorizer, handler, limiter, SageMaker emulator, DynamoDB Local). Prints end-to-end latency and what
 * the handlers report as their own overhead (x-atrium-overhead-ms). A benchmark, not a test.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { startPlatform } = await import("../packages/local/src/platform");

const CALLS = Number(process.env.BENCH_CALLS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

const dataDir = await mkdtemp(join(tmpdir(), "atrium-bench-"));
const platform = await startPlatform({ port: 0, dataDir, ephemeral: true });
const model = platform.config.sharedEndpoints[0]?.model ?? "";

async function call(): Promise<{ totalMs: number; overheadMs: number }> {
  const started = performance.now();
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${platform.demoTenant.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "How fast is Atrium?" }],
      max_tokens: 32,
    }),
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`status ${response.status}`);
  return {
    totalMs: performance.now() - started,
    overheadMs: Number(response.headers.get("x-atrium-overhead-ms")),
  };
}

function percentiles(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return `p50 ${at(0.5).toFixed(2)}  p99 ${at(0.99).toFixed(2)}`;
}

await call(); // cold start: handler modules load and caches fill
for (const concurrency of [1, CONCURRENCY]) {
  const results: { totalMs: number; overheadMs: number }[] = [];
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < CALLS) {
        next += 1;
        results.push(await call());
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(
    `${CALLS} calls, ${concurrency} at a time: ${(CALLS / seconds).toFixed(0)} calls/s\n` +
      `  end-to-end ms        ${percentiles(results.map((r) => r.totalMs))}\n` +
      `  Atrium overhead ms   ${percentiles(results.map((r) => r.overheadMs))}  (x-atrium-overhead-ms)\n`,
  );
}

await platform.close();
await rm(dataDir, { recursive: true, force: true });

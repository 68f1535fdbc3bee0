/**
 * Measures onboarding on the local platform: from `POST /admin/tenants` (the call `atrium tenants
 * create` makes) to the new pool tenant's first successful chat completion, with no retry between.
 *
 *   npx tsx scripts/onboarding-time.ts [RUNS]
 *
 * The first run includes loading the handlers (a cold start); the rest are warm.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPlatform } from "@atrium/local/platform";

process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
process.env.POWERTOOLS_LOG_LEVEL ??= "WARN";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

const runs = Number(process.argv[2] ?? 20);
if (!Number.isInteger(runs) || runs < 1) {
  process.stderr.write("Usage: npx tsx scripts/onboarding-time.ts [RUNS]\n");
  process.exit(2);
}

const dataDir = await mkdtemp(join(tmpdir(), "atrium-onboarding-"));
const platform = await startPlatform({ port: 0, dataDir, ephemeral: true });

async function onboardOnce(i: number): Promise<{ createMs: number; totalMs: number }> {
  const started = performance.now();
  const created = await fetch(`${platform.gatewayUrl}/admin/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${platform.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: `Onboarding ${i}`, tier: "pro" }),
  });
  if (created.status !== 201) throw new Error(`create answered ${created.status}: ${await created.text()}`);
  const { apiKey } = (await created.json()) as { apiKey: string };
  const createMs = performance.now() - started;
  const call = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "Hello" }] }),
  });
  if (call.status !== 200) throw new Error(`the first call answered ${call.status}: ${await call.text()}`);
  return { createMs, totalMs: performance.now() - started };
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;

try {
  const results = [];
  for (let i = 0; i < runs; i += 1) results.push(await onboardOnce(i));
  const [cold, ...warm] = results;
  const totals = warm.map((r) => r.totalMs).sort((a, b) => a - b);
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  process.stdout.write(`create -> first successful call (pool tier, local platform, ${runs} runs)\n`);
  if (cold)
    process.stdout.write(`  cold (handlers loading): ${ms(cold.totalMs)} (create ${ms(cold.createMs)})\n`);
  if (totals.length > 0) {
    process.stdout.write(
      `  warm: median ${ms(percentile(totals, 50))}, p95 ${ms(percentile(totals, 95))}, max ${ms(totals.at(-1) ?? 0)}\n`,
    );
  }
} finally {
  await platform.close();
  await rm(dataDir, { recursive: true, force: true });
}

/**
 * `npm run chaos`: the local platform under injected faults (docs/adr/0013-circuit-breaker-and-fallback.md).
 * One model on two shared endpoints (a, then b) and on a dedicated endpoint per bridge, silo and
 * HIPAA tenant; a pool tenant beside them. Four phases of faults (throttles, SageMaker 5xx, a
 * model's 5xx with latency, answers slower than a call's deadline) while every tenant drives calls; then what clients saw is compared with
 * the ledger and the limiter (lost or double settlements), the breaker's opening with its threshold,
 * and where fallbacks went by posture. A figure, not a test: it prints a table and writes JSON
 * under .atrium/bench/.
 */

import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { REPO_ROOT, startPlatform } = await import("../packages/local/src/platform");
const { generateApiKey } = await import("../packages/core/src/api-key");
const { newTenant } = await import("../packages/core/src/tenant");
const { endpointKey } = await import("../packages/core/src/endpoint-state");
const { dayOf, readLedger } = await import("../packages/core/src/usage-ledger");
const { dynamoClientFor } = await import("../packages/local/src/dynamodb");

const CALLS_PER_PHASE = Number(process.env.CHAOS_CALLS ?? 24);
const CONCURRENCY = Number(process.env.CHAOS_CONCURRENCY ?? 3);
/** The timeouts phase: fewer calls, each of the first ones waits out a call's deadline. */
const TIMEOUT_CALLS = Number(process.env.CHAOS_TIMEOUT_CALLS ?? 9);
const TIMEOUT_LATENCY_MS = 25_000;
const MODEL = "chaos-llm";
const SHARED_A = "atrium-shared-chaos-a";
const SHARED_B = "atrium-shared-chaos-b";
const BREAKER = { failures: 5, windowSeconds: 30, openSeconds: 5 };

const dataDir = await mkdtemp(join(tmpdir(), "atrium-chaos-"));
const base = JSON.parse(await readFile(join(REPO_ROOT, "config/local.json"), "utf8"));
const configFile = join(dataDir, "config.json");
await writeFile(
  configFile,
  JSON.stringify({
    ...base,
    sharedEndpoints: [
      ...base.sharedEndpoints,
      { model: MODEL, endpointName: SHARED_A },
      { model: MODEL, endpointName: SHARED_B },
    ],
    circuitBreaker: BREAKER,
  }),
);
const platform = await startPlatform({ port: 0, dataDir, ephemeral: true, configFile });
const db = dynamoClientFor(platform.dynamodbUrl);

interface ChaosTenant {
  posture: string;
  id: string;
  apiKey: string;
  dedicated?: string;
}

async function tenant(posture: string, tier: string, compliance: string[] = []): Promise<ChaosTenant> {
  const t = newTenant({ name: `Chaos ${posture}`, tier, compliance }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(t, key);
  if (posture === "pool") return { posture, id: t.id, apiKey: key.plaintext };
  const dedicated = `${t.id}-chaos`;
  const response = await fetch(`${platform.gatewayUrl}/admin/tenants/${t.id}/endpoints`, {
    method: "POST",
    headers: { authorization: `Bearer ${platform.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, endpointName: dedicated }),
  });
  if (response.status !== 200) throw new Error(`dedicating an endpoint: ${response.status}`);
  return { posture, id: t.id, apiKey: key.plaintext, dedicated };
}

const tenants = [
  await tenant("pool", "pro"),
  await tenant("bridge", "business"),
  await tenant("silo", "enterprise"),
  await tenant("hipaa", "business", ["hipaa"]),
];

interface Seen {
  status: number;
  code?: string;
  fallback?: string;
  retryAfter?: string;
}
const seen = new Map<string, Seen[]>(tenants.map((t) => [t.id, []]));

async function call(t: ChaosTenant): Promise<void> {
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${t.apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: "chaos" }], max_tokens: 16 }),
  });
  const body = (await response.json()) as { error?: { code?: string } };
  const fallback = response.headers.get("x-atrium-fallback") ?? undefined;
  const retryAfter = response.headers.get("retry-after") ?? undefined;
  seen.get(t.id)?.push({
    status: response.status,
    ...(body.error?.code ? { code: body.error.code } : {}),
    ...(fallback ? { fallback } : {}),
    ...(retryAfter ? { retryAfter } : {}),
  });
}

async function drive(calls: number): Promise<void> {
  await Promise.all(
    tenants.map(async (t) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < calls) {
            next += 1;
            await call(t);
          }
        }),
      );
    }),
  );
}

const dedicatedEndpoints = tenants.flatMap((t) => (t.dedicated ? [t.dedicated] : []));
const phases = [
  {
    name: "throttles",
    faults: () => {
      platform.sagemaker.setConditions(SHARED_A, { error: "ThrottlingException", errorRate: 0.5 });
      for (const e of dedicatedEndpoints)
        platform.sagemaker.setConditions(e, { error: "ThrottlingException", errorRate: 0.3 });
    },
  },
  {
    name: "sagemaker 5xx",
    faults: () => {
      platform.sagemaker.setConditions(SHARED_A, { error: "ServiceUnavailable", errorRate: 1 });
      for (const e of dedicatedEndpoints)
        platform.sagemaker.setConditions(e, { error: "InternalFailure", errorRate: 0.5 });
    },
  },
  {
    name: "model 5xx, slow",
    faults: () => {
      platform.sagemaker.setConditions(SHARED_A, {
        error: "ModelError",
        errorRate: 0.3,
        originalStatusCode: 500,
        latencyMs: 50,
      });
      platform.sagemaker.setConditions(SHARED_B, { latencyMs: 50, jitterMs: 25 });
      for (const e of dedicatedEndpoints)
        platform.sagemaker.setConditions(e, { error: "InternalDependencyException", errorRate: 0.3 });
    },
  },
  {
    // Past the call's 22 s deadline (ADR 0007): each such call is a 504 model_timeout, refunded, and a
    // counted failure. Fewer calls: each waits out the deadline until the breakers open.
    name: "timeouts",
    calls: TIMEOUT_CALLS,
    faults: () => {
      platform.sagemaker.setConditions(SHARED_A, { latencyMs: TIMEOUT_LATENCY_MS });
      for (const e of dedicatedEndpoints)
        platform.sagemaker.setConditions(e, { latencyMs: TIMEOUT_LATENCY_MS });
    },
  },
];

async function breakerItem(endpointName: string): Promise<Record<string, unknown>> {
  const { Item } = await db.get({
    TableName: platform.endpointsTable,
    Key: endpointKey(endpointName),
    ConsistentRead: true,
  });
  return Item ?? {};
}
const countedFailures = (item: Record<string, unknown>) =>
  Object.entries(item)
    .filter(([name]) => name.startsWith("fail@"))
    .reduce((sum, [, value]) => sum + Number(value), 0);

/**
 * Between phases, the faults go and the breakers heal the way they do in production: after
 * `openSeconds` a call probes each open breaker, and a probe that answers closes it. So each phase
 * starts on closed breakers, and its faults reach the endpoints.
 */
async function recover(endpoints: string[]): Promise<{ seconds: number; closed: boolean }> {
  const startedAt = performance.now();
  platform.sagemaker.clearFaults();
  for (let round = 0; round < 40; round++) {
    const open = [];
    for (const e of endpoints) if (typeof (await breakerItem(e)).openUntil === "number") open.push(e);
    if (open.length === 0) return { seconds: (performance.now() - startedAt) / 1000, closed: true };
    await new Promise((resolve) => setTimeout(resolve, 500));
    await Promise.all(tenants.map((t) => call(t)));
  }
  return { seconds: (performance.now() - startedAt) / 1000, closed: false };
}

const breakerReport: Record<string, unknown>[] = [];
const recoveries: Record<string, unknown>[] = [];
const started = performance.now();
for (const [index, phase] of phases.entries()) {
  if (index > 0)
    recoveries.push({ before: phase.name, ...(await recover([SHARED_A, ...dedicatedEndpoints])) });
  platform.sagemaker.clearFaults();
  phase.faults();
  const watched = [SHARED_A, ...dedicatedEndpoints];
  const attemptsBefore = watched.map((e) => platform.sagemaker.invocations(e).length);
  await drive(phase.calls ?? CALLS_PER_PHASE);
  for (const [i, endpointName] of watched.entries()) {
    const item = await breakerItem(endpointName);
    breakerReport.push({
      phase: phase.name,
      endpoint:
        endpointName === SHARED_A ? "shared a" : tenants.find((t) => t.dedicated === endpointName)?.posture,
      attempts: platform.sagemaker.invocations(endpointName).length - (attemptsBefore[i] ?? 0),
      // Opened (and maybe half-open or closed again since): failures are counted only while closed.
      opened: typeof item.openUntil === "number",
      countedFailures: countedFailures(item),
      threshold: BREAKER.failures,
    });
  }
}
platform.sagemaker.clearFaults();
const seconds = (performance.now() - started) / 1000;

/** What the limiter's /v1/usage says once every call has settled (in flight back to 0, or not). */
async function usage(t: ChaosTenant): Promise<{ tokensUsed: number; inFlight: number }> {
  for (let i = 0; ; i++) {
    const response = await fetch(`${platform.gatewayUrl}/v1/usage`, {
      headers: { authorization: `Bearer ${t.apiKey}` },
    });
    const body = (await response.json()) as { tokens_used: number; in_flight: number };
    if (body.in_flight === 0 || i >= 50) return { tokensUsed: body.tokens_used, inFlight: body.in_flight };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Refused before admission: nothing to settle (a limit, fair share, or every breaker open). */
const notAdmitted = (s: Seen) =>
  s.code === "rate_limit_exceeded" ||
  s.code === "endpoint_busy" ||
  (s.code === "endpoint_unavailable" && s.retryAfter !== undefined);

const today = dayOf(Date.now());
const rows = [];
for (const t of tenants) {
  const calls = seen.get(t.id) ?? [];
  const ledger = await readLedger(db, platform.usageTable, t.id, today, today);
  const settled = ledger.reduce((sum, e) => sum + (e.counters.requests ?? 0), 0);
  const ledgerTokens = ledger.reduce((sum, e) => sum + (e.counters.tokens ?? 0), 0);
  const { tokensUsed, inFlight } = await usage(t);
  const admitted = calls.filter((s) => !notAdmitted(s)).length;
  const fallbacks = calls.filter((s) => s.fallback);
  const codes: Record<string, number> = {};
  for (const s of calls) if (s.code) codes[s.code] = (codes[s.code] ?? 0) + 1;
  rows.push({
    posture: t.posture,
    calls: calls.length,
    ok: calls.filter((s) => s.status === 200).length,
    admitted,
    settled,
    lost: Math.max(0, admitted - settled),
    double: Math.max(0, settled - admitted),
    inFlight,
    limiterTokens: tokensUsed,
    ledgerTokens,
    fallbacks: fallbacks.length,
    fallbacksToShared: fallbacks.filter((s) => s.fallback?.startsWith("atrium-shared-")).length,
    errors: codes,
  });
}

process.stdout.write(
  `chaos: ${tenants.length} tenants x ${phases.length} phases x ${CALLS_PER_PHASE} calls, ${CONCURRENCY} at a time per tenant, ${seconds.toFixed(1)} s\n\n`,
);
process.stdout.write(
  "posture  calls  ok  admitted  settled  lost  double  in_flight  limiter tokens  ledger tokens  fallbacks  to shared  errors\n",
);
for (const r of rows) {
  process.stdout.write(
    `${r.posture.padEnd(7)} ${String(r.calls).padStart(6)} ${String(r.ok).padStart(3)} ${String(r.admitted).padStart(9)} ${String(r.settled).padStart(8)} ${String(r.lost).padStart(5)} ${String(r.double).padStart(7)} ${String(r.inFlight).padStart(10)} ${String(r.limiterTokens).padStart(15)} ${String(r.ledgerTokens).padStart(14)} ${String(r.fallbacks).padStart(10)} ${String(r.fallbacksToShared).padStart(10)}  ${JSON.stringify(r.errors)}\n`,
  );
}
process.stdout.write(
  "\nbreakers after each phase (failures counted while closed; the threshold opens it):\n",
);
for (const b of breakerReport) process.stdout.write(`  ${JSON.stringify(b)}\n`);
process.stdout.write(
  "\nbreakers healing between phases (faults cleared, probes until every breaker closed):\n",
);
for (const r of recoveries) process.stdout.write(`  ${JSON.stringify(r)}\n`);

const out = join(REPO_ROOT, ".atrium", "bench");
await mkdir(out, { recursive: true });
const file = join(out, `chaos-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(
  file,
  JSON.stringify(
    { at: new Date().toISOString(), seconds, breaker: BREAKER, tenants: rows, breakerReport, recoveries },
    null,
    2,
  ),
);
process.stdout.write(`\nwritten: ${file}\n`);

db.destroy();
await platform.close();
await rm(dataDir, { recursive: true, force: true });

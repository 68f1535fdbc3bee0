/**
 * `npm run bench:fairness`: a noisy neighbour on a saturated shared endpoint (issue 11, ADR 0012).
 * One local platform, two endpoints with identical emulator conditions (a per-call latency, so calls
 * overlap, and a capacity of BENCH_CAPACITY calls in flight, beyond which the emulator throttles as
 * SageMaker does); only one of them has a `capacity` in the stage config, so only it is fair-shared.
 * A quiet tenant runs a closed loop of its share's worth of clients, a noisy one ten times its share.
 * Rounds, repeated BENCH_PASSES times: the quiet tenant alone, both without fair share, both with it.
 * Prints per round the quiet tenant's success rate, p50/p99 and calls/s, the noisy tenant's refusals,
 * and the endpoint table's DynamoDB writes per call (counted by an HTTP proxy in front of DynamoDB
 * Local); then whether issue 11's targets were met. A figure, not a test: nothing here fails the run.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { setting } from "./bench/output";
import { type CountingProxy, startCountingProxy } from "./dynamodb-counting-proxy";

process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { REPO_ROOT, startPlatform } = await import("../packages/local/src/platform");
const { newTenant } = await import("../packages/core/src/tenant");
const { generateApiKey } = await import("../packages/core/src/api-key");
const { fairShares } = await import("../packages/core/src/endpoint-state");

const env = setting;
const CAPACITY = env("BENCH_CAPACITY", 8);
const LATENCY_MS = env("BENCH_LATENCY_MS", 500);
const JITTER_MS = env("BENCH_JITTER_MS", 100);
const LATENCY_TARGET_MS = env("BENCH_LATENCY_TARGET_MS", 2000);
// 1: a refused client waits out the 429's retry-after before its next call, as openai-node does; 0: it spins.
const HONOUR_RETRY_AFTER = env("BENCH_HONOUR_RETRY_AFTER", 1) === 1;
const WARMUP_S = env("BENCH_WARMUP_S", 3, 1);
const ROUND_S = env("BENCH_ROUND_S", 15, 3);
const PASSES = env("BENCH_PASSES", 2, 1);
const QUIET_TIER = process.env.BENCH_QUIET_TIER ?? "pro";
const NOISY_TIER = process.env.BENCH_NOISY_TIER ?? "free";
const TABLE_PREFIX = "atrium-bench-fairness";
const ENDPOINT_TABLE = `${TABLE_PREFIX}-endpoints`;
const FAIR = { model: "bench-fair-share", endpointName: "atrium-bench-fair-share" };
const UNFAIR = { model: "bench-no-fair-share", endpointName: "atrium-bench-no-fair-share" };
// Far above what the bench sends: only the endpoint may constrain either tenant.
const LIFTED = {
  requestsPerMinute: 10_000_000,
  tokensPerMinute: 1_000_000_000,
  concurrency: 10_000,
  monthlyTokens: 1_000_000_000_000,
};

type Outcome = "ok" | "endpoint_busy" | "endpoint_throttled" | "other";
interface Call {
  outcome: Outcome;
  ms: number;
  status: number;
}
interface Tally {
  calls: Call[];
}

/** The stage config of the bench: the local one, its tiers' limits lifted, and the two bench endpoints. */
async function benchConfig(dataDir: string): Promise<string> {
  const local = JSON.parse(await readFile(join(REPO_ROOT, "config", "local.json"), "utf8"));
  for (const tier of Object.values(local.tiers) as { limits: object }[]) tier.limits = LIFTED;
  local.sharedEndpoints = [
    { ...FAIR, capacity: { callsInFlight: CAPACITY, latencyTargetMs: LATENCY_TARGET_MS } },
    UNFAIR,
  ];
  const file = join(dataDir, "bench-fairness.json");
  await writeFile(file, JSON.stringify(local));
  return file;
}

let proxy: CountingProxy | undefined;
const dataDir = await mkdtemp(join(tmpdir(), "atrium-bench-fairness-"));
const platform = await startPlatform({
  port: 0,
  dataDir,
  ephemeral: true,
  tablePrefix: TABLE_PREFIX,
  configFile: await benchConfig(dataDir),
  interposeDynamodb: async (url) => {
    proxy = await startCountingProxy(url);
    return proxy.url;
  },
});

/** The endpoint table's DynamoDB requests so far, as the proxy counted them. */
function endpointTableCounts(): { reads: number; writes: number } {
  return proxy?.snapshot().byTable[ENDPOINT_TABLE] ?? { reads: 0, writes: 0 };
}

async function tenant(tier: string): Promise<string> {
  const created = newTenant({ name: `Bench ${tier}`, tier }, platform.config);
  const key = generateApiKey();
  await platform.tenantStore.create(created, key);
  return key.plaintext;
}

/** One chat completion; its outcome by status and error code. */
async function call(apiKey: string, model: string, tally: Tally | undefined): Promise<void> {
  const started = performance.now();
  const response = await fetch(`${platform.gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model, messages: [{ role: "user", content: "Am I served?" }], max_tokens: 16 }),
  });
  const body = await response.text();
  const ms = performance.now() - started;
  let outcome: Outcome = response.status === 200 ? "ok" : "other";
  if (response.status === 429) {
    const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code;
    if (code === "endpoint_busy" || code === "endpoint_throttled") outcome = code;
  }
  tally?.calls.push({ outcome, ms, status: response.status });
  const retryAfterS = Number(response.headers.get("retry-after"));
  if (HONOUR_RETRY_AFTER && response.status === 429 && retryAfterS > 0) await sleep(retryAfterS * 1000);
}

/** `clients` closed loops (each sends its next call when the last is answered) until `endsAt`. */
async function closedLoop(clients: number, send: () => Promise<void>, endsAt: number): Promise<void> {
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < endsAt) await send();
    }),
  );
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

// The shares fair share gives the two tenants when both are active (ADR 0012).
const shares = fairShares(
  new Map([
    ["quiet", platform.config.tiers[QUIET_TIER]?.shareWeight ?? 1],
    ["noisy", platform.config.tiers[NOISY_TIER]?.shareWeight ?? 1],
  ]),
  CAPACITY,
);
const QUIET_CLIENTS = shares.get("quiet") ?? 1;
const NOISY_CLIENTS = 10 * (shares.get("noisy") ?? 1);

interface Round {
  pass: number;
  round: "alone" | "without fair share" | "with fair share";
  quiet: ReturnType<typeof summary>;
  noisy?: ReturnType<typeof summary>;
  endpointTableWritesPerCall: number;
  endpointTableReadsPerCall: number;
  /** Share of the measured time the one Node event loop (gateway, handlers, clients) was busy. */
  eventLoopBusy: number;
}

function summary(tally: Tally, seconds: number) {
  const count = (outcome: Outcome) => tally.calls.filter((c) => c.outcome === outcome).length;
  const ok = tally.calls.filter((c) => c.outcome === "ok").map((c) => c.ms);
  return {
    calls: tally.calls.length,
    successRate: ok.length / Math.max(1, tally.calls.length),
    p50Ms: percentile(ok, 0.5),
    p99Ms: percentile(ok, 0.99),
    okPerSecond: ok.length / seconds,
    endpointBusy: count("endpoint_busy"),
    endpointThrottled: count("endpoint_throttled"),
    other: count("other"),
    otherStatuses: [...new Set(tally.calls.filter((c) => c.outcome === "other").map((c) => c.status))],
  };
}

/** Warm-up, then ROUND_S seconds measured: the quiet tenant, and the noisy one unless alone. */
async function round(
  pass: number,
  name: Round["round"],
  keys: { quiet: string; noisy: string },
): Promise<Round> {
  const endpoint = name === "with fair share" ? FAIR : UNFAIR;
  const quiet: Tally = { calls: [] };
  const noisy: Tally = { calls: [] };
  const warmupEnds = performance.now() + WARMUP_S * 1000;
  const endsAt = warmupEnds + ROUND_S * 1000;
  const counted = { writes: 0, reads: 0 };
  // Only calls sent after the warm-up count; DynamoDB traffic is counted over the same stretch.
  const measuring = () => performance.now() >= warmupEnds;
  let loopAtStart = performance.eventLoopUtilization();
  setTimeout(() => {
    Object.assign(counted, endpointTableCounts());
    loopAtStart = performance.eventLoopUtilization();
  }, WARMUP_S * 1000);
  const loops = [
    closedLoop(
      QUIET_CLIENTS,
      () => call(keys.quiet, endpoint.model, measuring() ? quiet : undefined),
      endsAt,
    ),
  ];
  if (name !== "alone") {
    loops.push(
      closedLoop(
        NOISY_CLIENTS,
        () => call(keys.noisy, endpoint.model, measuring() ? noisy : undefined),
        endsAt,
      ),
    );
  }
  await Promise.all(loops);
  const calls = quiet.calls.length + noisy.calls.length;
  const result: Round = {
    pass,
    round: name,
    quiet: summary(quiet, ROUND_S),
    ...(name === "alone" ? {} : { noisy: summary(noisy, ROUND_S) }),
    endpointTableWritesPerCall: (endpointTableCounts().writes - counted.writes) / Math.max(1, calls),
    endpointTableReadsPerCall: (endpointTableCounts().reads - counted.reads) / Math.max(1, calls),
    eventLoopBusy: performance.eventLoopUtilization(loopAtStart).utilization,
  };
  quietCalls.set(result, quiet.calls);
  return result;
}

const pct = (rate: number) => `${(100 * rate).toFixed(2)}%`;
const fixed = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : "—");

function row(r: Round): string {
  const { quiet, noisy } = r;
  const cells = [
    r.pass,
    r.round,
    quiet.calls,
    pct(quiet.successRate),
    fixed(quiet.p50Ms),
    fixed(quiet.p99Ms),
    fixed(quiet.okPerSecond),
    `${quiet.endpointBusy}/${quiet.endpointThrottled}/${quiet.other}`,
    noisy ? noisy.calls : "—",
    noisy ? pct(noisy.successRate) : "—",
    noisy ? noisy.endpointBusy : "—",
    noisy ? noisy.endpointThrottled : "—",
    noisy ? noisy.other : "—",
    fixed(r.endpointTableWritesPerCall, 3),
    pct(r.eventLoopBusy),
  ];
  return `| ${cells.join(" | ")} |`;
}

/** Each round's quiet calls, kept out of the JSON, so that targets pool the passes' calls. */
const quietCalls = new Map<Round, Call[]>();

/** The quiet tenant's calls of every pass of one kind of round, pooled. */
function pooled(rounds: Round[], name: Round["round"]) {
  const calls = rounds.filter((r) => r.round === name).flatMap((r) => quietCalls.get(r) ?? []);
  const ok = calls.filter((c) => c.outcome === "ok").map((c) => c.ms);
  return { successRate: ok.length / Math.max(1, calls.length), p99Ms: percentile(ok, 0.99) };
}

try {
  const loadBefore = loadavg();
  for (const endpoint of [FAIR, UNFAIR]) {
    platform.sagemaker.setConditions(endpoint.endpointName, {
      latencyMs: LATENCY_MS,
      jitterMs: JITTER_MS,
      capacity: CAPACITY,
    });
  }
  const keys = { quiet: await tenant(QUIET_TIER), noisy: await tenant(NOISY_TIER) };
  process.stdout.write(
    `fairness benchmark: endpoint capacity ${CAPACITY} calls in flight, model latency ${LATENCY_MS} ± ${JITTER_MS} ms; ` +
      `quiet tenant (${QUIET_TIER}) ${QUIET_CLIENTS} clients, noisy tenant (${NOISY_TIER}) ${NOISY_CLIENTS} clients; ` +
      `${WARMUP_S} s warm-up + ${ROUND_S} s per round, ${PASSES} passes; ` +
      `refused clients ${HONOUR_RETRY_AFTER ? "wait out retry-after" : "retry at once"}\n`,
  );
  const rounds: Round[] = [];
  for (let pass = 1; pass <= PASSES; pass++) {
    for (const name of ["alone", "without fair share", "with fair share"] as const) {
      rounds.push(await round(pass, name, keys));
      process.stdout.write(`${row(rounds.at(-1) as Round)}\n`);
    }
  }
  const alone = pooled(rounds, "alone");
  const fair = pooled(rounds, "with fair share");
  const unfair = pooled(rounds, "without fair share");
  const contendedWrites = Math.max(
    ...rounds.filter((r) => r.round === "with fair share").map((r) => r.endpointTableWritesPerCall),
  );
  const targets = {
    quietSuccessAtLeast99: { value: fair.successRate, met: fair.successRate >= 0.99 },
    quietP99Within1_5xAlone: { value: fair.p99Ms / alone.p99Ms, met: fair.p99Ms <= 1.5 * alone.p99Ms },
    atMostOneExtraWritePerCall: { value: contendedWrites, met: contendedWrites <= 1 },
  };
  const machine = {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    node: process.version,
    loadBefore,
    loadAfter: loadavg(),
  };
  const table = [
    "| pass | round | quiet calls | quiet success | quiet p50 | quiet p99 | quiet ok/s | quiet refused busy/throttled/other " +
      "| noisy calls | noisy success | noisy 429 endpoint_busy | noisy 429 endpoint_throttled | noisy other | endpoint-table writes/call | event loop busy |",
    "| --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: |",
    ...rounds.map(row),
  ];
  const met = (t: { met: boolean }) => (t.met ? "met" : "NOT met");
  const load = (averages: number[]) => averages.map((x) => x.toFixed(2)).join(" ");
  process.stdout.write(
    `\n${table.join("\n")}\n\n(times in ms; the targets pool the calls of every pass)\n` +
      `quiet success with fair share ${pct(fair.successRate)} (without: ${pct(unfair.successRate)}), target >= 99%: ${met(targets.quietSuccessAtLeast99)}\n` +
      `quiet p99 with fair share ${fixed(fair.p99Ms)} ms = ${fixed(targets.quietP99Within1_5xAlone.value, 2)}x alone ` +
      `(${fixed(alone.p99Ms)} ms; without fair share ${fixed(unfair.p99Ms)} ms), target <= 1.5x: ${met(targets.quietP99Within1_5xAlone)}\n` +
      `endpoint-table writes per call while contended: at most ${fixed(contendedWrites, 3)}, target <= 1: ${met(targets.atMostOneExtraWritePerCall)}\n` +
      `command: BENCH_CAPACITY=${CAPACITY} BENCH_LATENCY_MS=${LATENCY_MS} BENCH_JITTER_MS=${JITTER_MS} ` +
      `BENCH_WARMUP_S=${WARMUP_S} BENCH_ROUND_S=${ROUND_S} ` +
      `BENCH_PASSES=${PASSES} BENCH_HONOUR_RETRY_AFTER=${Number(HONOUR_RETRY_AFTER)} npm run bench:fairness\n` +
      `machine: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}, load average (1/5/15 min) ` +
      `${load(machine.loadBefore)} before, ${load(machine.loadAfter)} after\n`,
  );
  const out = join(REPO_ROOT, ".atrium", "bench");
  await mkdir(out, { recursive: true });
  const settings = {
    CAPACITY,
    LATENCY_MS,
    JITTER_MS,
    LATENCY_TARGET_MS,
    WARMUP_S,
    ROUND_S,
    PASSES,
    HONOUR_RETRY_AFTER,
  };
  const tenants = {
    quiet: { tier: QUIET_TIER, clients: QUIET_CLIENTS },
    noisy: { tier: NOISY_TIER, clients: NOISY_CLIENTS },
  };
  await writeFile(
    join(out, "fairness.json"),
    `${JSON.stringify({ settings, tenants, machine, rounds, targets }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${join(out, "fairness.json")}\n`);
} finally {
  await platform.close();
  await proxy?.close();
  await rm(dataDir, { recursive: true, force: true });
}

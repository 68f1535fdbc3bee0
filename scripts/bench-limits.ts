/**
 * `npm run bench:limits`: the limiter against DynamoDB Local, as many Lambda containers would drive it.
 * Prints admitted vs allowed under concurrency (over-admission must be 0), DynamoDB calls per
 * admitted and per refused call (counted by an SDK middleware), admission latency, and a quiet
 * neighbour's latency during a flood. A benchmark, not a test: figures vary with the machine.
 */
import { readFileSync } from "node:fs";
import { loadStageConfigFile, type StageConfig } from "../packages/core/src/config";
import { LimiterStore } from "../packages/core/src/limiter-store";
import { gcra } from "../packages/core/src/limits";
import { LimiterTable } from "../packages/core/src/tables";
import type { Tenant } from "../packages/core/src/tenant";
import { dynamoClientFor, ensureTable, localDynamoClient, startDynamo } from "../packages/local/src/dynamodb";
import { machine, setting, writeBenchJson } from "./bench/output";

const SECONDS = setting("BENCH_SECONDS", 5, 1);
const CONTAINERS = setting("BENCH_CONTAINERS", 32);
const TABLE = "atrium-bench-limits";

// The functions read their environment at import, as a Lambda does at cold start.
process.env.ATRIUM_STAGE_CONFIG = readFileSync("config/local.json", "utf8");
process.env.ATRIUM_TENANTS_TABLE = "unused";
process.env.ATRIUM_LIMITER_TABLE = TABLE;
process.env.AWS_REGION ??= "eu-west-1";
process.env.AWS_ACCESS_KEY_ID = "bench";
process.env.AWS_SECRET_ACCESS_KEY = "bench";
process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { createAdmission } = await import("../packages/functions/src/lib/admission");

const base = loadStageConfigFile("config/local.json");
const stage: StageConfig = {
  ...base,
  tiers: {
    ...base.tiers,
    bench: {
      tenancy: "pool",
      limits: {
        requestsPerMinute: 3000,
        burst: 50,
        tokensPerMinute: 10_000_000,
        concurrency: 1000,
        monthlyTokens: 1e12,
      },
      maxTokens: { default: 100, cap: 1000 },
      rawCallTokens: 1000,
      limiterFailMode: "closed",
      shareWeight: 1,
    },
  },
};

const dynamo = await startDynamo();

/** One Lambda container: its own DynamoDB client (with a call counter) and its own limiter. */
function container() {
  const client = dynamoClientFor(dynamo.url);
  const counter = { calls: 0 };
  client.beforeSend(() => {
    counter.calls += 1;
  });
  const store = new LimiterStore(client, TABLE);
  const limiter = createAdmission({
    storeFor: () => store,
    config: stage,
  });
  return { client, counter, limiter };
}

const tenantOf = (id: string): Tenant => ({
  id,
  name: id,
  tier: "bench",
  status: "active",
  compliance: [],
  endpoints: {},
  createdAt: new Date().toISOString(),
});

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Stats {
  admitted: number;
  refused: number;
  callsAdmitted: number;
  callsRefused: number;
  latencies: number[];
  firstMicros: number;
  lastMicros: number;
}

/** Each container calls in a loop (one call at a time, as a Lambda instance does) until the deadline. */
async function flood(
  tenant: Tenant,
  containers: ReturnType<typeof container>[],
  seconds: number,
): Promise<Stats> {
  const stats: Stats = {
    admitted: 0,
    refused: 0,
    callsAdmitted: 0,
    callsRefused: 0,
    latencies: [],
    firstMicros: Number.POSITIVE_INFINITY,
    lastMicros: 0,
  };
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    containers.map(async ({ counter, limiter }) => {
      while (Date.now() < deadline) {
        const before = counter.calls;
        const started = performance.now();
        const at = Date.now() * 1000;
        try {
          const { ticket } = await limiter.admit(tenant, 1);
          stats.latencies.push(performance.now() - started);
          stats.firstMicros = Math.min(stats.firstMicros, at);
          stats.lastMicros = Math.max(stats.lastMicros, at);
          await limiter.settle(ticket, 1);
          stats.admitted += 1;
          stats.callsAdmitted += counter.calls - before;
        } catch {
          stats.latencies.push(performance.now() - started);
          stats.refused += 1;
          stats.callsRefused += counter.calls - before;
          // A refused client backs off briefly, as the OpenAI SDK would (it honours retry-after-ms).
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      }
    }),
  );
  stats.latencies.sort((a, b) => a - b);
  return stats;
}

async function quietNeighbour(tenant: Tenant, calls: number) {
  const { limiter } = container();
  const latencies: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    const { ticket } = await limiter.admit(tenant, 1);
    latencies.push(performance.now() - started);
    await limiter.settle(ticket, 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return latencies.sort((a, b) => a - b);
}

await ensureTable(localDynamoClient(dynamo.url), TABLE, LimiterTable);

process.stdout.write(
  `limiter benchmark: ${CONTAINERS} containers for ${SECONDS}s against DynamoDB Local (${dynamo.url})\n`,
);
process.stdout.write("quiet neighbour alone...\n");
const alone = await quietNeighbour(tenantOf("tn-bench-quiet-a"), 50);

const noisy = tenantOf("tn-bench-noisy");
const containers = Array.from({ length: CONTAINERS }, container);
const limits = stage.tiers.bench?.limits;
const { interval } = gcra(limits?.requestsPerMinute ?? 1, limits?.burst);
let overAdmitted = 0;
const phases: Record<string, string | number>[] = [];

// Cold: every container starts knowing nothing. Warm: the same containers, another period.
for (const phase of ["cold containers", "warm containers"]) {
  process.stdout.write(`flood, ${phase} (a quiet neighbour calling alongside)...\n`);
  const [stats, during] = await Promise.all([
    flood(noisy, containers, SECONDS),
    quietNeighbour(tenantOf(`tn-bench-quiet-${phase.slice(0, 4)}`), 50),
  ]);
  // GCRA's guarantee for any span: at most the burst, plus one per interval of the span.
  const allowed = (limits?.burst ?? 0) + Math.floor((stats.lastMicros - stats.firstMicros) / interval);
  overAdmitted += Math.max(0, stats.admitted - allowed);
  const rows: [string, string][] = [
    ["attempts", String(stats.admitted + stats.refused)],
    ["admitted", String(stats.admitted)],
    ["allowed by the limit (burst + rate x span)", String(allowed)],
    ["over-admission", String(Math.max(0, stats.admitted - allowed))],
    [
      "DynamoDB calls per admitted call (admit + settle)",
      (stats.callsAdmitted / Math.max(1, stats.admitted)).toFixed(3),
    ],
    ["DynamoDB calls per refused call", (stats.callsRefused / Math.max(1, stats.refused)).toFixed(3)],
    [
      "admission p50 / p99 (ms)",
      `${percentile(stats.latencies, 50).toFixed(2)} / ${percentile(stats.latencies, 99).toFixed(2)}`,
    ],
    ["quiet neighbour admission p50 alone (ms)", percentile(alone, 50).toFixed(2)],
    ["quiet neighbour admission p50 during the flood (ms)", percentile(during, 50).toFixed(2)],
  ];
  phases.push({
    phase,
    attempts: stats.admitted + stats.refused,
    admitted: stats.admitted,
    allowed,
    overAdmitted: Math.max(0, stats.admitted - allowed),
    dynamodbPerAdmitted: stats.callsAdmitted / Math.max(1, stats.admitted),
    dynamodbPerRefused: stats.callsRefused / Math.max(1, stats.refused),
    admitP50Ms: percentile(stats.latencies, 50),
    admitP99Ms: percentile(stats.latencies, 99),
    quietP50AloneMs: percentile(alone, 50),
    quietP50DuringMs: percentile(during, 50),
  });
  const width = Math.max(...rows.map(([name]) => name.length));
  for (const [name, value] of rows) process.stdout.write(`  ${name.padEnd(width)}  ${value}\n`);
}
process.stdout.write(
  "(DynamoDB Local shares this machine's two cores with the flood; on DynamoDB the items are on different partitions)\n",
);

const file = await writeBenchJson("limits", {
  settings: { SECONDS, CONTAINERS },
  overAdmitted,
  phases,
  machine: machine(),
});
process.stdout.write(`wrote ${file}\n`);
await dynamo.close();
if (overAdmitted > 0) process.exitCode = 1;

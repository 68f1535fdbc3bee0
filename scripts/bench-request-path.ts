/**
 * `npm run bench:request-path`: one model container (its own process) reached three ways in the same
 * run, A B A B: the container directly, the SageMaker emulator's InvokeEndpoint in front of it, and
 * Atrium (gateway, authorizer, handler, limiter, ledger) in front of the emulator, for a tenant whose
 * limits are far above the load. Each path: p50/p99 at 1 connection and calls/s at 16 (the load
 * client is its own process). DynamoDB requests per admitted and per refused call are counted by a
 * proxy in front of DynamoDB Local, in its own process too. Prints a table, checks issue 12's targets, writes
 * .atrium/bench/request-path.json. A benchmark, not a test: figures vary with the machine.
 * Settings: BENCH_SECONDS per measurement (default 3), BENCH_ROUNDS (2), BENCH_REFUSED_CALLS (50),
 * BENCH_WARMUP_CALLS (3000: unmeasured calls at 16 connections first, the same number on every path).
 */
import { rm } from "node:fs/promises";
import {
  type CountingProxyProcess,
  type LoadResult,
  percentile,
  startCountingProxyProcess,
  startLoadClient,
} from "./bench/load";
import { describeMachine, fixed, machine, QUICK, setting, writeBenchJson } from "./bench/output";
import {
  atriumTarget,
  benchTenant,
  containerTarget,
  emulatorTarget,
  PATHS,
  type Path,
  startBenchPlatform,
  type Target,
} from "./bench/targets";
import { countsBetween, type DynamoCounts } from "./dynamodb-counting-proxy";

process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { REPO_ROOT, startPlatform } = await import("../packages/local/src/platform");

const SECONDS = setting("BENCH_SECONDS", 3, 0.5);
const ROUNDS = setting("BENCH_ROUNDS", 2);
const REFUSED_CALLS = setting("BENCH_REFUSED_CALLS", 50, 10);
/** Unmeasured calls per path before the rounds (at most a minute's worth). */
const WARMUP_CALLS = setting("BENCH_WARMUP_CALLS", 3000, 300);
const CONNECTIONS = [1, 16] as const;
/** Issue 12 item 4. */
const TARGET_CALLS_PER_S = 600;
const TARGET_ADDED_P50_MS = 2;

const machineBefore = machine();
let proxy: CountingProxyProcess | undefined;
const { container, dataDir, platform } = await startBenchPlatform(
  startPlatform,
  REPO_ROOT,
  "atrium-bench-path-",
  async (url) => {
    proxy = await startCountingProxyProcess(url);
    return proxy.url;
  },
);
const client = startLoadClient();
const counts = async (): Promise<DynamoCounts> =>
  (await proxy?.snapshot()) ?? { total: { reads: 0, writes: 0 }, byTable: {}, byOperation: {} };

type Sample = { connections: number; result: LoadResult };
const samples: Record<Path, Sample[]> = { container: [], emulator: [], atrium: [] };
/** DynamoDB requests while Atrium's measured calls ran, and the calls it admitted meanwhile. */
let atriumCounts: DynamoCounts | undefined;
let admitted = 0;

try {
  const targets: Record<Path, Target> = {
    container: containerTarget(container.url),
    emulator: await emulatorTarget(platform),
    atrium: atriumTarget(platform, await benchTenant(platform, "bench-unlimited")),
  };
  process.stdout.write(
    `request path benchmark: ${ROUNDS} rounds of ${SECONDS} s per path and connection count${QUICK ? " (quick)" : ""}\n`,
  );
  // Warm-up, the same number of calls on every path (README, "Benchmarks", "Warm-up"): keep-alive
  // connections open, caches fill, and V8's and DynamoDB Local's JIT compilers settle.
  for (const path of PATHS) {
    await client.run({ ...targets[path], connections: 1, seconds: Math.min(1, SECONDS) });
    const warm = await client.run({ ...targets[path], connections: 16, seconds: 60, calls: WARMUP_CALLS });
    process.stdout.write(
      `  warm-up, ${path.padEnd(9)} ${warm.latenciesMs.length} calls at 16 connections in ${warm.seconds.toFixed(1)} s\n`,
    );
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const connections of CONNECTIONS) {
      for (const path of PATHS) {
        // Atrium writes after its responses: what the last run left must land before counting.
        await platform.gateway.idle();
        const before = await counts();
        const result = await client.run({ ...targets[path], connections, seconds: SECONDS });
        const unexpected = Object.keys(result.statuses).filter((s) => s !== "200");
        if (unexpected.length > 0) {
          throw new Error(`${path}: answers other than 200: ${JSON.stringify(result.statuses)}`);
        }
        samples[path].push({ connections, result });
        if (path === "atrium") {
          await platform.gateway.idle();
          atriumCounts = addCounts(atriumCounts, countsBetween(before, await counts()));
          admitted += result.statuses["200"] ?? 0;
        }
        process.stdout.write(
          `  round ${round}, ${String(connections).padStart(2)} connection(s), ${path.padEnd(9)} ` +
            `${(result.latenciesMs.length / result.seconds).toFixed(0)} calls/s, p50 ${fixed(percentile(result.latenciesMs, 0.5))} ms\n`,
        );
      }
    }
  }
  const refused = await refusedCalls(await benchTenant(platform, "bench-tiny"));

  const figures = Object.fromEntries(PATHS.map((path) => [path, figuresOf(samples[path])])) as Record<
    Path,
    ReturnType<typeof figuresOf>
  >;
  const addedP50Ms = figures.atrium.sequential.p50Ms - figures.emulator.sequential.p50Ms;
  const perAdmitted = perCall(atriumCounts, admitted);
  const perRefused = perCall(refused.counts, refused.calls);
  const targetsMet = {
    callsPerSecondAt16: {
      value: figures.atrium.at16.callsPerSecond,
      target: `>= ${TARGET_CALLS_PER_S}`,
      met: figures.atrium.at16.callsPerSecond >= TARGET_CALLS_PER_S,
    },
    addedP50Ms: {
      value: addedP50Ms,
      target: `<= ${TARGET_ADDED_P50_MS}`,
      met: addedP50Ms <= TARGET_ADDED_P50_MS,
    },
  };
  const met = (t: { met: boolean }) => (t.met ? "met" : "NOT met");
  const table = [
    "| path | p50, 1 conn | p99, 1 conn | calls/s, 1 conn | p50, 16 conn | p99, 16 conn | calls/s, 16 conn |",
    "| --- | --: | --: | --: | --: | --: | --: |",
    ...PATHS.map((path) => {
      const { sequential: s, at16: c } = figures[path];
      return `| ${path} | ${fixed(s.p50Ms)} | ${fixed(s.p99Ms)} | ${s.callsPerSecond.toFixed(0)} | ${fixed(c.p50Ms)} | ${fixed(c.p99Ms)} | ${c.callsPerSecond.toFixed(0)} |`;
    }),
  ];
  const machineAfter = machine();
  process.stdout.write(
    `\n${table.join("\n")}\n\n(times in ms; container = the model container directly, emulator = InvokeEndpoint ` +
      "on the SageMaker emulator in front of it, atrium = Atrium in front of the emulator, limits on)\n" +
      `Atrium's added latency (p50 atrium - p50 emulator, 1 connection): ${fixed(addedP50Ms)} ms, target <= ${TARGET_ADDED_P50_MS}: ${met(targetsMet.addedP50Ms)}\n` +
      `Atrium at 16 connections: ${figures.atrium.at16.callsPerSecond.toFixed(0)} calls/s, target >= ${TARGET_CALLS_PER_S}: ${met(targetsMet.callsPerSecondAt16)}\n` +
      `DynamoDB requests per admitted call: ${describePerCall(perAdmitted)} (${admitted} calls)\n` +
      `DynamoDB requests per refused call:  ${describePerCall(perRefused)} (${refused.calls} calls)\n` +
      `machine: ${describeMachine(machineAfter)}\n`,
  );
  const file = await writeBenchJson("request-path", {
    settings: { SECONDS, ROUNDS, REFUSED_CALLS, WARMUP_CALLS, QUICK },
    machine: { before: machineBefore, after: machineAfter },
    figures,
    addedP50Ms,
    dynamodb: { perAdmittedCall: perAdmitted, perRefusedCall: perRefused, admitted, refused: refused.calls },
    targets: targetsMet,
  });
  process.stdout.write(`wrote ${file}\n`);
} finally {
  client.close();
  await platform.close();
  proxy?.close();
  container.process.kill();
  await rm(dataDir, { recursive: true, force: true });
}

/** p50/p99 and calls/s per connection count, over every round. */
function figuresOf(list: Sample[]) {
  const at = (connections: number) => {
    const runs = list.filter((s) => s.connections === connections).map((s) => s.result);
    const latencies = runs.flatMap((r) => r.latenciesMs);
    const seconds = runs.reduce((sum, r) => sum + r.seconds, 0);
    return {
      calls: latencies.length,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      callsPerSecond: latencies.length / seconds,
    };
  };
  return { sequential: at(1), at16: at(16) };
}

/** A tenant allowed one call a minute: one call to spend it, then `REFUSED_CALLS` that are all refused. */
async function refusedCalls(apiKey: string): Promise<{ calls: number; counts: DynamoCounts }> {
  const target = atriumTarget(platform, apiKey);
  const send = () => fetch(target.url, { method: "POST", headers: target.headers, body: target.body });
  await (await send()).arrayBuffer();
  await platform.gateway.idle();
  const before = await counts();
  for (let i = 0; i < REFUSED_CALLS; i++) {
    const response = await send();
    await response.arrayBuffer();
    if (response.status !== 429)
      throw new Error(`a call of the one-a-minute tenant answered ${response.status}`);
  }
  await platform.gateway.idle();
  return { calls: REFUSED_CALLS, counts: countsBetween(before, await counts()) };
}

function addCounts(a: DynamoCounts | undefined, b: DynamoCounts): DynamoCounts {
  if (!a) return b;
  const byTable = { ...a.byTable };
  for (const [table, c] of Object.entries(b.byTable)) {
    const was = byTable[table] ?? { reads: 0, writes: 0 };
    byTable[table] = { reads: was.reads + c.reads, writes: was.writes + c.writes };
  }
  const byOperation = { ...a.byOperation };
  for (const [op, n] of Object.entries(b.byOperation)) byOperation[op] = (byOperation[op] ?? 0) + n;
  return {
    total: { reads: a.total.reads + b.total.reads, writes: a.total.writes + b.total.writes },
    byTable,
    byOperation,
  };
}

/** Reads and writes per call, in all and by table (the table's local name without its prefix). */
function perCall(c: DynamoCounts | undefined, calls: number) {
  const per = (n: number) => n / Math.max(1, calls);
  return {
    reads: per(c?.total.reads ?? 0),
    writes: per(c?.total.writes ?? 0),
    byTable: Object.fromEntries(
      Object.entries(c?.byTable ?? {}).map(([table, t]) => [
        table.replace(/^atrium-local-/, ""),
        { reads: per(t.reads), writes: per(t.writes) },
      ]),
    ),
  };
}

function describePerCall(p: ReturnType<typeof perCall>): string {
  const tables = Object.entries(p.byTable)
    .map(([table, t]) => `${table} ${fixed(t.reads, 3)} r / ${fixed(t.writes, 3)} w`)
    .join(", ");
  return `${fixed(p.reads, 3)} reads, ${fixed(p.writes, 3)} writes${tables ? ` (${tables})` : ""}`;
}

/**
 * `npm run bench:stream`: time to first token (TTFT) of streamed chat completions through Atrium (gateway
 * emulator, authorizer, chat handler, limiter on DynamoDB Local) against the same model called straight
 * with InvokeEndpointWithResponseStream on Atrium's own SageMaker Runtime client (the call its handler
 * makes), at 1 and 16 concurrent streams. The reference
 * model pauses BENCH_TOKEN_DELAY_MS (default 20) before each token and writes BENCH_MAX_TOKENS (32).
 * Prints a markdown table: TTFT p50/p99 per path, what Atrium adds to the p50 (and its handler's own
 * share, as x-atrium-overhead-ms reports it), the gaps between content chunks as the client sees them,
 * and the share of streams whose first content chunk arrived before the model could have produced its
 * last token (nothing buffered on the way). A benchmark, not a test: run it on a quiet machine.
 *
 * Before anything is measured each path runs BENCH_WARMUP_STREAMS (2000) one-token streams, 16 at
 * once (Atrium's for a tenant whose limits are far above them), then 32 whole ones: JIT compilers
 * settle, V8's and DynamoDB Local's, so the rounds measure a warm platform.
 *
 * "1" and "16" are a tenant that keeps that many streams running, one after another: each round of a
 * path starts with unmeasured streams, WARM_STREAMS and at least two for each stream at once, since
 * a container judges a tenant's rate by its last 8 calls (ADR 0004, Allotments) and the tenant was
 * quiet while the other path ran, and it holds a slot for each stream the tenant runs at once: a
 * stream beyond them is admitted by a write of its own, and the slots for it come with the next take.
 * The "1, quiet" row is a tenant calling less than once a second, whose every stream is admitted by
 * its own write before its first token.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { Agent, request as httpRequest } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { SageMakerRuntime } from "../packages/functions/src/lib/sagemaker-runtime";
import { sagemakerTimeouts } from "../packages/functions/src/lib/timeouts";
import { machine, QUICK, setting, writeBenchJson } from "./bench/output";
import { benchTenant, writeBenchConfig } from "./bench/targets";

process.env.POWERTOOLS_LOG_LEVEL = "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED = "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { REPO_ROOT, startPlatform } = await import("../packages/local/src/platform");

const TOKEN_DELAY_MS = setting("BENCH_TOKEN_DELAY_MS", 20);
const MAX_TOKENS = setting("BENCH_MAX_TOKENS", 32);
/** [streams at once, streams measured per path]. */
const RUNS: [number, number][] = QUICK
  ? [
      [1, 8],
      [16, 32],
    ]
  : [
      [1, 40],
      [16, 160],
    ];
// The paths take turns, a quarter of the streams at a time, so a neighbour's load spike hits both alike.
const ROUNDS = 4;
/** Unmeasured one-token streams per path before anything is measured. */
const WARMUP_STREAMS = setting("BENCH_WARMUP_STREAMS", 2000, 100);
/** Unmeasured streams at the start of each round: the container's rate estimate needs 8 calls. */
const WARM_STREAMS = 8;
/** Unmeasured streams per stream at once, at least: by then the container holds a slot for each. */
const WARM_STREAMS_PER_STREAM = 2;
/** A round's unmeasured streams at `concurrency` streams at once. */
const warmStreams = (concurrency: number) => Math.max(WARM_STREAMS, WARM_STREAMS_PER_STREAM * concurrency);
/** The quiet tenant: streams this far apart (start to start, ms), below one call a second. */
const QUIET_SPACING_MS = 1_500;
const QUIET_STREAMS = QUICK ? 4 : 12;
// Long enough that max_tokens cuts the reply: every stream carries MAX_TOKENS content chunks.
const MESSAGES = [
  { role: "user", content: "Tell me, in a few words, how fast the first token of this answer arrives." },
];
const PATHS = ["direct", "atrium"] as const;
type Path = (typeof PATHS)[number];
/** One stream as its client saw it: when each content chunk arrived, in ms after the request was sent. */
type Arrivals = number[];

/** Reads OpenAI-style server-sent events from bytes cut anywhere; notes when each content delta arrives. */
function sseReader(started: number) {
  const decoder = new TextDecoder();
  const arrivals: Arrivals = [];
  let pending = "";
  let done = false;
  const push = (bytes: Uint8Array) => {
    const at = performance.now() - started;
    pending += decoder.decode(bytes, { stream: true }).replace(/\r\n/g, "\n");
    for (let end = pending.indexOf("\n\n"); end >= 0; end = pending.indexOf("\n\n")) {
      const data = pending
        .slice(0, end)
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice("data:".length).trim())
        .join("\n");
      pending = pending.slice(end + 2);
      if (data === "[DONE]") done = true;
      else if (data && JSON.parse(data).choices?.[0]?.delta?.content) arrivals.push(at);
    }
  };
  /** The arrivals of a whole stream; throws unless it ended with [DONE] after `tokens` content chunks. */
  const finish = (path: Path, tokens: number): Arrivals => {
    if (done && arrivals.length === tokens) return arrivals;
    throw new Error(`${path}: ${arrivals.length} content chunks (want ${tokens}), [DONE] seen: ${done}`);
  };
  return { push, finish };
}

const dataDir = await mkdtemp(join(tmpdir(), "atrium-bench-stream-"));
const platform = await startPlatform({
  port: 0,
  dataDir,
  ephemeral: true,
  tokenDelayMs: TOKEN_DELAY_MS,
  configFile: await writeBenchConfig(
    await readFile(join(REPO_ROOT, "config", "local.json"), "utf8"),
    dataDir,
  ),
});
const shared = platform.config.sharedEndpoints[0];
const sagemaker = new SageMakerRuntime({
  endpoint: platform.sagemakerUrl,
  region: platform.config.region,
  credentials: async () => ({ accessKeyId: "bench", secretAccessKey: "bench" }),
  ...sagemakerTimeouts,
});
const agent = new Agent({ keepAlive: true, maxSockets: 64 });
/** Atrium's own account of its handler's time (x-atrium-overhead-ms, the model call excluded), per stream. */
const handlerMs: number[] = [];
/**
 * Streams Atrium refused (429) and the bench tried again after their retry-after-ms, as the OpenAI
 * clients do. A stream's concurrency slot is released after its last byte has gone (ADR 0004, "Settle
 * off the path"), so a client starting its next stream at once can meet its own last one still counted.
 */
let refusedThenRetried = 0;
/** Off while warm-up streams run: their handler times are not measured. */
let measuring = true;

/** Straight to the emulator with Atrium's SageMaker Runtime client, the call its handler makes (usage asked, as it does). */
async function direct(maxTokens = MAX_TOKENS): Promise<Arrivals> {
  const body = {
    messages: MESSAGES,
    max_tokens: maxTokens,
    stream: true,
    stream_options: { include_usage: true },
  };
  const started = performance.now();
  const reader = sseReader(started);
  const out = await sagemaker.invokeEndpointWithResponseStream({
    endpointName: shared?.endpointName ?? "",
    contentType: "application/json",
    body: new TextEncoder().encode(JSON.stringify(body)),
  });
  for await (const part of out.parts) reader.push(part);
  return reader.finish("direct", maxTokens);
}

/** Through the local gateway as a tenant: raw bytes off a keep-alive socket, no client library timed. */
function atrium(apiKey = platform.demoTenant.apiKey, maxTokens = MAX_TOKENS): Promise<Arrivals> {
  const body = JSON.stringify({
    model: shared?.model,
    messages: MESSAGES,
    max_tokens: maxTokens,
    stream: true,
  });
  const headers = {
    authorization: `Bearer ${apiKey}`,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  };
  const started = performance.now();
  const reader = sseReader(started);
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL("/v1/chat/completions", platform.gatewayUrl), {
      method: "POST",
      agent,
      headers,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const refusal: Buffer[] = [];
      if (measuring) handlerMs.push(Number(res.headers["x-atrium-overhead-ms"]));
      res.on("data", (bytes: Buffer) => (res.statusCode === 200 ? reader.push(bytes) : refusal.push(bytes)));
      res.on("error", reject);
      res.on("end", () => {
        const waitMs = Number(res.headers["retry-after-ms"] ?? Number.NaN);
        if (res.statusCode === 429 && waitMs >= 0 && waitMs <= 5_000) {
          refusedThenRetried += 1;
          setTimeout(() => atrium(apiKey, maxTokens).then(resolve, reject), waitMs);
          return;
        }
        if (res.statusCode !== 200)
          return reject(new Error(`atrium: ${res.statusCode} ${Buffer.concat(refusal)}`));
        try {
          resolve(reader.finish("atrium", maxTokens));
        } catch (err) {
          reject(err);
        }
      });
    });
    req.end(body);
  });
}

/** One stream at a time, each starting QUIET_SPACING_MS after the one before: never seen often. */
async function quiet(path: Path, count: number, apiKey: string): Promise<Arrivals[]> {
  const results: Arrivals[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    results.push(await (path === "direct" ? direct() : atrium(apiKey)));
    await sleep(Math.max(0, QUIET_SPACING_MS - (performance.now() - started)));
  }
  return results;
}

/** `count` streams of `maxTokens` tokens on one path, `concurrency` at a time. */
async function run(
  path: Path,
  concurrency: number,
  count: number,
  { maxTokens = MAX_TOKENS, apiKey = platform.demoTenant.apiKey } = {},
): Promise<Arrivals[]> {
  const results: Arrivals[] = [];
  let started = 0;
  // The clients start spread over one stream's length, as independent callers would, not all at once.
  const spacingMs = ((maxTokens + 3) * TOKEN_DELAY_MS) / concurrency;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      await sleep(client * spacingMs);
      while (started < count) {
        started += 1;
        results.push(await (path === "direct" ? direct(maxTokens) : atrium(apiKey, maxTokens)));
      }
    }),
  );
  return results;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

/** One table row per path: TTFT, what Atrium adds to it, chunk gaps, and streams that were not buffered. */
function rows(concurrency: string, streams: Record<Path, Arrivals[]>, handler: number[]): string[] {
  const ttftOf = (path: Path) => streams[path].map((arrivals) => arrivals[0] ?? Number.NaN);
  const directP50 = percentile(ttftOf("direct"), 0.5);
  return PATHS.map((path) => {
    const ttft = ttftOf(path);
    const gaps = streams[path].flatMap((a) => a.slice(1).map((at, i) => at - (a[i] ?? at)));
    // The model sleeps before each of its tokens: its last one cannot exist before (tokens x delay) ms.
    const early = streams[path].filter((a) => (a[0] ?? Number.POSITIVE_INFINITY) < a.length * TOKEN_DELAY_MS);
    const added = path === "atrium" ? (percentile(ttft, 0.5) - directP50).toFixed(2) : "—";
    const ownTime = path === "atrium" ? percentile(handler, 0.5).toFixed(2) : "—";
    const cells = [
      concurrency,
      path,
      ttft.length,
      percentile(ttft, 0.5).toFixed(2),
      percentile(ttft, 0.99).toFixed(2),
    ];
    cells.push(added, ownTime, percentile(gaps, 0.5).toFixed(2), percentile(gaps, 0.99).toFixed(2));
    cells.push(`${early.length}/${streams[path].length}`);
    return `| ${cells.join(" | ")} |`;
  });
}

try {
  const loadBefore = loadavg();
  process.stdout.write(
    `streaming benchmark: ${shared?.model}, token delay ${TOKEN_DELAY_MS} ms, max_tokens ${MAX_TOKENS}\n`,
  );
  // Warm-up, the same on both paths (README, "Benchmarks", "Warm-up"): one-token streams, so it takes
  // seconds, until V8's and DynamoDB Local's JIT compilers settle (Atrium's for a tenant whose limits
  // are far above them, so none is refused); then whole streams, as the rows send them.
  const warmupKey = await benchTenant(platform, "bench-unlimited");
  measuring = false;
  for (const path of PATHS) {
    const began = performance.now();
    await run(path, 16, WARMUP_STREAMS, { maxTokens: 1, apiKey: warmupKey });
    await run(path, 16, 32);
    process.stdout.write(
      `  warm-up, ${path.padEnd(6)} ${WARMUP_STREAMS} one-token streams and 32 whole ones, 16 at once, in ${((performance.now() - began) / 1000).toFixed(1)} s\n`,
    );
  }
  measuring = true;
  const figures: Record<string, number | string>[] = [];
  const table = [
    "| streams at once | path | streams | TTFT p50 | TTFT p99 | Atrium adds to TTFT p50 | handler's own time p50 " +
      "| chunk gap p50 | chunk gap p99 | first chunk before the model's last token |",
    "| --: | --- | --: | --: | --: | --: | --: | --: | --: | --: |",
  ];
  const runs: { label: string; measure: (path: Path) => Promise<Arrivals[]> }[] = RUNS.map(
    ([concurrency, count]) => ({
      label: String(concurrency),
      measure: async (path) => {
        measuring = false;
        await run(path, concurrency, warmStreams(concurrency));
        measuring = true;
        return run(path, concurrency, count / ROUNDS);
      },
    }),
  );
  // Another tenant of the demo tenant's tier, which only the quiet row calls.
  const demo = await platform.tenantStore.get(platform.demoTenant.id);
  if (!demo) throw new Error("the demo tenant is gone");
  const quietKey = await benchTenant(platform, demo.tier);
  runs.splice(1, 0, { label: "1, quiet", measure: (path) => quiet(path, QUIET_STREAMS / ROUNDS, quietKey) });
  for (const { label, measure } of runs) {
    const streams: Record<Path, Arrivals[]> = { direct: [], atrium: [] };
    handlerMs.length = 0;
    for (let round = 0; round < ROUNDS; round++) {
      for (const path of PATHS) streams[path].push(...(await measure(path)));
    }
    table.push(...rows(label, streams, handlerMs));
    const ttft = (path: Path) => streams[path].map((arrivals) => arrivals[0] ?? Number.NaN);
    figures.push({
      concurrency: label,
      streamsPerPath: streams.atrium.length,
      directTtftP50Ms: percentile(ttft("direct"), 0.5),
      directTtftP99Ms: percentile(ttft("direct"), 0.99),
      atriumTtftP50Ms: percentile(ttft("atrium"), 0.5),
      atriumTtftP99Ms: percentile(ttft("atrium"), 0.99),
      atriumAddsToTtftP50Ms: percentile(ttft("atrium"), 0.5) - percentile(ttft("direct"), 0.5),
    });
  }
  const load = (averages: number[]) => averages.map((x) => x.toFixed(2)).join(" ");
  process.stdout.write(
    `\n${table.join("\n")}\n\n` +
      "(times in ms)\n" +
      `streams Atrium refused (429) and the bench retried after their retry-after-ms: ${refusedThenRetried}\n` +
      `command: BENCH_TOKEN_DELAY_MS=${TOKEN_DELAY_MS} BENCH_MAX_TOKENS=${MAX_TOKENS} npm run bench:stream\n` +
      `machine: ${cpus().length} cores, load average (1/5/15 min) ${load(loadBefore)} before, ${load(loadavg())} after\n`,
  );
  const file = await writeBenchJson("stream", {
    settings: {
      TOKEN_DELAY_MS,
      MAX_TOKENS,
      RUNS,
      ROUNDS,
      WARMUP_STREAMS,
      WARM_STREAMS,
      WARM_STREAMS_PER_STREAM,
      QUIET_SPACING_MS,
      QUIET_STREAMS,
    },
    figures,
    refusedThenRetried,
    machine: machine(),
  });
  process.stdout.write(`wrote ${file}\n`);
} finally {
  sagemaker.destroy();
  agent.destroy();
  await platform.close();
  await rm(dataDir, { recursive: true, force: true });
}

/**
 * Where a call's time goes on the local platform, for profiling rather than for the benchmark's table:
 * the request-path benchmark's setup (model container, platform, load client), one path driven at 1
 * and 16 connections, and per call: each process's CPU (platform, DynamoDB Local, container, load
 * client) and the wall time of the platform's outbound HTTP requests by peer (DynamoDB, the SageMaker
 * emulator, the container). `--cpu-prof DIR` also writes a V8 CPU profile of the platform's process
 * for each measured window (open it in Chrome DevTools or read it with a script).
 * Usage: node --import tsx scripts/bench/profile-request-path.ts [atrium|emulator] [--cpu-prof DIR]
 * Settings: BENCH_SECONDS per measurement (default 5).
 */
import diagnostics from "node:diagnostics_channel";
import { mkdir, rm, writeFile } from "node:fs/promises";
import type { ClientRequest } from "node:http";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { percentile, startLoadClient } from "./load";
import { fixed, setting } from "./output";
import { cpuByRole } from "./process-cpu";
import { atriumTarget, benchTenant, emulatorTarget, startBenchPlatform } from "./targets";

process.env.POWERTOOLS_LOG_LEVEL ??= "SILENT";
process.env.POWERTOOLS_METRICS_DISABLED ??= "true";
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
const { REPO_ROOT, startPlatform } = await import("../../packages/local/src/platform");

const SECONDS = setting("BENCH_SECONDS", 5);
const path = process.argv[2] === "emulator" ? "emulator" : "atrium";
const profileAt = process.argv.indexOf("--cpu-prof");
const profileDir = profileAt > 0 ? process.argv[profileAt + 1] : undefined;

/** Outbound requests' wall time, by the port they went to: from the request's start to its response's head. */
const sentAt = new WeakMap<ClientRequest, number>();
let hops = new Map<string, number[]>();
diagnostics.subscribe("http.client.request.start", (message) => {
  sentAt.set((message as { request: ClientRequest }).request, performance.now());
});
diagnostics.subscribe("http.client.response.finish", (message) => {
  const { request } = message as { request: ClientRequest };
  const started = sentAt.get(request);
  if (started === undefined) return;
  const port = String(request.socket?.remotePort ?? "?");
  const times = hops.get(port) ?? [];
  times.push(performance.now() - started);
  hops.set(port, times);
});

const { container, dataDir, platform } = await startBenchPlatform(
  startPlatform,
  REPO_ROOT,
  "atrium-profile-",
);
const peers: Record<string, string> = {
  [new URL(platform.dynamodbUrl).port]: "DynamoDB",
  [new URL(platform.sagemakerUrl).port]: "SageMaker emulator",
  [new URL(container.url).port]: "model container",
};
const client = startLoadClient();
const session = new Session();
if (profileDir) session.connect();
try {
  const target =
    path === "emulator"
      ? await emulatorTarget(platform)
      : atriumTarget(platform, await benchTenant(platform, "bench-unlimited"));
  for (const connections of [1, 16]) await client.run({ ...target, connections, seconds: 1 });
  for (const connections of [1, 16]) {
    if (profileDir) await startProfile();
    hops = new Map();
    const before = cpuByRole();
    const result = await client.run({ ...target, connections, seconds: SECONDS });
    const after = cpuByRole();
    if (profileDir) await stopProfile(join(profileDir, `${path}-${connections}.cpuprofile`));
    const calls = result.latenciesMs.length;
    const perCall = (ms: number) => fixed(ms / Math.max(1, calls));
    process.stdout.write(
      `${path}, ${connections} connection(s): ${(calls / result.seconds).toFixed(0)} calls/s, ` +
        `p50 ${fixed(percentile(result.latenciesMs, 0.5))} ms, answers ${JSON.stringify(result.statuses)}\n` +
        `  CPU per call (ms): ${Object.entries(after)
          .map(([role, ms]) => `${role} ${perCall(ms - (before[role as keyof typeof before] ?? 0))}`)
          .join(", ")}\n`,
    );
    for (const [port, times] of hops) {
      process.stdout.write(
        `  to ${peers[port] ?? `port ${port}`}: ${fixed(times.length / calls)} requests and ` +
          `${perCall(times.reduce((a, b) => a + b, 0))} ms per call, p50 ${fixed(percentile(times, 0.5))} ms each\n`,
      );
    }
  }
} finally {
  if (profileDir) session.disconnect();
  client.close();
  await platform.close();
  container.process.kill();
  await rm(dataDir, { recursive: true, force: true });
}

async function startProfile(): Promise<void> {
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
}

async function stopProfile(file: string): Promise<void> {
  const { profile } = await session.post("Profiler.stop");
  await mkdir(join(file, ".."), { recursive: true });
  await writeFile(file, JSON.stringify(profile));
  process.stdout.write(`  wrote ${file}\n`);
}

/**
 * `npm run bench:bundles`: each app function's bundle size and import time, checked against
 * stacks/bundle-limits.ts (docs/adr/0014-lambda-bundles.md). Measures the bundles of
 * .atrium/synth/dev/ when a synth left them there, else runs `npm run synth -- --stage dev` first
 * (about 100 s). Writes .atrium/bench/bundles.json. Exits 0 either way: the limits are the synth's
 * to enforce; here they are figures for the benchmark table.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import type { Metafile } from "esbuild";
import {
  AUTHORIZER_FILE,
  bundleViolations,
  forbiddenModules,
  IMPORT_RUNS,
  kib,
  MAX_AUTHORIZER_BYTES,
  MAX_BUNDLE_BYTES,
  MAX_IMPORT_MS,
} from "../stacks/bundle-limits";
import { describeMachine, machine, QUICK, setting, writeBenchJson } from "./bench/output";
import { type Bundle, bundlesOf, fileOf, importTime } from "./bundle-measure";

const STAGE = "dev";
const RUNS = setting("BENCH_IMPORT_RUNS", IMPORT_RUNS, 3);
const outdir = path.resolve(import.meta.dirname, "..", ".atrium", "synth", STAGE);
const TEMPLATE = ".template.json";

const reused = existsSync(outdir) && readdirSync(outdir).some((f) => f.endsWith(TEMPLATE));
if (!reused) {
  process.stdout.write(`no bundles in ${outdir}: running the synth of stage ${STAGE} (about 100 s)\n`);
  // It exits 1 when a bundle breaks its limits, which is a figure here, not a failure.
  const synth = spawnSync("npx", ["tsx", "scripts/synth.ts", "--stage", STAGE], { stdio: "inherit" });
  if (!existsSync(outdir)) throw new Error(`the synth left no ${outdir} (exit ${synth.status})`);
}
const builtAt = statSync(outdir).mtime.toISOString();

const bundles: Bundle[] = readdirSync(outdir)
  .filter((f) => f.endsWith(TEMPLATE))
  .flatMap((f) => bundlesOf(outdir, f, f.slice(0, -TEMPLATE.length)))
  .filter((b) => b.code !== undefined);

process.stdout.write(
  `bundles of stage ${STAGE} (${reused ? "reused" : "synthesised"}, built ${builtAt}); importing each ${RUNS} times${QUICK ? " (quick)" : ""}\n`,
);
const rows = new Map<
  string,
  { file: string; bytes: number; cpuMs: number; wallMs: number; violations: string[] }
>();
for (const b of bundles) {
  const file = fileOf(b);
  if (rows.has(file) || !b.code) continue;
  const time = importTime({ ...b, code: b.code }, RUNS);
  const metafile = readMetafile(file);
  const violations = [
    ...bundleViolations(file, b.bytes, time.cpuMs),
    ...(metafile ? forbiddenModules(file, metafile).map((m) => `${file}: contains ${m}`) : []),
  ];
  rows.set(file, { file, bytes: b.bytes, ...time, violations });
}

const sorted = [...rows.values()].sort((a, b) => b.bytes - a.bytes);
const width = Math.max(...sorted.map((r) => r.file.length));
process.stdout.write(`  ${"bundle".padEnd(width)}  ${"size".padStart(10)}  import p50 cpu / wall\n`);
for (const r of sorted) {
  process.stdout.write(
    `  ${r.file.padEnd(width)}  ${kib(r.bytes).padStart(10)}  ${r.cpuMs.toFixed(0)} / ${r.wallMs.toFixed(0)} ms${r.violations.length ? "  over" : ""}\n`,
  );
}
const over = sorted.filter((r) => r.violations.length > 0);
const authorizer = rows.get(AUTHORIZER_FILE);
const summary = {
  bundles: sorted.length,
  over: over.length,
  largestBytes: sorted[0]?.bytes ?? 0,
  authorizerBytes: authorizer?.bytes,
  slowestImportCpuMs: Math.max(...sorted.map((r) => r.cpuMs)),
  met: over.length === 0,
};
process.stdout.write(
  `${over.length} of ${sorted.length} bundles above the limits (${kib(MAX_BUNDLE_BYTES)}, the authorizer ` +
    `${kib(MAX_AUTHORIZER_BYTES)}, import ${MAX_IMPORT_MS} ms of CPU p50)\n` +
    over.flatMap((r) => r.violations.map((v) => `  ${v}\n`)).join("") +
    `machine: ${describeMachine(machine())}\n`,
);
const file = await writeBenchJson("bundles", {
  stage: STAGE,
  reused,
  builtAt,
  importRuns: RUNS,
  limits: { MAX_BUNDLE_BYTES, MAX_AUTHORIZER_BYTES, MAX_IMPORT_MS },
  summary,
  bundles: sorted,
  machine: machine(),
});
process.stdout.write(`wrote ${file}\n`);

function readMetafile(file: string): Metafile | undefined {
  const at = path.join(outdir, "metafiles", `${file.replaceAll("/", "_")}.json`);
  return existsSync(at) ? (JSON.parse(readFileSync(at, "utf8")) as Metafile) : undefined;
}

/**
 * `npm run bench`: every benchmark in turn, each in its own process printing its detail, then one
 * summary table of them all, written to .atrium/bench/summary.json (next to each part's own JSON).
 * `--quick` (or BENCH_QUICK=1) runs each part briefly: a smoke check, not a measurement.
 * BENCH_SKIP=bundles,fairness leaves parts out; the table says which were skipped.
 * Figures, never assertions: the exit code is 1 only when a part failed to run.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { BENCH_DIR, describeMachine, machine, QUICK, writeBenchJson } from "./bench/output";
import { type Row, summaries } from "./bench/summary-rows";

/** The parts in the order they run: [name, script]. Each writes .atrium/bench/<name>.json. */
const PARTS: [string, string][] = [
  ["limits", "scripts/bench-limits.ts"],
  ["request-path", "scripts/bench-request-path.ts"],
  ["stream", "scripts/bench-stream.ts"],
  ["fairness", "scripts/bench-fairness.ts"],
  ["reports", "scripts/bench-reports.ts"],
  ["bundles", "scripts/bench-bundles.ts"],
];

const skip = new Set(
  (process.env.BENCH_SKIP ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean),
);
const unknown = [...skip].filter((name) => !PARTS.some(([part]) => part === name));
if (unknown.length > 0) {
  process.stderr.write(
    `BENCH_SKIP names no part: ${unknown.join(", ")} (parts: ${PARTS.map(([p]) => p).join(", ")})\n`,
  );
  process.exit(2);
}

const command = `${skip.size ? `BENCH_SKIP=${[...skip].join(",")} ` : ""}npm run bench${QUICK ? " -- --quick" : ""}`;
const machineBefore = machine();
const startedAt = new Date();
type Outcome = { status: "ran" | "skipped" | "failed"; seconds?: number; rows: Row[] };
const outcomes: Record<string, Outcome> = {};

for (const [name, script] of PARTS) {
  if (skip.has(name)) {
    outcomes[name] = { status: "skipped", rows: [] };
    continue;
  }
  process.stdout.write(`\n=== ${name} (${script}) ===\n`);
  const started = Date.now();
  const run = spawnSync(process.execPath, ["--import", "tsx", script], {
    stdio: "inherit",
    env: { ...process.env, ...(QUICK ? { BENCH_QUICK: "1" } : {}) },
  });
  const seconds = (Date.now() - started) / 1000;
  const json = join(BENCH_DIR, `${name}.json`);
  // Only this run's JSON counts: an older one would show figures this run did not measure.
  const fresh = statOrUndefined(json)?.mtimeMs ?? 0;
  if (fresh < started) {
    process.stderr.write(`${name}: exited ${run.status} without writing ${json}\n`);
    outcomes[name] = { status: "failed", seconds, rows: [] };
    continue;
  }
  const rows = summaries[name]?.(JSON.parse(readFileSync(json, "utf8"))) ?? [];
  outcomes[name] = { status: "ran", seconds, rows };
}

const machineAfter = machine();
const verdict = (row: Row) => (row.met === undefined ? "" : row.met ? "met" : "NOT met");
const lines = [
  "| part | figure | value | target | |",
  "| --- | --- | --: | --- | --- |",
  ...PARTS.flatMap(([name]) => {
    const outcome = outcomes[name] as Outcome;
    if (outcome.status !== "ran") return [`| ${name} | ${outcome.status} | | | |`];
    return outcome.rows.map(
      (r) => `| ${name} | ${r.figure} | ${r.value} | ${r.target ?? ""} | ${verdict(r)} |`,
    );
  }),
];
process.stdout.write(
  `\n=== summary${QUICK ? " (quick: a smoke check, not a measurement)" : ""} ===\n\n${lines.join("\n")}\n\n` +
    `command: ${command}\n` +
    `machine: ${describeMachine(machineBefore)} at the start; load ${machineAfter.load.map((x) => x.toFixed(2)).join(" ")} at the end\n` +
    `took ${((Date.now() - startedAt.getTime()) / 1000).toFixed(0)} s (${PARTS.map(([n]) => `${n} ${outcomes[n]?.seconds?.toFixed(0) ?? "-"} s`).join(", ")})\n`,
);
const file = await writeBenchJson("summary", {
  command,
  quick: QUICK,
  startedAt: startedAt.toISOString(),
  machine: { before: machineBefore, after: machineAfter },
  parts: outcomes,
  table: lines.join("\n"),
});
process.stdout.write(`wrote ${file}\n`);
if (Object.values(outcomes).some((o) => o.status === "failed")) process.exitCode = 1;

function statOrUndefined(file: string) {
  try {
    return statSync(file);
  } catch {
    return undefined;
  }
}

/** What every benchmark shares: its settings from the environment, the machine it ran on, its JSON. */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join, resolve } from "node:path";

export const BENCH_DIR = resolve(import.meta.dirname, "../../.atrium/bench");

/** `--quick` or BENCH_QUICK=1: each part runs briefly, a smoke check rather than a measurement. */
export const QUICK = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";

/** A numeric setting: the environment's value, else the quick or the full default. */
export function setting(name: string, full: number, quick = full): number {
  const raw = process.env[name];
  return raw === undefined || raw === "" ? (QUICK ? quick : full) : Number(raw);
}

export interface Machine {
  cores: number;
  cpu: string;
  node: string;
  /** 1, 5 and 15 minute load averages. */
  load: number[];
}

export function machine(): Machine {
  return { cores: cpus().length, cpu: cpus()[0]?.model ?? "?", node: process.version, load: loadavg() };
}

export function describeMachine(m: Machine): string {
  const load = m.load.map((x) => x.toFixed(2)).join(" ");
  return `${m.cores} cores (${m.cpu}), Node ${m.node}, load average (1/5/15 min) ${load}`;
}

/** Writes `.atrium/bench/<name>.json` and returns its path. */
export async function writeBenchJson(name: string, data: unknown): Promise<string> {
  await mkdir(BENCH_DIR, { recursive: true });
  const file = join(BENCH_DIR, `${name}.json`);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return file;
}

export const fixed = (value: number, digits = 2): string =>
  Number.isFinite(value) ? value.toFixed(digits) : "—";

/**
 * The request-path benchmark's processes: the load client and the model container, each a child
 * `node` running a TypeScript entry; and the percentile arithmetic of their results.
 */
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import type { DynamoCounts } from "../dynamodb-counting-proxy";

export interface LoadJob {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  seconds: number;
  /** Stop after this many calls have been sent, if the seconds have not run out first. */
  calls?: number;
}

export interface LoadResult {
  latenciesMs: number[];
  /** Answers by HTTP status; 0 = the connection failed. */
  statuses: Record<string, number>;
  seconds: number;
}

const HERE = import.meta.dirname;
const TSX = ["--import", "tsx"];

export interface LoadClient {
  run(job: LoadJob): Promise<LoadResult>;
  close(): void;
}

export function startLoadClient(): LoadClient {
  // Its own execArgv: a `--cpu-prof` of the benchmark is for the process that runs Atrium.
  const child = fork(join(HERE, "load-client.ts"), [], { execArgv: TSX });
  return {
    run: (job) =>
      new Promise((resolve, reject) => {
        const exited = (code: number | null) => reject(new Error(`load client exited (${code})`));
        child.once("exit", exited);
        child.once("message", (result) => {
          child.off("exit", exited);
          resolve(result as LoadResult);
        });
        child.send(job);
      }),
    close: () => child.disconnect(),
  };
}

/** Starts the model container process; resolves with its URL once it listens. */
export function startModelContainer(endpointName: string): Promise<{ url: string; process: ChildProcess }> {
  const child = fork(join(HERE, "model-container.ts"), [endpointName], {
    execArgv: TSX,
    stdio: ["ignore", "pipe", "inherit", "ipc"],
  });
  return new Promise((resolve, reject) => {
    child.stdout?.once("data", (line: Buffer) => resolve({ url: line.toString().trim(), process: child }));
    child.once("exit", (code) => reject(new Error(`model container exited (${code})`)));
  });
}

export interface CountingProxyProcess {
  url: string;
  snapshot(): Promise<DynamoCounts>;
  close(): void;
}

/** Starts the DynamoDB counting proxy in its own process (counting-proxy-child.ts) in front of `target`. */
export function startCountingProxyProcess(target: string): Promise<CountingProxyProcess> {
  const child = fork(join(HERE, "counting-proxy-child.ts"), [target], {
    execArgv: TSX,
    stdio: ["ignore", "pipe", "inherit", "ipc"],
  });
  const snapshot = () =>
    new Promise<DynamoCounts>((resolve) => {
      child.once("message", (counts) => resolve(counts as DynamoCounts));
      child.send("snapshot");
    });
  return new Promise((resolve, reject) => {
    child.stdout?.once("data", (line: Buffer) =>
      resolve({ url: line.toString().trim(), snapshot, close: () => child.disconnect() }),
    );
    child.once("exit", (code) => reject(new Error(`counting proxy exited (${code})`)));
  });
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

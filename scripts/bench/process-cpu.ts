/**
 * CPU time of this process and of the benchmark's other processes (DynamoDB Local's JVM, the model
 * container, the load client), found among this process's descendants in /proc. Linux only: elsewhere
 * only this process is counted.
 */
import { readdirSync, readFileSync } from "node:fs";

export type Role = "platform" | "dynamodb" | "container" | "loadClient";

/** Milliseconds of CPU (user + system) so far, per role. */
export function cpuByRole(): Partial<Record<Role, number>> {
  const own = process.cpuUsage();
  const spent: Partial<Record<Role, number>> = { platform: (own.user + own.system) / 1000 };
  for (const pid of descendants(process.pid)) {
    const role = roleOf(read(`/proc/${pid}/cmdline`));
    if (role) spent[role] = (spent[role] ?? 0) + cpuMs(pid);
  }
  return spent;
}

function roleOf(commandLine: string): Role | undefined {
  if (commandLine.startsWith("java") && commandLine.includes("DynamoDBLocal")) return "dynamodb";
  if (commandLine.includes("model-container")) return "container";
  if (commandLine.includes("load-client")) return "loadClient";
  return undefined;
}

function read(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

/** /proc/<pid>/stat after the command's closing parenthesis: state, ppid, ... utime (12th), stime (13th). */
const statFields = (pid: number) => read(`/proc/${pid}/stat`).split(") ")[1]?.split(" ") ?? [];

// Clock ticks are 10 ms on Linux (USER_HZ = 100).
const cpuMs = (pid: number) => {
  const fields = statFields(pid);
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) * 10;
};

function descendants(root: number): number[] {
  let pids: number[];
  try {
    pids = readdirSync("/proc")
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
  const parentOf = new Map(pids.map((pid) => [pid, Number(statFields(pid)[1])]));
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const parent = queue.pop();
    for (const [pid, ppid] of parentOf) {
      if (ppid === parent) {
        found.push(pid);
        queue.push(pid);
      }
    }
  }
  return found;
}

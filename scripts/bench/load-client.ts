/**
 * The request-path benchmark's client, run in its own process so it does not share an event loop
 * with what it measures. A closed loop: `connections` callers, each sending its next request when its
 * last answer has been read, on keep-alive sockets, for `seconds` or until `calls` have been sent.
 * Answers each job (an IPC message) with every call's latency and a tally of statuses.
 */
import { Agent, request } from "node:http";
import type { LoadJob, LoadResult } from "./load";

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function once(job: LoadJob): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(job.url, { method: "POST", headers: job.headers, agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(job.body);
  });
}

async function run(job: LoadJob): Promise<LoadResult> {
  const latenciesMs: number[] = [];
  const statuses: Record<string, number> = {};
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  let sent = 0;
  const more = () => performance.now() < deadline && (job.calls === undefined || sent < job.calls);
  await Promise.all(
    Array.from({ length: job.connections }, async () => {
      while (more()) {
        sent += 1;
        const sentAt = performance.now();
        const status = await once(job).catch(() => 0);
        latenciesMs.push(performance.now() - sentAt);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  return { latenciesMs, statuses, seconds: (performance.now() - started) / 1000 };
}

process.on("message", (job: LoadJob) => {
  void run(job).then((result) => process.send?.(result));
});
process.on("disconnect", () => {
  agent.destroy();
  process.exit(0);
});

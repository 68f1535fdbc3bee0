/**
 * The report a streamed call prints when it is wholly done, its settle included (the EMF document of
 * packages/functions/src/lib/stream-metrics.ts): a test waits on a tenant's next one, then reads what
 * the call was charged, knowing nothing of the call is still running. The handlers' JSON log lines
 * are kept too, for tests that read them.
 */
import { afterAll, beforeAll, vi } from "vitest";

export type StreamOutcome = "completed" | "failed" | "timed_out" | "client_gone";

export interface StreamReport {
  tenantId: string;
  model: string;
  outcome: StreamOutcome;
}

const OUTCOMES: Record<string, StreamOutcome> = {
  StreamsCompleted: "completed",
  StreamsFailed: "failed",
  StreamsTimedOut: "timed_out",
  StreamsClientGone: "client_gone",
};

export interface StreamReports {
  /** The tenant's next stream report (or one that came and was not yet taken). */
  next(tenantId: string): Promise<StreamReport>;
  /** The handlers' JSON log lines so far (only printed where POWERTOOLS_LOG_LEVEL lets them). */
  logs(): Record<string, unknown>[];
}

/**
 * Reads the handlers' standard output for the test file: their JSON lines (EMF documents, logs) are
 * kept out of the test output, the rest passes through. Call it at the top of the file: metrics are
 * switched on here, before the first call loads the handlers.
 */
export function captureStreamReports(): StreamReports {
  process.env.POWERTOOLS_METRICS_DISABLED = "false";
  const logs: Record<string, unknown>[] = [];
  const arrived = new Map<string, StreamReport[]>();
  const waiting = new Map<string, ((report: StreamReport) => void)[]>();
  const deliver = (report: StreamReport) => {
    const waiter = waiting.get(report.tenantId)?.shift();
    if (waiter) waiter(report);
    else arrived.set(report.tenantId, [...(arrived.get(report.tenantId) ?? []), report]);
  };

  beforeAll(() => {
    const write = process.stdout.write.bind(process.stdout);
    vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array, ...rest: never[]) => {
      const lines = String(chunk).split("\n").flatMap(jsonObject);
      if (lines.length === 0) return write(chunk, ...rest);
      for (const line of lines) {
        if (isEmf(line)) for (const report of reportOf(line)) deliver(report);
        else logs.push(line);
      }
      return true;
    }) as typeof process.stdout.write);
  });
  afterAll(() => {
    vi.restoreAllMocks();
  });

  return {
    next: (tenantId) => {
      const report = arrived.get(tenantId)?.shift();
      if (report) return Promise.resolve(report);
      return new Promise((resolve) => {
        waiting.set(tenantId, [...(waiting.get(tenantId) ?? []), resolve]);
      });
    },
    logs: () => [...logs],
  };
}

interface EmfDocument {
  _aws: { CloudWatchMetrics?: { Metrics?: { Name: string }[] }[] };
  tenantId?: string;
  model?: string;
}

/** The JSON object on one line of output, if it is one. */
function jsonObject(line: string): Record<string, unknown>[] {
  if (!line.startsWith("{")) return [];
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === "object" && value !== null ? [value as Record<string, unknown>] : [];
  } catch {
    return [];
  }
}

const isEmf = (line: Record<string, unknown>): line is Record<string, unknown> & EmfDocument =>
  typeof line._aws === "object" && line._aws !== null;

/** The stream report an EMF document is, if it is one: the one with the stream's outcome. */
function reportOf(document: EmfDocument): StreamReport[] {
  const names = document._aws.CloudWatchMetrics?.flatMap((d) => d.Metrics ?? []).map((m) => m.Name) ?? [];
  const outcome = names.map((name) => OUTCOMES[name]).find((o) => o !== undefined);
  if (!outcome || !document.tenantId || !document.model) return [];
  return [{ tenantId: document.tenantId, model: document.model, outcome }];
}

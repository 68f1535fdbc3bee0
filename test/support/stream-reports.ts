/**
 * The report a streamed call prints when it is wholly done, its settle included (the EMF document of
 * packages/functions/src/lib/stream-metrics.ts): a test waits on a tenant's next one, then reads what
 * the call was charged, knowing nothing of the call is still running.
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

/**
 * Reads the handlers' standard output for the test file (other output passes through). Call it at
 * the top of the file: metrics are switched on here, before the first call loads the handlers.
 */
export function captureStreamReports(): { next(tenantId: string): Promise<StreamReport> } {
  process.env.POWERTOOLS_METRICS_DISABLED = "false";
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
      const documents = String(chunk).split("\n").flatMap(emfDocument);
      // EMF documents (every call prints some) are kept out of the test output; the rest goes through.
      if (documents.length === 0) return write(chunk, ...rest);
      for (const report of documents.flatMap(reportOf)) deliver(report);
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
  };
}

interface EmfDocument {
  _aws: { CloudWatchMetrics?: { Metrics?: { Name: string }[] }[] };
  tenantId?: string;
  model?: string;
}

/** The EMF document on one line of output, if it is one. */
function emfDocument(line: string): EmfDocument[] {
  if (!line.startsWith("{")) return [];
  try {
    const document = JSON.parse(line) as Partial<EmfDocument>;
    return document._aws ? [document as EmfDocument] : [];
  } catch {
    return [];
  }
}

/** The stream report an EMF document is, if it is one: the one with the stream's outcome. */
function reportOf(document: EmfDocument): StreamReport[] {
  const names = document._aws.CloudWatchMetrics?.flatMap((d) => d.Metrics ?? []).map((m) => m.Name) ?? [];
  const outcome = names.map((name) => OUTCOMES[name]).find((o) => o !== undefined);
  if (!outcome || !document.tenantId || !document.model) return [];
  return [{ tenantId: document.tenantId, model: document.model, outcome }];
}

/**
 * The local stand-in for Lambda's invoke store: invocations the gateway runs at once in one process
 * keep their own Powertools state (log keys, metrics, dimensions), as under Lambda's multi-concurrency.
 */
import { inInvocation, installLocalInvokeStore, LocalInvokeStore } from "@atrium/local/lambda-invoke-store";
import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics, MetricUnit } from "@aws-lambda-powertools/metrics";
import type { Context } from "aws-lambda";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";

const contextOf = (awsRequestId: string) => ({ awsRequestId }) as Context;

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** The JSON lines written to stdout while `run` runs. */
async function stdoutLines(run: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const written: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    await run();
  } finally {
    spy.mockRestore();
  }
  return written
    .join("")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Two invocations that interleave: each starts, then both wait, then each finishes in turn. */
async function interleaved(step: (tenantId: string, waitTurn: () => Promise<void>) => Promise<void>) {
  const first = gate();
  const second = gate();
  const a = inInvocation(contextOf("request-a"), () => step("tenant-a", () => first.opened));
  const b = inInvocation(contextOf("request-b"), () => step("tenant-b", () => second.opened));
  first.open();
  await a;
  second.open();
  await b;
}

describe("LocalInvokeStore", () => {
  beforeAll(() => {
    installLocalInvokeStore();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("is what Powertools and the AWS SDK find on the awslambda global, with the process multi-concurrent", () => {
    const global = globalThis as { awslambda?: { InvokeStore?: unknown } };
    expect(global.awslambda?.InvokeStore).toBeInstanceOf(LocalInvokeStore);
    expect(process.env.AWS_LAMBDA_MAX_CONCURRENCY).toBeTruthy();
  });

  it("gives each invocation its request id and keeps the runtime's keys read-only", async () => {
    const store = (globalThis as unknown as { awslambda: { InvokeStore: LocalInvokeStore } }).awslambda
      .InvokeStore;
    expect(store.hasContext()).toBe(false);
    await inInvocation(contextOf("request-1"), async () => {
      expect(store.getRequestId()).toBe("request-1");
      expect(() => store.set(LocalInvokeStore.PROTECTED_KEYS.REQUEST_ID, "other")).toThrow(/protected/);
      store.set("own", 1);
      await Promise.resolve();
      expect(store.get("own")).toBe(1);
    });
    expect(store.get("own")).toBeUndefined();
  });

  it("keeps each invocation's log keys while another invocation sets its own", async () => {
    const logger = new Logger({ serviceName: "invoke-store-test", logLevel: "INFO" });
    const lines = await stdoutLines(() =>
      interleaved(async (tenantId, waitTurn) => {
        logger.appendKeys({ tenantId });
        await waitTurn();
        logger.info("finished");
      }),
    );
    const finished = lines.filter((line) => line.message === "finished");
    expect(finished.map((line) => line.tenantId)).toEqual(["tenant-a", "tenant-b"]);
  });

  it("publishes each invocation's metrics under its own dimension, without overwriting another's", async () => {
    const logger = new Logger({ serviceName: "invoke-store-test", logLevel: "WARN" });
    vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "false");
    const metrics = new Metrics({ namespace: "Test", serviceName: "invoke-store-test", logger });
    const lines = await stdoutLines(() =>
      interleaved(async (tenantId, waitTurn) => {
        metrics.addDimension("tenantId", tenantId);
        metrics.addMetric(tenantId === "tenant-a" ? "A" : "B", MetricUnit.Count, 1);
        await waitTurn();
        metrics.publishStoredMetrics();
      }),
    );
    vi.unstubAllEnvs();
    const documents = lines.filter((line) => "_aws" in line);
    expect(documents.map((d) => [d.tenantId, "A" in d ? "A" : "B"])).toEqual([
      ["tenant-a", "A"],
      ["tenant-b", "B"],
    ]);
    expect(lines.filter((line) => line.level === "WARN")).toEqual([]);
  });
});

/**
 * The retry policy's decisions (docs/adr/0011-retries-and-model-errors.md): which failures are safe to
 * try again (checked on the errors Atrium's SageMaker Runtime client really throws, from the emulator and real sockets),
 * how long to wait, when the deadline or the per-call cap says no, and the per-endpoint budget's bound.
 */
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer } from "node:net";
import type { Fault, SageMakerEmulator } from "@atrium/local/sagemaker-emulator";
import { startSageMakerEmulator } from "@atrium/local/sagemaker-emulator";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  isSafeToRetry,
  MAX_RETRIES_PER_CALL,
  MIN_ATTEMPT_MS,
  planRetry,
} from "../src/lib/model-retries";
import { CALLS_PER_RETRY, RETRY_BURST, RetryBudget } from "../src/lib/retry-budget";
import { SageMakerRuntime } from "../src/lib/sagemaker-runtime";

const ENDPOINT = "chat-ep";
let emulator: SageMakerEmulator;
let silent: Server;

beforeAll(async () => {
  emulator = await startSageMakerEmulator({ resolveEndpoint: () => ({ kind: "reference" }) });
  // Accepts every request and never answers: the request timeout fires after the call was sent.
  silent = createHttpServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
});

afterAll(async () => {
  silent?.closeAllConnections();
  silent?.close();
  await emulator?.close();
});

function clientAt(url: string, requestTimeout = 5_000): SageMakerRuntime {
  return new SageMakerRuntime({
    endpoint: url,
    region: "eu-west-1",
    credentials: async () => ({ accessKeyId: "AKIDLOCALTEST", secretAccessKey: "local-secret" }),
    connectionTimeout: 1_000,
    requestTimeout,
  });
}

const body = new TextEncoder().encode(JSON.stringify({ messages: [{ role: "user", content: "hi" }] }));

async function callError(
  url: string,
  options: { fault?: Fault; requestTimeout?: number } = {},
): Promise<unknown> {
  if (options.fault) emulator.injectFault(ENDPOINT, { ...options.fault, times: 1 });
  const client = clientAt(url, options.requestTimeout);
  try {
    await client.invokeEndpoint({ endpointName: ENDPOINT, contentType: "application/json", body });
  } catch (err) {
    return err;
  } finally {
    client.destroy();
  }
  throw new Error("expected the call to fail");
}

const injected = (fault: Fault) => callError(emulator.url, { fault });

describe("a failure is retried only when the model cannot have run", () => {
  it.each([
    { error: "ThrottlingException" },
    { error: "ModelNotReadyException" },
    { error: "InternalDependencyException" },
    { error: "ServiceUnavailable" },
    { error: "InternalFailure" },
    { error: "ModelError", originalStatusCode: 429 },
  ] as const)("retries %o", async (fault) => {
    expect(isSafeToRetry(await injected(fault))).toBe(true);
  });

  it.each([
    { error: "ModelError" },
    { error: "ModelError", originalStatusCode: 503 },
    { error: "ModelError", originalStatusCode: 400 },
  ] as const)("never retries %o: the model ran, or refused for good", async (fault) => {
    expect(isSafeToRetry(await injected(fault))).toBe(false);
  });

  it("retries a connection that was refused: the request was never sent", async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, "127.0.0.1", () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
    });
    const err = await callError(`http://127.0.0.1:${closedPort}`);
    expect(err).toMatchObject({ name: "ECONNREFUSED", notSent: true });
    expect(isSafeToRetry(err)).toBe(true);
  });

  it("retries a call whose pooled connection the server had closed, and not one reset on a new connection", async () => {
    // Answers the first request on each connection with keep-alive, then resets the connection on the next bytes.
    const resetting = createServer((socket) => {
      let answered = false;
      socket.on("data", () => {
        if (answered) return socket.resetAndDestroy();
        answered = true;
        socket.write(
          "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\n{}",
        );
      });
    });
    await new Promise<void>((resolve) => resetting.listen(0, "127.0.0.1", resolve));
    const client = clientAt(`http://127.0.0.1:${(resetting.address() as { port: number }).port}`);
    const call = () =>
      client
        .invokeEndpoint({ endpointName: ENDPOINT, contentType: "application/json", body })
        .catch((e: unknown) => e);
    try {
      expect(Buffer.from(((await call()) as { body: Uint8Array }).body).toString()).toBe("{}");
      const stale = await call();
      expect(stale).toMatchObject({ name: "ECONNRESET", notSent: true });
      expect(isSafeToRetry(stale)).toBe(true);
    } finally {
      client.destroy();
      resetting.close();
    }
    // A reset on a fresh connection may come after the request was read: never retried.
    const fresh = createServer((socket) => socket.once("data", () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => fresh.listen(0, "127.0.0.1", resolve));
    const err = await callError(`http://127.0.0.1:${(fresh.address() as { port: number }).port}`);
    fresh.close();
    expect(err).toMatchObject({ name: "ECONNRESET", notSent: false });
    expect(isSafeToRetry(err)).toBe(false);
  });

  it("never retries a request that timed out after it was sent, nor one abandoned at the deadline", async () => {
    const { port } = silent.address() as { port: number };
    const timedOut = await callError(`http://127.0.0.1:${port}`, { requestTimeout: 200 });
    expect(timedOut).toMatchObject({ name: "TimeoutError" });
    expect(isSafeToRetry(timedOut)).toBe(false);

    const client = clientAt(`http://127.0.0.1:${port}`);
    const aborted = await client
      .invokeEndpoint(
        { endpointName: ENDPOINT, body: new Uint8Array(), contentType: "application/json" },
        AbortSignal.timeout(100),
      )
      .catch((e: unknown) => e);
    client.destroy();
    expect(aborted).toMatchObject({ name: "AbortError" });
    expect(isSafeToRetry(aborted)).toBe(false);
  });

  it("never retries a model's stream that broke: those errors come after the stream opened", () => {
    for (const name of ["ModelStreamError", "InternalStreamFailure"]) {
      expect(isSafeToRetry(Object.assign(new Error("broke"), { name }))).toBe(false);
    }
  });
});

describe("planRetry", () => {
  const throttle = Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException" });

  it("backs off exponentially with full jitter, from BACKOFF_BASE_MS", () => {
    expect(planRetry(throttle, 0, 20_000, () => 0.999)).toEqual({ delayMs: BACKOFF_BASE_MS * 0.999 });
    expect(planRetry(throttle, 1, 20_000, () => 0.999)).toEqual({ delayMs: 2 * BACKOFF_BASE_MS * 0.999 });
    expect(planRetry(throttle, 0, 20_000, () => 0)).toEqual({ delayMs: 0 });
  });

  it("never waits longer than the cap, for any draw", () => {
    fc.assert(
      fc.property(
        fc.nat(MAX_RETRIES_PER_CALL - 1),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (r, u) => {
          const plan = planRetry(throttle, r, 60_000, () => u);
          expect("delayMs" in plan).toBe(true);
          if ("delayMs" in plan) {
            expect(plan.delayMs).toBeGreaterThanOrEqual(0);
            expect(plan.delayMs).toBeLessThanOrEqual(Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** r));
          }
        },
      ),
    );
  });

  it("stops after MAX_RETRIES_PER_CALL retries", () => {
    expect(planRetry(throttle, MAX_RETRIES_PER_CALL, 20_000)).toEqual({ refused: "call_budget" });
  });

  it("refuses a retry that would not leave MIN_ATTEMPT_MS before the deadline", () => {
    expect(planRetry(throttle, 0, MIN_ATTEMPT_MS + BACKOFF_BASE_MS, () => 0.999)).toHaveProperty("delayMs");
    expect(planRetry(throttle, 0, MIN_ATTEMPT_MS - 1, () => 0)).toEqual({ refused: "deadline" });
    expect(planRetry(throttle, 0, Number.NaN, () => 0)).toEqual({ refused: "deadline" });
  });

  it("waits the retry-after SageMaker names, and refuses when that is past the deadline", async () => {
    const err = await injected({ error: "ThrottlingException", retryAfterSeconds: 3 });
    expect(planRetry(err, 0, 20_000, () => 0)).toEqual({ delayMs: 3_000 });
    expect(planRetry(err, 0, 3_000 + MIN_ATTEMPT_MS - 1)).toEqual({ refused: "deadline" });
  });

  it("refuses what is not safe to retry before anything else", async () => {
    expect(planRetry(await injected({ error: "ModelError" }), 0, 20_000)).toEqual({
      refused: "not_retryable",
    });
  });
});

describe("the per-endpoint retry budget", () => {
  const op = fc.constantFrom("call" as const, "retry" as const);

  it("grants at most RETRY_BURST + calls / CALLS_PER_RETRY retries over any stretch of calls", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const budget = new RetryBudget();
        const granted = ops.map((o) => {
          if (o === "retry") return budget.trySpend();
          budget.recordCall();
          return false;
        });
        for (let from = 0; from < ops.length; from += 7) {
          for (let to = from + 1; to <= ops.length; to += 5) {
            const calls = ops.slice(from, to).filter((o) => o === "call").length;
            const retries = granted.slice(from, to).filter(Boolean).length;
            expect(retries).toBeLessThanOrEqual(RETRY_BURST + calls / CALLS_PER_RETRY);
          }
        }
      }),
    );
  });

  it("starts with RETRY_BURST retries, then earns one per CALLS_PER_RETRY calls", () => {
    const budget = new RetryBudget();
    for (let i = 0; i < RETRY_BURST; i++) expect(budget.trySpend()).toBe(true);
    expect(budget.trySpend()).toBe(false);
    for (let i = 0; i < CALLS_PER_RETRY - 1; i++) budget.recordCall();
    expect(budget.trySpend()).toBe(false);
    budget.recordCall();
    expect(budget.trySpend()).toBe(true);
    expect(budget.trySpend()).toBe(false);
  });

  it("saves up no more than RETRY_BURST retries, however long the endpoint was healthy", () => {
    const budget = new RetryBudget();
    for (let i = 0; i < 10_000; i++) budget.recordCall();
    const granted = Array.from({ length: RETRY_BURST * 2 }, () => budget.trySpend()).filter(Boolean);
    expect(granted).toHaveLength(RETRY_BURST);
  });
});

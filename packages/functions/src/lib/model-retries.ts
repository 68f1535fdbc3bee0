/**
 * Atrium's one retry policy for model calls (docs/adr/0011-retries-and-model-errors.md). The SageMaker
 * Runtime client makes one attempt per call (sagemaker-runtime.ts); every attempt goes through `callModel`, which
 * knows the call's deadline, its endpoint and that no byte has been streamed yet. It retries only what
 * cannot have run the model: throttling, not-ready, SageMaker's own transient failures, and connections
 * that never reached it. Admission and settle sit outside, so the call is charged once however many
 * attempts it took. When an endpoint's attempts end in a transient failure, the call's fallbacks
 * (docs/adr/0013-circuit-breaker-and-fallback.md) are tried the same way.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { AtriumError } from "@atrium/core/errors";
import type { Route } from "@atrium/core/route";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { TenantContext } from "./middleware";
import { fromSageMakerError, modelTimedOut, retryAfterMsOf, withNote } from "./model-errors";
import { logger, metrics } from "./observability";
import { retryBudgetFor } from "./retry-budget";
import type { SageMakerCallError } from "./sagemaker-runtime";

/** Two retries ride out a brief throttle or blip; more would only queue behind the same overload. */
export const MAX_RETRIES_PER_CALL = 2;

/** The first retry waits up to this (full jitter), doubling per retry: throttles clear in a few hundred ms. */
export const BACKOFF_BASE_MS = 250;

/** No jittered wait is longer than this: a call has at most 22 s in all (ADR 0007). */
export const BACKOFF_CAP_MS = 2_000;

/** A retry must leave at least this before the call's deadline, or it could only end in a 504. */
export const MIN_ATTEMPT_MS = 1_000;

/** Failures SageMaker answers before the model runs, or from its own front end: another attempt is safe. */
const RETRYABLE_ERRORS = new Set([
  "ThrottlingException",
  "ModelNotReadyException",
  "InternalDependencyException",
  "ServiceUnavailable",
  "InternalFailure",
]);

/** Told when an endpoint refuses a call for capacity: fair share listens (docs/adr/0012-fair-share.md). */
let capacityRefused: ((endpointName: string) => Promise<void>) | undefined;

export function onCapacityRefusal(listener: (endpointName: string) => Promise<void>): void {
  capacityRefused = listener;
}

/** The endpoint had no room for the call: a sign of contention for fair share. */
export function refusedForCapacity(err: unknown): boolean {
  const e = (err ?? {}) as Partial<SageMakerCallError>;
  if (e.name === "ThrottlingException" || e.name === "ModelNotReadyException") return true;
  return e.name === "ModelError" && e.originalStatusCode === 429;
}

/** Whether another attempt cannot make the model do the same work twice. */
export function isSafeToRetry(err: unknown): boolean {
  const e = (err ?? {}) as Partial<SageMakerCallError>;
  if (e.name && RETRYABLE_ERRORS.has(e.name)) return true;
  // The model's own 429: its container refused the call before working on it.
  if (e.name === "ModelError") return e.originalStatusCode === 429;
  // Refused, no address, or the connect timeout (not the request timeout, which fires after the request was sent).
  return e.notSent === true;
}

/** Why a failed attempt is not tried again. */
export type NoRetry = "not_retryable" | "call_budget" | "deadline" | "endpoint_budget";

/**
 * Whether, and after how long, to try a failed attempt again: `retries` already made, `timeLeftMs`
 * until the call's deadline. The wait is the error's own `retry-after`, or a full-jitter exponential
 * backoff; the endpoint budget is checked by the caller, last, so it is only spent on a retry that runs.
 */
export function planRetry(
  err: unknown,
  retries: number,
  timeLeftMs: number,
  random: () => number = Math.random,
): { delayMs: number } | { refused: NoRetry } {
  if (!isSafeToRetry(err)) return { refused: "not_retryable" };
  if (retries >= MAX_RETRIES_PER_CALL) return { refused: "call_budget" };
  const delayMs = retryAfterMsOf(err) || random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retries);
  // Written so an unknown time left (NaN) refuses too.
  if (!(delayMs + MIN_ATTEMPT_MS <= timeLeftMs)) return { refused: "deadline" };
  return { delayMs };
}

/**
 * The circuit breaker (docs/adr/0013-circuit-breaker-and-fallback.md), as the seam sees it: whether
 * a fallback may be sent to an endpoint now, and how each endpoint's part of a call ended.
 */
export interface EndpointHealth {
  /** Whether the endpoint's breaker lets this call through (it may make the call its probe). */
  admit(context: TenantContext, route: Route): Promise<boolean>;
  /** The call is done with the endpoint: `failed` when its failure counts against the endpoint. */
  outcome(context: TenantContext, route: Route, failed: boolean): Promise<void>;
}

let endpointHealth: EndpointHealth | undefined;

export function onEndpointHealth(health: EndpointHealth): void {
  endpointHealth = health;
}

/** Failures that name SageMaker's own errors, of the endpoint rather than of the request or the model. */
const ENDPOINT_FAILURES = new Set([
  "InternalDependencyException",
  "ServiceUnavailable",
  "InternalFailure",
  "ModelNotReadyException",
  "InternalStreamFailure",
  "TimeoutError",
  "AbortError",
]);

/**
 * Whether a failure, once retries are over, counts against the endpoint's breaker: SageMaker's own
 * 5xx and 530, not-ready, timeouts, and connections that broke or never got an answer. Not a
 * throttle (capacity: fair share's job), not a model's 4xx, and not a model's 5xx either: one
 * tenant's requests that crash the model would otherwise cut every tenant off the endpoint.
 */
export function countsAgainstEndpoint(err: unknown): boolean {
  const e = (err ?? {}) as { name?: string; code?: unknown };
  if (e.name && ENDPOINT_FAILURES.has(e.name)) return true;
  // A system error of the connection (ECONNREFUSED, ECONNRESET, ETIMEDOUT, ...): no answer at all.
  // Atrium's SageMaker client names its failure by it; Node's own errors carry it as `code`.
  return [e.name, e.code].some((code) => typeof code === "string" && /^E[A-Z]+$/.test(code));
}

/** How one endpoint's part of a call ended, when it did not answer. */
interface EndpointFailure {
  cause: unknown;
  answer: AtriumError;
  /** The call's deadline passed: no other endpoint is tried. */
  timedOut: boolean;
}

/**
 * Runs `attempt` on `route` until it succeeds or may not be retried, then, when the failure is
 * transient and the call still has time, on the call's fallbacks in order (those whose breaker lets
 * it through); maps the last failure to Atrium's error, saying what was tried. Every model call
 * attempt goes through here, before the first streamed byte: the seam for endpoint health, fair
 * share and fallback.
 */
export async function callModel<T>(
  context: TenantContext,
  route: Route,
  attempt: (route: Route) => Promise<T>,
): Promise<T> {
  for (let target = route; ; ) {
    const result = await attemptWithRetries(context, target, attempt);
    const failed = "failure" in result;
    const counted = failed && (result.failure.timedOut || countsAgainstEndpoint(result.failure.cause));
    await endpointHealth?.outcome(context, target, counted);
    if (!failed) return result.value;
    const { failure } = result;
    // Only where the model cannot have run, and another attempt can still end before the deadline.
    const fallBack =
      !failure.timedOut &&
      isSafeToRetry(failure.cause) &&
      context.deadlineAt - performance.now() >= MIN_ATTEMPT_MS;
    const next = fallBack ? await nextFallback(context) : undefined;
    if (!next) throw failure.answer;
    recordFallback(context, next, target);
    target = next;
  }
}

/** The first of the call's remaining fallbacks whose breaker lets it through, taken off the list. */
async function nextFallback(context: TenantContext): Promise<Route | undefined> {
  const fallbacks = context.routing?.fallbacks ?? [];
  for (let next = fallbacks.shift(); next; next = fallbacks.shift()) {
    if (!endpointHealth || (await endpointHealth.admit(context, next))) return next;
  }
  return undefined;
}

/**
 * The call goes to `route`, a fallback, instead of `from`: the answer says so, and the call is
 * recorded (the ledger's shared/dedicated split) under the endpoint actually called.
 */
export function recordFallback(context: TenantContext, route: Route, from: Route): void {
  context.responseHeaders["x-atrium-fallback"] = route.endpointName;
  if (context.call) context.call = { ...context.call, route: route.kind };
  metrics.addMetric("ModelFallbacks", MetricUnit.Count, 1);
  logger.info("model call falls back", {
    from: from.endpointName,
    to: route.endpointName,
    route: route.kind,
  });
}

/** The attempts on one endpoint, retried only where safe; its answer, or why it gave up. */
async function attemptWithRetries<T>(
  context: TenantContext,
  route: Route,
  attempt: (route: Route) => Promise<T>,
): Promise<{ value: T } | { failure: EndpointFailure }> {
  const budget = retryBudgetFor(route.endpointName);
  budget.recordCall();
  const timedOut = (cause: unknown) => ({
    failure: { cause, answer: modelTimedOut(route.model), timedOut: true },
  });
  for (let retries = 0; ; retries += 1) {
    try {
      return { value: await attempt(route) };
    } catch (err) {
      if (context.deadline.aborted) return timedOut(err);
      if (err instanceof AtriumError) throw err;
      if (refusedForCapacity(err)) await capacityRefused?.(route.endpointName);
      let plan = planRetry(err, retries, context.deadlineAt - performance.now());
      if ("delayMs" in plan && !budget.trySpend()) {
        plan = { refused: "endpoint_budget" };
        metrics.addMetric("RetryBudgetExhausted", MetricUnit.Count, 1);
      }
      const errorName = (err as Error | undefined)?.name;
      if ("refused" in plan) {
        const mapped = fromSageMakerError(err, route.model, context.tenant);
        const note = retryNote(retries, plan.refused);
        return { failure: { cause: err, answer: note ? withNote(mapped, note) : mapped, timedOut: false } };
      }
      metrics.addMetric("ModelRetries", MetricUnit.Count, 1);
      logger.info("model call retried", { errorName, retry: retries + 1, delayMs: Math.round(plan.delayMs) });
      const slept = await sleep(plan.delayMs, undefined, { signal: context.deadline }).then(
        () => true,
        () => false,
      );
      if (!slept) return timedOut(err);
    }
  }
}

/** What the client is told Atrium already tried, so it can judge its own retry. */
function retryNote(retries: number, refused: NoRetry): string | undefined {
  const tried = retries === 0 ? "" : `Atrium retried the call ${retries} time${retries === 1 ? "" : "s"}`;
  switch (refused) {
    case "not_retryable":
      return tried ? `${tried} before this failure.` : undefined;
    case "call_budget":
      return `${tried}, the most it retries one call.`;
    case "deadline":
      return `${tried || "Atrium did not retry it"}: another attempt would not end before the call's deadline.`;
    case "endpoint_budget":
      return `${tried || "Atrium did not retry it"}: this endpoint has failed too often lately for more retries.`;
  }
}

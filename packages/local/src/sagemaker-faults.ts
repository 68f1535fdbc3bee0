/**
 * What goes wrong at an emulated endpoint, applied by SageMaker's front end before the model runs:
 * the conditions a person sets while the platform runs (latency ± jitter, an error rate, a stream
 * that breaks, reduced capacity), and the one-off faults tests queue with `injectFault`.
 */
import { invalidRequest } from "@atrium/core/errors";
import {
  type ErrorContext,
  type InjectableError,
  type InjectedErrorDetails,
  injectedError,
  type WireError,
} from "./sagemaker-errors";
import type { StreamFault } from "./sagemaker-stream";

/** What one call suffers; with an `error`, its details (a ModelError's originalStatusCode, a retry-after). */
export interface Fault extends InjectedErrorDetails {
  latencyMs?: number;
  /** Answered instead of the model's reply, before any byte of a stream. */
  error?: InjectableError;
  /** Streamed calls only: this exception event ends the stream after `afterParts` payload parts. */
  streamError?: StreamFault["streamError"];
  afterParts?: number;
  /** Tests' faults only: how many calls it applies to (default: until cleared). */
  times?: number;
}

/** An endpoint's standing conditions, as set through the control route or `atrium local fault set`. */
export interface EndpointConditions {
  /** Added before the call reaches the model: the model is slow. */
  latencyMs?: number;
  /** The added latency varies uniformly within ± this. */
  jitterMs?: number;
  /** The share of calls (0..1) answered with `error` instead of the model's reply. */
  errorRate?: number;
  error?: InjectableError;
  /** With `error: "ModelError"`: the status the failing container answered (default 500). */
  originalStatusCode?: number;
  /** Every streamed call ends with this exception event after `afterParts` payload parts. */
  streamError?: StreamFault["streamError"];
  afterParts?: number;
  /** At most this many calls in flight; one more is refused at once (see atCapacity). */
  capacity?: number;
}

export interface EndpointFaultState {
  endpointName: string;
  conditions: EndpointConditions;
  inFlight: number;
}

// Object keys, so the compiler keeps each list equal to its type as the type grows.
export const INJECTABLE_ERRORS = Object.keys({
  ModelError: true,
  ThrottlingException: true,
  ServiceUnavailable: true,
  InternalFailure: true,
  ModelNotReadyException: true,
  InternalDependencyException: true,
} satisfies Record<InjectableError, true>) as InjectableError[];

export const STREAM_ERRORS = Object.keys({
  ModelStreamError: true,
  InternalStreamFailure: true,
} satisfies Record<StreamFault["streamError"], true>) as StreamFault["streamError"][];

// Past SageMaker's 60-second container timeout a latency only shows the gateway's own timeouts.
const MAX_LATENCY_MS = 300_000;
const MAX_CAPACITY = 10_000;

const CONDITION_NAMES = [
  "latencyMs",
  "jitterMs",
  "errorRate",
  "error",
  "originalStatusCode",
  "streamError",
  "afterParts",
  "capacity",
] as const satisfies readonly (keyof EndpointConditions)[];

interface QueuedFault extends Fault {
  remaining: number;
}

export class EndpointFaults {
  private readonly conditions = new Map<string, EndpointConditions>();
  private readonly queued = new Map<string, QueuedFault[]>();
  private readonly inFlight = new Map<string, number>();

  /** `random` draws the error rate's and the jitter's chance (tests pass a fixed sequence). */
  constructor(private readonly random: () => number = Math.random) {}

  /** Replaces the endpoint's conditions; none at all removes them. */
  set(endpointName: string, conditions: EndpointConditions): void {
    if (Object.keys(conditions).length === 0) this.conditions.delete(endpointName);
    else this.conditions.set(endpointName, { ...conditions });
  }

  /** Tests: queues a fault; the oldest still in force applies, `times` counting down per call. */
  inject(endpointName: string, fault: Fault): void {
    if (fault.times !== undefined && fault.times <= 0) return;
    const queue = this.queued.get(endpointName) ?? [];
    queue.push({ ...fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
    this.queued.set(endpointName, queue);
  }

  /** Removes conditions and queued faults, of one endpoint or of all; returns the endpoints cleared. */
  clear(endpointName?: string): string[] {
    const names = endpointName === undefined ? [...this.conditions.keys()] : [endpointName];
    if (endpointName === undefined) {
      this.conditions.clear();
      this.queued.clear();
    } else {
      this.conditions.delete(endpointName);
      this.queued.delete(endpointName);
    }
    return names;
  }

  state(endpointName: string): EndpointFaultState {
    return {
      endpointName,
      conditions: { ...this.conditions.get(endpointName) },
      inFlight: this.inFlight.get(endpointName) ?? 0,
    };
  }

  /** Endpoints with conditions or with calls in flight, by name. */
  list(): EndpointFaultState[] {
    const busy = [...this.inFlight].filter(([, n]) => n > 0).map(([name]) => name);
    const names = new Set([...this.conditions.keys(), ...busy]);
    return [...names].sort().map((name) => this.state(name));
  }

  /**
   * Takes one of the endpoint's places for a call; returns how to give it back, or undefined when
   * the endpoint is at its capacity.
   */
  enter(endpointName: string): (() => void) | undefined {
    const inFlight = this.inFlight.get(endpointName) ?? 0;
    const capacity = this.conditions.get(endpointName)?.capacity;
    if (capacity !== undefined && inFlight >= capacity) return undefined;
    this.inFlight.set(endpointName, inFlight + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.inFlight.get(endpointName) ?? 1) - 1;
      if (left > 0) this.inFlight.set(endpointName, left);
      else this.inFlight.delete(endpointName);
    };
  }

  /** What this call to the endpoint suffers: a queued test fault first, else its conditions' draw. */
  draw(endpointName: string): Fault | undefined {
    const queue = this.queued.get(endpointName);
    const head = queue?.[0];
    if (queue && head) {
      head.remaining -= 1;
      if (head.remaining <= 0) queue.shift();
      if (queue.length === 0) this.queued.delete(endpointName);
      return head;
    }
    const conditions = this.conditions.get(endpointName);
    if (!conditions) return undefined;
    const {
      latencyMs = 0,
      jitterMs = 0,
      errorRate = 0,
      error,
      originalStatusCode,
      streamError,
      afterParts,
    } = conditions;
    const fault: Fault = {};
    if (latencyMs > 0) fault.latencyMs = Math.round(latencyMs + (this.random() * 2 - 1) * jitterMs);
    if (error && this.random() < errorRate) {
      fault.error = error;
      if (originalStatusCode !== undefined) fault.originalStatusCode = originalStatusCode;
    }
    if (streamError) Object.assign(fault, { streamError, afterParts: afterParts ?? 0 });
    return fault;
  }
}

/**
 * A call beyond the endpoint's capacity. SageMaker does not queue calls at a saturated endpoint: it
 * refuses them at once with ThrottlingException (HTTP 400), as docs/local-faults.md records.
 */
export function atCapacity(context: ErrorContext): WireError {
  return injectedError("ThrottlingException", context);
}

/** Checks and completes conditions sent by a person; throws a 400 AtriumError naming the field. */
export function parseConditions(input: unknown): EndpointConditions {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    throw invalidRequest("invalid_fault", "The conditions must be a JSON object.");
  }
  const given = input as Record<string, unknown>;
  const unknown = Object.keys(given).find((key) => !(CONDITION_NAMES as readonly string[]).includes(key));
  if (unknown !== undefined) {
    throw invalidRequest(
      "invalid_fault",
      `Unknown condition '${unknown}'; the conditions are ${CONDITION_NAMES.join(", ")}.`,
      unknown,
    );
  }
  const conditions: EndpointConditions = {};
  const latencyMs = wholeNumber(given, "latencyMs", 0, MAX_LATENCY_MS);
  if (given.jitterMs !== undefined && latencyMs === undefined) {
    throw invalidRequest("invalid_fault", "jitterMs goes with latencyMs only.", "jitterMs");
  }
  // At most the latency itself, so the jittered latency never goes below zero.
  const jitterMs = wholeNumber(given, "jitterMs", 0, latencyMs ?? 0);
  if (latencyMs !== undefined) conditions.latencyMs = latencyMs;
  if (jitterMs !== undefined) conditions.jitterMs = jitterMs;

  const errorRate = given.errorRate;
  if (errorRate !== undefined && (typeof errorRate !== "number" || !(errorRate >= 0 && errorRate <= 1))) {
    throw invalidRequest("invalid_fault", "errorRate must be a number from 0 to 1.", "errorRate");
  }
  const error = oneOf(given, "error", INJECTABLE_ERRORS);
  const originalStatusCode = wholeNumber(given, "originalStatusCode", 400, 599);
  if (originalStatusCode !== undefined && error !== "ModelError") {
    throw invalidRequest(
      "invalid_fault",
      "originalStatusCode goes with error ModelError only.",
      "originalStatusCode",
    );
  }
  // A rate alone throttles; an error alone fails every call.
  if (errorRate !== undefined || error !== undefined) {
    conditions.errorRate = errorRate ?? 1;
    conditions.error = error ?? "ThrottlingException";
    if (originalStatusCode !== undefined) conditions.originalStatusCode = originalStatusCode;
  }

  const streamError = oneOf(given, "streamError", STREAM_ERRORS);
  const afterParts = wholeNumber(given, "afterParts", 0, Number.MAX_SAFE_INTEGER);
  if (afterParts !== undefined && streamError === undefined) {
    throw invalidRequest("invalid_fault", "afterParts goes with streamError only.", "afterParts");
  }
  if (streamError !== undefined) Object.assign(conditions, { streamError, afterParts: afterParts ?? 0 });

  const capacity = wholeNumber(given, "capacity", 1, MAX_CAPACITY);
  if (capacity !== undefined) conditions.capacity = capacity;
  return conditions;
}

function wholeNumber(
  given: Record<string, unknown>,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = given[name];
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw invalidRequest("invalid_fault", `${name} must be a whole number from ${min} to ${max}.`, name);
  }
  return value;
}

function oneOf<T extends string>(
  given: Record<string, unknown>,
  name: string,
  allowed: readonly T[],
): T | undefined {
  const value = given[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw invalidRequest("invalid_fault", `${name} must be one of ${allowed.join(", ")}.`, name);
  }
  return value as T;
}

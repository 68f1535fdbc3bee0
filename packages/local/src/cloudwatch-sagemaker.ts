import { valuesAggregate } from "./cloudwatch-statistics";
import type { Datum, MetricStore } from "./cloudwatch-store";
import type { WireError } from "./sagemaker-errors";

/**
 * The metrics SageMaker publishes for a real-time endpoint, from what the local SageMaker emulator
 * sees: per call in `AWS/SageMaker` (Invocations, InvocationsPerInstance, Invocation4XXErrors,
 * Invocation5XXErrors, InvocationModelErrors, ModelLatency and OverheadLatency in microseconds), and once a minute in
 * `/aws/sagemaker/Endpoints` a stand-in for CPUUtilization and GPUUtilization: the share of the
 * minute in which the endpoint had a call in flight (the emulator has no processor to measure).
 * Dimensions: EndpointName and VariantName.
 */

export interface InvocationSpan {
  /** The model has answered (or its stream has ended). */
  modelDone(): void;
  /** The call is answered; `error` is what the caller got instead of the model's reply. */
  end(error?: WireError): void;
}

/** What the SageMaker emulator tells about each call to an endpoint that exists. */
export interface InvocationObserver {
  /** At the start of the model's work; `arrivedAt` (performance.now()) is when the request was read. */
  begin(endpointName: string, variantName: string, arrivedAt: number): InvocationSpan;
}

export const INVOCATION_NAMESPACE = "AWS/SageMaker";
export const UTILISATION_NAMESPACE = "/aws/sagemaker/Endpoints";
const UTILISATION_PERIOD_MS = 60_000;

interface Busy {
  endpointName: string;
  variantName: string;
  inFlight: number;
  /** performance.now() since when a call has been in flight, while one is. */
  busySince: number;
  /** Busy time in the current window before `busySince`. */
  busyMs: number;
}

export class SageMakerMetrics implements InvocationObserver {
  private readonly variants = new Map<string, Busy>();
  private windowStart = performance.now();
  private windowStartedAt = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: MetricStore,
    utilisationPeriodMs = UTILISATION_PERIOD_MS,
  ) {
    this.timer = setInterval(() => this.publishUtilisation(), utilisationPeriodMs);
    this.timer.unref();
  }

  begin(endpointName: string, variantName: string, arrivedAt: number): InvocationSpan {
    const busy = this.busyOf(endpointName, variantName);
    const modelStart = performance.now();
    if (busy.inFlight++ === 0) busy.busySince = modelStart;
    let modelEnd: number | undefined;
    let ended = false;
    return {
      modelDone: () => {
        modelEnd ??= performance.now();
      },
      end: (error) => {
        if (ended) return;
        ended = true;
        const end = performance.now();
        if (--busy.inFlight === 0) busy.busyMs += end - Math.max(busy.busySince, this.windowStart);
        const modelMicros = ((modelEnd ?? end) - modelStart) * 1000;
        const totalMicros = (end - arrivedAt) * 1000;
        this.publishInvocation(busy, error, modelMicros, Math.max(0, totalMicros - modelMicros));
      },
    };
  }

  /** Publishes each known variant's busy share of the window that ends now, and starts the next. */
  publishUtilisation(): void {
    const now = performance.now();
    const windowMs = now - this.windowStart;
    if (windowMs <= 0) return;
    for (const busy of this.variants.values()) {
      const ongoing = busy.inFlight > 0 ? now - Math.max(busy.busySince, this.windowStart) : 0;
      const percent = Math.min(100, ((busy.busyMs + ongoing) / windowMs) * 100);
      const at = this.windowStartedAt;
      this.put(UTILISATION_NAMESPACE, "CPUUtilization", busy, { at, unit: "Percent", value: percent });
      this.put(UTILISATION_NAMESPACE, "GPUUtilization", busy, { at, unit: "Percent", value: percent });
      busy.busyMs = 0;
    }
    this.windowStart = now;
    this.windowStartedAt = Date.now();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private publishInvocation(
    busy: Busy,
    error: WireError | undefined,
    modelMicros: number,
    overheadMicros: number,
  ) {
    const at = Date.now();
    const failure = errorClass(error);
    this.put(INVOCATION_NAMESPACE, "Invocations", busy, { at, unit: "None", value: 1 });
    // One instance behind every emulated endpoint.
    this.put(INVOCATION_NAMESPACE, "InvocationsPerInstance", busy, { at, unit: "None", value: 1 });
    this.put(INVOCATION_NAMESPACE, "Invocation4XXErrors", busy, {
      at,
      unit: "None",
      value: failure === 4 ? 1 : 0,
    });
    this.put(INVOCATION_NAMESPACE, "Invocation5XXErrors", busy, {
      at,
      unit: "None",
      value: failure === 5 ? 1 : 0,
    });
    // The model's own failures (a non-2xx answer, no answer at all), injected or real.
    this.put(INVOCATION_NAMESPACE, "InvocationModelErrors", busy, {
      at,
      unit: "None",
      value: error?.code === "ModelError" ? 1 : 0,
    });
    // Latencies only when the model took the call (SageMaker's own refusals never reach it).
    if (!error || error.code === "ModelError") {
      this.put(INVOCATION_NAMESPACE, "ModelLatency", busy, {
        at,
        unit: "Microseconds",
        value: Math.round(modelMicros),
      });
      this.put(INVOCATION_NAMESPACE, "OverheadLatency", busy, {
        at,
        unit: "Microseconds",
        value: Math.round(overheadMicros),
      });
    }
  }

  private put(
    namespace: string,
    metricName: string,
    busy: Busy,
    point: { at: number; unit: string; value: number },
  ) {
    const datum: Datum = { at: point.at, unit: point.unit, aggregate: valuesAggregate([point.value]) };
    const dimensions = [
      { Name: "EndpointName", Value: busy.endpointName },
      { Name: "VariantName", Value: busy.variantName },
    ];
    this.store.put({ namespace, metricName, dimensions }, datum);
  }

  private busyOf(endpointName: string, variantName: string): Busy {
    const key = JSON.stringify([endpointName, variantName]);
    let busy = this.variants.get(key);
    if (!busy) {
      busy = { endpointName, variantName, inFlight: 0, busySince: 0, busyMs: 0 };
      this.variants.set(key, busy);
    }
    return busy;
  }
}

/** 4 or 5 by the model's status (a ModelError carries the container's), else SageMaker's own. */
function errorClass(error: WireError | undefined): 4 | 5 | undefined {
  if (!error) return undefined;
  const original = error.code === "ModelError" ? error.extra?.OriginalStatusCode : undefined;
  const status = typeof original === "number" ? original : error.code === "ModelError" ? 500 : error.status;
  return status >= 500 ? 5 : 4;
}

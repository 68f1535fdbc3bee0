/**
 * InvokeEndpointWithResponseStream on the route's endpoint: the model's bytes as SageMaker's
 * PayloadParts deliver them, split anywhere. The call waits for the first part until the call's
 * `deadline` (then 504, refunded), retried only where safe until then (model-retries.ts), and the
 * whole stream runs until its `streamDeadline`, or until its slot's lease is lost (the ticket's
 * `streamEnds`).
 */
import { AtriumError } from "@atrium/core/errors";
import type { Route } from "@atrium/core/route";
import { startUpkeep } from "./call-upkeep";
import { endpointInput, type ModelCall } from "./invoke-model";
import { type TenantContext, timed } from "./middleware";
import { fromSageMakerError, modelTimedOut } from "./model-errors";
import { callModel } from "./model-retries";
import { stoppedBy } from "./stopped-by";
import { tenantClients } from "./tenant-clients";

export interface ModelStream {
  /** The model's content type (text/event-stream for the LLM containers). */
  contentType: string;
  /** The first payload part, read before the call answers, so a model that fails at once is a plain error. */
  first: Uint8Array;
  /** The parts after the first; a failure is an AtriumError. */
  rest: AsyncIterable<Uint8Array>;
  /** Milliseconds from the first request to SageMaker until the first part (retries included). */
  firstPartMs: number;
  /** Stops reading the model (its connection is closed). */
  abort(): void;
  /** The route that answered: the one asked for, or a fallback of it. */
  route: Route;
}

export async function openModelStream(
  route: Route,
  call: ModelCall,
  context: TenantContext,
): Promise<ModelStream> {
  // The stream ends when the function's time is up or its slot's lease could not be kept (ADR 0004).
  const ends = [context.streamDeadline, context.ticket?.streamEnds];
  const stop = stoppedBy(ends);
  const mapped = (err: unknown): AtriumError => {
    if (err instanceof AtriumError) return err;
    if (ends.some((end) => end?.aborted)) return streamTimedOut(route.model);
    return fromSageMakerError(err, route.model, context.tenant);
  };
  const started = performance.now();
  const { sagemaker } = tenantClients(context.tenant.id);
  let answered = route;
  // An attempt lasts until the first part: after it, nothing is retried (the client has bytes).
  const opened = timed(context, () =>
    callModel(context, route, async (target) => {
      answered = target;
      const output = await sagemaker.invokeEndpointWithResponseStream(
        endpointInput(target, call),
        stop.signal,
      );
      // The model has the call and works on its first token: upkeep the call found due goes out now.
      startUpkeep();
      const parts = output.parts[Symbol.asyncIterator]();
      const first = await parts.next();
      return { output, parts, first };
    }),
  );
  // Until the first part, the call's deadline holds: then the model is left and the call refunded.
  const { output, parts, first } = await untilDeadline(opened, context.deadline, () => stop.abort()).catch(
    (err: unknown) => {
      stop.abort();
      if (context.deadline.aborted) throw modelTimedOut(route.model);
      throw mapped(err);
    },
  );
  const firstPartMs = performance.now() - started;
  return {
    contentType: output.contentType ?? "application/octet-stream",
    first: first.done ? new Uint8Array() : first.value,
    firstPartMs,
    rest: {
      // The parts as they come, a failure mapped: no generator of its own between socket and client.
      [Symbol.asyncIterator]: () => ({
        next: (): Promise<IteratorResult<Uint8Array>> =>
          first.done
            ? Promise.resolve({ done: true, value: undefined })
            : parts.next().catch((err: unknown) => {
                throw mapped(err);
              }),
      }),
    },
    abort: () => stop.abort(),
    route: answered,
  };
}

/** `work`, or a rejection when `deadline` fires first (`onTimeout` is called then). */
function untilDeadline<T>(work: Promise<T>, deadline: AbortSignal, onTimeout: () => void): Promise<T> {
  if (deadline.aborted) {
    onTimeout();
    return Promise.reject(deadline.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const timedOut = () => {
      onTimeout();
      reject(deadline.reason);
    };
    deadline.addEventListener("abort", timedOut, { once: true });
    work.then(resolve, reject).finally(() => deadline.removeEventListener("abort", timedOut));
  });
}

/** A stream still running when the function must end: stopped, and settled for what was produced. */
export function streamTimedOut(model: string): AtriumError {
  return new AtriumError(
    504,
    "api_error",
    "model_timeout",
    `The model '${model}' did not finish in time; the stream was stopped and only the tokens produced were charged.`,
  );
}

/**
 * SageMaker Runtime's failures, buffered and streamed, as Atrium's typed errors, answered by what a
 * client can do about them (docs/adr/0011-retries-and-model-errors.md): a transient failure says when
 * to try again (`retry-after`, `x-should-retry: true`), a permanent one says not to (`x-should-retry: false`).
 */
import { AtriumError, upstream } from "@atrium/core/errors";
import type { Tenant } from "@atrium/core/tenant";
import type { SageMakerCallError } from "./sagemaker-runtime";

/** How long a client is told to wait, by cause, when SageMaker's answer names no time itself. */
export const RETRY_AFTER_SECONDS = {
  /** A throttle (SageMaker's or the model's own 429) usually clears within a second. */
  throttled: 1,
  /** An endpoint still scaling up or loading its model takes longer than a throttle. */
  notReady: 10,
  /** SageMaker's own transient failures (530, 500, 503) and broken streams. */
  transient: 2,
} as const;

/** The model did not answer before the call's deadline; retrying at once would likely wait as long again. */
export function modelTimedOut(model: string): AtriumError {
  const err = upstream(
    504,
    "model_timeout",
    `The model '${model}' did not answer in time; the call was stopped.`,
  );
  err.headers = { "x-should-retry": "false" };
  return err;
}

/**
 * Maps an InvokeEndpoint failure to what the caller can act on, never leaking endpoint internals.
 * HIPAA tenants never see the model's own error text: it may quote the prompt, and error messages
 * travel into logs and traces.
 */
export function fromSageMakerError(
  err: unknown,
  model: string,
  tenant: Pick<Tenant, "compliance">,
): AtriumError {
  const withholdDetails = tenant.compliance.includes("hipaa");
  const e = (err ?? {}) as Partial<SageMakerCallError>;
  const waitSeconds = (fallback: number) => Math.ceil(retryAfterMsOf(err) / 1000) || fallback;
  switch (e.name) {
    case "ModelError": {
      const status = e.originalStatusCode ?? 500;
      if (status === 429) {
        return transient(
          new AtriumError(
            429,
            "api_error",
            "model_overloaded",
            `The model '${model}' is overloaded. Retry shortly.`,
          ),
          waitSeconds(RETRY_AFTER_SECONDS.throttled),
        );
      }
      if (status >= 400 && status < 500) {
        return permanent(
          new AtriumError(
            400,
            "invalid_request_error",
            "model_rejected_request",
            withholdDetails
              ? `The model '${model}' rejected the request (${status}); its reason is withheld because it may quote the request.`
              : `The model '${model}' rejected the request: ${e.originalMessage ?? "no reason given"}`,
          ),
        );
      }
      // The model ran and failed on this request: an automatic retry would spend the GPU again for the same end.
      return permanent(
        upstream(502, "model_error", `The model '${model}' failed while handling the request.`),
      );
    }
    case "ModelStreamError":
      return permanent(
        upstream(502, "model_error", `The model '${model}' failed while streaming its answer.`),
      );
    case "InternalStreamFailure":
      return transient(
        upstream(502, "upstream_error", `The stream from the model '${model}' broke. Retry shortly.`),
        RETRY_AFTER_SECONDS.transient,
      );
    case "ThrottlingException":
      return transient(
        new AtriumError(
          429,
          "api_error",
          "endpoint_throttled",
          `The endpoint serving '${model}' is throttling calls. Retry shortly.`,
        ),
        waitSeconds(RETRY_AFTER_SECONDS.throttled),
      );
    case "ModelNotReadyException":
      return transient(
        upstream(
          503,
          "model_not_ready",
          `The model '${model}' is still scaling up or loading. Retry shortly.`,
        ),
        waitSeconds(RETRY_AFTER_SECONDS.notReady),
      );
    case "InternalDependencyException":
    case "ServiceUnavailable":
    case "InternalFailure":
      return transient(
        upstream(
          503,
          "upstream_unavailable",
          `The endpoint serving '${model}' failed for a moment. Retry shortly.`,
        ),
        waitSeconds(RETRY_AFTER_SECONDS.transient),
      );
    case "ValidationError":
      if (/not found/i.test(e.message ?? "")) {
        // Creating an endpoint takes minutes: an automatic retry within seconds cannot find it either.
        return permanent(
          upstream(
            503,
            "endpoint_unavailable",
            `The endpoint serving '${model}' is not available right now.`,
          ),
        );
      }
      return permanent(
        new AtriumError(
          400,
          "invalid_request_error",
          "invalid_request",
          `The model '${model}' cannot take this request.`,
        ),
      );
    default:
      return upstream(502, "upstream_error", `The model '${model}' could not be reached. Retry shortly.`);
  }
}

/** The wait SageMaker's answer asks for (its Retry-After header, seconds or a date) in milliseconds; 0 if none. */
export function retryAfterMsOf(err: unknown): number {
  const value = (err as Partial<SageMakerCallError> | undefined)?.retryAfter;
  if (!value) return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : Math.max(0, at - Date.now());
}

/** The same error with a sentence added to its message (what Atrium already tried), headers kept. */
export function withNote(err: AtriumError, note: string): AtriumError {
  const noted = new AtriumError(err.status, err.type, err.code, `${err.message} ${note}`, err.param);
  noted.headers = { ...err.headers };
  return noted;
}

function transient(err: AtriumError, retryAfterSeconds: number): AtriumError {
  err.headers = { "retry-after": String(retryAfterSeconds), "x-should-retry": "true" };
  return err;
}

function permanent(err: AtriumError): AtriumError {
  err.headers = { "x-should-retry": "false" };
  return err;
}

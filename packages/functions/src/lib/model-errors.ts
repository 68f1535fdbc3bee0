/** SageMaker Runtime's failures, buffered and streamed, as Atrium's typed errors. */
import { AtriumError, upstream } from "@atrium/core/errors";
import type { Tenant } from "@atrium/core/tenant";

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

interface SdkError {
  name?: string;
  message?: string;
  OriginalStatusCode?: number;
  OriginalMessage?: string;
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
  const e = (err ?? {}) as SdkError;
  switch (e.name) {
    case "ModelError": {
      const status = e.OriginalStatusCode ?? 500;
      if (status >= 400 && status < 500) {
        return new AtriumError(
          400,
          "invalid_request_error",
          "model_rejected_request",
          withholdDetails
            ? `The model '${model}' rejected the request (${status}); its reason is withheld because it may quote the request.`
            : `The model '${model}' rejected the request: ${e.OriginalMessage ?? "no reason given"}`,
        );
      }
      return upstream(
        502,
        "model_error",
        `The model '${model}' failed while handling the request. Retry shortly.`,
      );
    }
    case "ModelStreamError":
      return upstream(502, "model_error", `The model '${model}' failed while streaming its answer.`);
    case "InternalStreamFailure":
      return upstream(502, "upstream_error", `The stream from the model '${model}' broke. Retry shortly.`);
    case "ThrottlingException":
    case "ModelNotReadyException":
      return upstream(
        503,
        "model_overloaded",
        `The model '${model}' is busy or still scaling up. Retry shortly.`,
      );
    case "ValidationError":
      if (/not found/i.test(e.message ?? "")) {
        return upstream(
          503,
          "endpoint_unavailable",
          `The endpoint serving '${model}' is not available right now.`,
        );
      }
      return new AtriumError(
        400,
        "invalid_request_error",
        "invalid_request",
        `The model '${model}' cannot take this request.`,
      );
    default:
      return upstream(502, "upstream_error", `The model '${model}' could not be reached. Retry shortly.`);
  }
}

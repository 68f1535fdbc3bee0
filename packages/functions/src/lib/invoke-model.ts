import { AtriumError, upstream } from "@atrium/core/errors";
import type { Route } from "@atrium/core/route";
import { InvokeEndpointCommand } from "@aws-sdk/client-sagemaker-runtime";
import { type TenantContext, timed } from "./middleware";
import { logger } from "./observability";
import { tenantClients } from "./tenant-clients";

export interface ModelCall {
  body: Uint8Array;
  contentType: string;
  accept?: string;
}

export interface ModelResult {
  body: Uint8Array;
  contentType: string;
}

/**
 * One InvokeEndpoint on the route's endpoint, abandoned at the call's deadline so the call is still
 * refunded and answered in time; SageMaker's errors become Atrium's typed errors.
 */
export async function invokeModel(
  route: Route,
  call: ModelCall,
  context: TenantContext,
): Promise<ModelResult> {
  const command = new InvokeEndpointCommand({
    EndpointName: route.endpointName,
    Body: call.body,
    ContentType: call.contentType,
    ...(call.accept ? { Accept: call.accept } : {}),
    ...(route.targetModel ? { TargetModel: route.targetModel } : {}),
    ...(route.inferenceComponentName ? { InferenceComponentName: route.inferenceComponentName } : {}),
  });
  logger.appendKeys({ model: route.model, route: route.kind, endpointName: route.endpointName });
  try {
    // As the calling tenant: IAM then holds the call to the stage's endpoints and this tenant's adapters.
    const { sagemaker } = tenantClients(context.tenant.id);
    const output = await timed(context, () => sagemaker.send(command, { abortSignal: context.deadline }));
    return {
      body: output.Body ?? new Uint8Array(),
      contentType: output.ContentType ?? "application/octet-stream",
    };
  } catch (err) {
    if (context.deadline.aborted) throw modelTimedOut(route.model);
    // HIPAA: a model's own error text may quote the prompt, and error messages travel into logs and traces.
    const withholdDetails = context.tenant.compliance.includes("hipaa");
    throw fromSageMakerError(err, route.model, { withholdDetails });
  }
}

/** The model did not answer before the call's deadline; retrying at once would likely wait as long again. */
function modelTimedOut(model: string): AtriumError {
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

/** Maps an InvokeEndpoint failure to what the caller can act on, never leaking endpoint internals. */
export function fromSageMakerError(
  err: unknown,
  model: string,
  options: { withholdDetails?: boolean } = {},
): AtriumError {
  const e = (err ?? {}) as SdkError;
  switch (e.name) {
    case "ModelError": {
      const status = e.OriginalStatusCode ?? 500;
      if (status >= 400 && status < 500) {
        return new AtriumError(
          400,
          "invalid_request_error",
          "model_rejected_request",
          options.withholdDetails
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

import type { Route } from "@atrium/core/route";
import { startUpkeep } from "./call-upkeep";
import { type TenantContext, timed } from "./middleware";
import { callModel } from "./model-retries";
import { logger } from "./observability";
import type { InvokeInput } from "./sagemaker-runtime";
import { tenantClients } from "./tenant-clients";

export interface ModelCall {
  body: Uint8Array;
  contentType: string;
  accept?: string;
}

export interface ModelResult {
  body: Uint8Array;
  contentType: string;
  /** The route that answered: `route`, or a fallback of it. */
  route: Route;
}

/**
 * InvokeEndpoint on the route's endpoint (or a fallback of it), retried only where safe (model-retries.ts) and abandoned at
 * the call's deadline so the call is still refunded and answered in time; SageMaker's errors become
 * Atrium's typed errors.
 */
export async function invokeModel(
  route: Route,
  call: ModelCall,
  context: TenantContext,
): Promise<ModelResult> {
  // As the calling tenant: IAM then holds the call to the stage's endpoints and this tenant's adapters.
  const { sagemaker } = tenantClients(context.tenant.id);
  let answered = route;
  const output = await timed(context, () =>
    callModel(context, route, (target) => {
      answered = target;
      // The model has the request once it has gone: upkeep the call found due goes out then.
      return sagemaker.invokeEndpoint(endpointInput(target, call), context.deadline, startUpkeep);
    }),
  );
  return {
    body: output.body,
    contentType: output.contentType ?? "application/octet-stream",
    route: answered,
  };
}

/** The fields every invocation of a route's endpoint sends, streamed or not; logs name the model's route. */
export function endpointInput(route: Route, call: ModelCall): InvokeInput {
  logger.appendKeys({ model: route.model, route: route.kind, endpointName: route.endpointName });
  return {
    endpointName: route.endpointName,
    body: call.body,
    contentType: call.contentType,
    ...(call.accept ? { accept: call.accept } : {}),
    ...(route.targetModel ? { targetModel: route.targetModel } : {}),
    ...(route.inferenceComponentName ? { inferenceComponentName: route.inferenceComponentName } : {}),
  };
}

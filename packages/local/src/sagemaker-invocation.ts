/** One call as SageMaker's front end reads it off the wire, and the record the emulator keeps of it. */
import type { IncomingMessage } from "node:http";
import type { Invocation } from "./sagemaker-stream";

const DEFAULT_REGION = "eu-west-1";

export interface InvocationRecord {
  endpointName: string;
  targetModel?: string;
  inferenceComponentName?: string;
  contentType?: string;
  bytes: number;
  at: number;
  /** InvokeEndpointWithResponseStream calls: the payload parts sent so far (it grows while streaming). */
  streamedParts?: number;
}

export function invocationOf(
  req: IncomingMessage,
  endpointName: string,
  body: Buffer,
  streaming: boolean,
): Invocation {
  const header = (name: string) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(",") : value;
  };
  const invocation: Invocation = { endpointName, region: regionOf(header("authorization")), body };
  const optional = {
    contentType: header("content-type"),
    // The streaming operation's Accept travels as X-Amzn-SageMaker-Accept (its HTTP Accept is the event stream).
    accept: header(streaming ? "x-amzn-sagemaker-accept" : "accept"),
    customAttributes: header("x-amzn-sagemaker-custom-attributes"),
    targetModel: header("x-amzn-sagemaker-target-model"),
    targetVariant: header("x-amzn-sagemaker-target-variant"),
    inferenceComponentName: header("x-amzn-sagemaker-inference-component"),
  };
  for (const [key, value] of Object.entries(optional)) {
    if (value) Object.assign(invocation, { [key]: value });
  }
  return invocation;
}

export function recordOf(invocation: Invocation): InvocationRecord {
  const record: InvocationRecord = {
    endpointName: invocation.endpointName,
    bytes: invocation.body.length,
    at: Date.now(),
  };
  if (invocation.targetModel) record.targetModel = invocation.targetModel;
  if (invocation.inferenceComponentName) record.inferenceComponentName = invocation.inferenceComponentName;
  if (invocation.contentType) record.contentType = invocation.contentType;
  return record;
}

/** The region in the SigV4 credential scope (AKID/date/region/service/aws4_request), for ARNs. */
function regionOf(authorization: string | undefined): string {
  const scope = /Credential=[^/]+\/\d{8}\/([^/]+)\//.exec(authorization ?? "");
  return scope?.[1] ?? DEFAULT_REGION;
}

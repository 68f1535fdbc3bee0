import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { listen, readBody, responseFlushed, safeDecode } from "./http-server";
import { invokeReferenceModel, type ModelReply } from "./reference-model";

/**
 * A local SageMaker Runtime: speaks InvokeEndpoint's restJson1 wire protocol so the unmodified AWS SDK and
 * CLI can call it. Endpoints are served by the built-in reference model or forwarded to a model container.
 */

export type EndpointBackend = { kind: "reference" } | { kind: "container"; url: string };

export interface Fault {
  latencyMs?: number;
  error?:
    | "ModelError"
    | "ThrottlingException"
    | "ServiceUnavailable"
    | "InternalFailure"
    | "ModelNotReadyException";
  times?: number;
}

export interface InvocationRecord {
  endpointName: string;
  targetModel?: string;
  inferenceComponentName?: string;
  contentType?: string;
  bytes: number;
  at: number;
}

export interface SageMakerEmulatorOptions {
  host?: string;
  port?: number;
  /** Which endpoints exist; undefined => SageMaker's ValidationError "Endpoint X of account Y not found." */
  resolveEndpoint: (
    endpointName: string,
  ) => Promise<EndpointBackend | undefined> | EndpointBackend | undefined;
}

export interface SageMakerEmulator {
  url: string;
  invocations(endpointName?: string): InvocationRecord[];
  injectFault(endpointName: string, fault: Fault): void;
  clearFaults(endpointName?: string): void;
  close(): Promise<void>;
}

/** SageMaker's real-time InvokeEndpoint payload limit. */
export const MAX_PAYLOAD_BYTES = 25 * 1024 * 1024;
// IAM cannot run locally, so every caller is this account (the SigV4 signature is never verified).
const ACCOUNT_ID = "000000000000";
const DEFAULT_REGION = "eu-west-1";
// SageMaker gives a container 60 seconds to answer an invocation.
const CONTAINER_TIMEOUT_MS = 60_000;
const ENDPOINT_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const INVOCATIONS_PATH = /^\/endpoints\/([^/]+)\/invocations$/;

type ErrorCode = NonNullable<Fault["error"]> | "ValidationError" | "UnknownOperationException";

interface WireError {
  status: number;
  code: ErrorCode;
  message: string;
  extra?: Record<string, string | number>;
}

interface Invocation {
  endpointName: string;
  region: string;
  body: Buffer;
  contentType?: string;
  accept?: string;
  customAttributes?: string;
  targetModel?: string;
  targetVariant?: string;
  inferenceComponentName?: string;
}

interface ModelResponse extends ModelReply {
  customAttributes?: string;
}

interface ActiveFault extends Fault {
  remaining: number;
}

export async function startSageMakerEmulator(options: SageMakerEmulatorOptions): Promise<SageMakerEmulator> {
  const records: InvocationRecord[] = [];
  const faults = new Map<string, ActiveFault[]>();
  const inFlight = new Set<Promise<void>>();
  let closing = false;

  const handleInvocation = async (invocation: Invocation): Promise<WireError | ModelResponse> => {
    const backend = await options.resolveEndpoint(invocation.endpointName);
    if (!backend) return endpointNotFound(invocation.endpointName);
    records.push(recordOf(invocation));
    const fault = takeFault(faults, invocation.endpointName);
    if (fault?.latencyMs) await sleep(fault.latencyMs);
    if (fault?.error) return injectedError(fault.error, invocation);
    const reply =
      backend.kind === "reference"
        ? invokeReferenceModel(invocation)
        : await invokeContainer(backend.url, invocation);
    if ("code" in reply) return reply;
    if (reply.status < 200 || reply.status >= 300) return modelError(invocation, reply);
    return reply;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A call arriving on a kept-alive socket during close() is still served, then its socket is let go.
    if (closing) res.setHeader("connection", "close");
    const match = req.method === "POST" ? INVOCATIONS_PATH.exec(pathOf(req.url)) : null;
    if (!match?.[1]) {
      await readBody(req, 0);
      return sendError(res, unknownRoute(req));
    }
    const endpointName = safeDecode(match[1]);
    const body = await readBody(req, MAX_PAYLOAD_BYTES);
    if (!body) {
      return sendError(res, validationError(`Request payload exceeds the ${MAX_PAYLOAD_BYTES} byte limit.`));
    }
    if (!ENDPOINT_NAME.test(endpointName)) return sendError(res, invalidEndpointName(endpointName));
    const result = await handleInvocation(invocationOf(req, endpointName, body));
    if ("code" in result) return sendError(res, result);
    sendModelResponse(res, result, req.headers["x-amzn-sagemaker-target-variant"]);
  };

  const server = createServer((req, res) => {
    const done = handle(req, res)
      .catch((err: unknown) => {
        if (!res.headersSent) sendError(res, internalFailure(err));
        else res.destroy();
      })
      .then(() => responseFlushed(res))
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  });
  const url = await listen(server, options.port ?? 0, options.host ?? "127.0.0.1");

  return {
    url,
    invocations: (endpointName) =>
      records
        .filter((r) => endpointName === undefined || r.endpointName === endpointName)
        .map((r) => ({ ...r })),
    injectFault: (endpointName, fault) => {
      if (fault.times !== undefined && fault.times <= 0) return;
      const queue = faults.get(endpointName) ?? [];
      queue.push({ ...fault, remaining: fault.times ?? Number.POSITIVE_INFINITY });
      faults.set(endpointName, queue);
    },
    clearFaults: (endpointName) => {
      if (endpointName === undefined) faults.clear();
      else faults.delete(endpointName);
    },
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
      // Keep-alive sockets that served the last calls are idle now; without this close() would wait on them.
      server.closeAllConnections();
      await closed;
    },
  };
}

/** GET {url}/ping, the health check SageMaker runs against a model container. */
export async function pingContainer(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL("ping", withSlash(url)), { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

/** FIFO: the oldest fault still in force applies; `times` counts down per call and then drops it. */
function takeFault(faults: Map<string, ActiveFault[]>, endpointName: string): Fault | undefined {
  const queue = faults.get(endpointName);
  const head = queue?.[0];
  if (!queue || !head) return undefined;
  head.remaining -= 1;
  if (head.remaining <= 0) queue.shift();
  if (queue.length === 0) faults.delete(endpointName);
  return head;
}

/** POST {url}/invocations as SageMaker forwards to a container: body, types and pass-through headers. */
async function invokeContainer(url: string, invocation: Invocation): Promise<ModelResponse | WireError> {
  const headers: Record<string, string> = {};
  if (invocation.contentType) headers["content-type"] = invocation.contentType;
  if (invocation.accept) headers.accept = invocation.accept;
  if (invocation.customAttributes)
    headers["x-amzn-sagemaker-custom-attributes"] = invocation.customAttributes;
  if (invocation.targetModel) headers["x-amzn-sagemaker-target-model"] = invocation.targetModel;
  try {
    const res = await fetch(new URL("invocations", withSlash(url)), {
      method: "POST",
      headers,
      body: invocation.body,
      signal: AbortSignal.timeout(CONTAINER_TIMEOUT_MS),
    });
    const body = Buffer.from(await res.arrayBuffer());
    const customAttributes = res.headers.get("x-amzn-sagemaker-custom-attributes") ?? undefined;
    return {
      status: res.status,
      contentType: res.headers.get("content-type") ?? "application/octet-stream",
      body,
      ...(customAttributes ? { customAttributes } : {}),
    };
  } catch (err) {
    return containerUnreachable(invocation, err);
  }
}

function invocationOf(req: IncomingMessage, endpointName: string, body: Buffer): Invocation {
  const header = (name: string) => {
    const value = req.headers[name];
    return Array.isArray(value) ? value.join(",") : value;
  };
  const invocation: Invocation = { endpointName, region: regionOf(header("authorization")), body };
  const optional = {
    contentType: header("content-type"),
    accept: header("accept"),
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

function recordOf(invocation: Invocation): InvocationRecord {
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

function sendModelResponse(
  res: ServerResponse,
  reply: ModelResponse,
  targetVariant: string | string[] | undefined,
) {
  const headers: Record<string, string | number> = {
    "content-type": reply.contentType,
    "content-length": reply.body.length,
    "x-amzn-requestid": randomUUID(),
    "x-amzn-invoked-production-variant": typeof targetVariant === "string" ? targetVariant : "AllTraffic",
  };
  if (reply.customAttributes) headers["x-amzn-sagemaker-custom-attributes"] = reply.customAttributes;
  res.writeHead(200, headers);
  res.end(reply.body);
}

/** restJson1 errors: the code goes in `x-amzn-ErrorType`, the modeled members (Message...) in the body. */
function sendError(res: ServerResponse, error: WireError): void {
  const body = Buffer.from(JSON.stringify({ Message: error.message, ...error.extra }));
  res.writeHead(error.status, {
    "content-type": "application/json",
    "content-length": body.length,
    "x-amzn-requestid": randomUUID(),
    "x-amzn-errortype": error.code,
  });
  res.end(body);
}

function validationError(message: string): WireError {
  return { status: 400, code: "ValidationError", message };
}

function endpointNotFound(endpointName: string): WireError {
  return validationError(`Endpoint ${endpointName} of account ${ACCOUNT_ID} not found.`);
}

function invalidEndpointName(endpointName: string): WireError {
  return validationError(
    `1 validation error detected: Value '${endpointName}' at 'endpointName' failed to satisfy constraint: ` +
      "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
  );
}

function unknownRoute(req: IncomingMessage): WireError {
  return {
    status: 404,
    code: "UnknownOperationException",
    message: `No operation at ${req.method ?? "?"} ${pathOf(req.url)}; only InvokeEndpoint is emulated.`,
  };
}

function internalFailure(err: unknown): WireError {
  const detail = err instanceof Error ? err.message : String(err);
  return { status: 500, code: "InternalFailure", message: `The emulator failed: ${detail}` };
}

function logGroupOf(invocation: Invocation): string {
  return `/aws/sagemaker/Endpoints/${invocation.endpointName}`;
}

function logStreamArn(invocation: Invocation): string {
  return `arn:aws:logs:${invocation.region}:${ACCOUNT_ID}:log-group:${logGroupOf(invocation)}`;
}

/** A container's non-2xx answer, as SageMaker reports it: 424 with the original status and body. */
function modelError(invocation: Invocation, reply: ModelReply): WireError {
  const kind = reply.status >= 500 ? "server" : "client";
  const original = reply.body.toString("utf8");
  return {
    status: 424,
    code: "ModelError",
    message:
      `Received ${kind} error (${reply.status}) from model with message "${original}". ` +
      `See log group ${logGroupOf(invocation)} in account ${ACCOUNT_ID} for more information.`,
    extra: {
      OriginalStatusCode: reply.status,
      OriginalMessage: original,
      LogStreamArn: logStreamArn(invocation),
    },
  };
}

/** No HTTP answer at all (refused, reset, timed out): still ModelError, but with no original status. */
function containerUnreachable(invocation: Invocation, err: unknown): WireError {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const detail = cause instanceof Error ? cause.message : String(cause);
  const timedOut = err instanceof Error && err.name === "TimeoutError";
  const reason = timedOut
    ? "timed out waiting for a response from the container"
    : "could not reach the container";
  return {
    status: 424,
    code: "ModelError",
    message: `Invocation of endpoint ${invocation.endpointName} ${reason}: ${detail}`,
    extra: { OriginalMessage: detail, LogStreamArn: logStreamArn(invocation) },
  };
}

function injectedError(error: NonNullable<Fault["error"]>, invocation: Invocation): WireError {
  const name = invocation.endpointName;
  switch (error) {
    case "ModelError":
      return modelError(invocation, {
        status: 500,
        contentType: "text/plain",
        body: Buffer.from("Injected fault: the model container failed"),
      });
    case "ThrottlingException":
      // AWS's common ThrottlingException is a 400; the SDK retries it by name, not by status.
      return { status: 400, code: error, message: "Rate exceeded" };
    case "ModelNotReadyException":
      return {
        status: 429,
        code: error,
        message: `Model for endpoint ${name} is not ready yet (injected fault).`,
      };
    case "ServiceUnavailable":
      return {
        status: 503,
        code: error,
        message: "Service is unavailable, try again later (injected fault).",
      };
    case "InternalFailure":
      return { status: 500, code: error, message: "An internal failure occurred (injected fault)." };
  }
}

function pathOf(url: string | undefined): string {
  return (url ?? "/").split("?")[0] ?? "/";
}

function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

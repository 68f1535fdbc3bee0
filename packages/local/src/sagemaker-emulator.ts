import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { InvocationObserver, InvocationSpan } from "./cloudwatch-sagemaker";
import { postInvocation } from "./container-client";
import { listen, readBody, responseFlushed, safeDecode } from "./http-server";
import { invokeReferenceModel, type ModelReply } from "./reference-model";
import {
  containerUnreachable,
  endpointNotFound,
  injectedError,
  internalFailure,
  invalidEndpointName,
  modelError,
  sendError,
  unknownRoute,
  validationError,
  type WireError,
} from "./sagemaker-errors";
import { FAULTS_PATH, handleFaultControl } from "./sagemaker-fault-control";
import {
  atCapacity,
  type EndpointConditions,
  type EndpointFaultState,
  EndpointFaults,
  type Fault,
} from "./sagemaker-faults";
import { type InvocationRecord, invocationOf, recordOf } from "./sagemaker-invocation";
import { containerHeaders, type Invocation, sendStream, withSlash } from "./sagemaker-stream";

export type { EndpointConditions, EndpointFaultState, Fault, InvocationRecord };

/**
 * A local SageMaker Runtime: speaks InvokeEndpoint's restJson1 wire protocol and
 * InvokeEndpointWithResponseStream's event stream, so the unmodified AWS SDKs and CLI can call it.
 * Endpoints are served by the built-in reference model or forwarded to a model container.
 */

export type EndpointBackend = { kind: "reference" } | { kind: "container"; url: string };

export interface SageMakerEmulatorOptions {
  host?: string;
  port?: number;
  /** Which endpoints exist; undefined => SageMaker's ValidationError "Endpoint X of account Y not found." */
  resolveEndpoint: (
    endpointName: string,
  ) => Promise<EndpointBackend | undefined> | EndpointBackend | undefined;
  /** The reference model's pause between streamed tokens. Default 0. */
  tokenDelayMs?: number;
  /** Told of every call to an existing endpoint, to publish SageMaker's CloudWatch metrics. */
  observer?: InvocationObserver;
  /** Serves the fault controls (/_atrium/faults) to callers with this token; without it they do not exist. */
  adminToken?: string;
  /** Draws the error rate's and the jitter's chance. Default Math.random. */
  random?: () => number;
}

export interface SageMakerEmulator {
  url: string;
  invocations(endpointName?: string): InvocationRecord[];
  /** Tests: queues a fault for the endpoint's next calls (`times`), ahead of its conditions. */
  injectFault(endpointName: string, fault: Fault): void;
  /** Replaces an endpoint's standing conditions (what the control route's PUT does). */
  setConditions(endpointName: string, conditions: EndpointConditions): void;
  faultState(endpointName: string): EndpointFaultState;
  /** Clears the conditions and queued faults of one endpoint, or of all. */
  clearFaults(endpointName?: string): void;
  close(): Promise<void>;
}

/** SageMaker's real-time InvokeEndpoint payload limit. */
export const MAX_PAYLOAD_BYTES = 25 * 1024 * 1024;
// SageMaker gives a container 60 seconds to answer an invocation.
const CONTAINER_TIMEOUT_MS = 60_000;
const ENDPOINT_NAME = /^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$/;
const INVOCATIONS_PATH = /^\/endpoints\/([^/]+)\/(invocations|invocations-response-stream)$/;

interface ModelResponse extends ModelReply {
  customAttributes?: string;
}

interface Admitted {
  backend: EndpointBackend;
  record: InvocationRecord;
  /** Gives back the call's place at the endpoint, once it is answered. */
  release: () => void;
  fault?: Fault;
  span?: InvocationSpan;
}

export async function startSageMakerEmulator(options: SageMakerEmulatorOptions): Promise<SageMakerEmulator> {
  const records: InvocationRecord[] = [];
  const faults = new EndpointFaults(options.random);
  const inFlight = new Set<Promise<void>>();
  let closing = false;

  /**
   * Resolves the endpoint, records the call, takes a place within its capacity and applies its
   * fault's latency and error, as SageMaker's front end would.
   */
  const admit = async (invocation: Invocation, arrivedAt: number): Promise<WireError | Admitted> => {
    const backend = await options.resolveEndpoint(invocation.endpointName);
    if (!backend) return endpointNotFound(invocation.endpointName);
    const record = recordOf(invocation);
    records.push(record);
    const span = options.observer?.begin(
      invocation.endpointName,
      invocation.targetVariant ?? "AllTraffic",
      arrivedAt,
    );
    const refuse = (error: WireError) => {
      span?.end(error);
      return error;
    };
    const release = faults.enter(invocation.endpointName);
    if (!release) return refuse(atCapacity(invocation));
    const fault = faults.draw(invocation.endpointName);
    if (fault?.latencyMs) await sleep(fault.latencyMs);
    if (fault?.error) {
      release();
      return refuse(injectedError(fault.error, invocation, fault));
    }
    return {
      backend,
      record,
      release,
      ...(fault?.streamError ? { fault } : {}),
      ...(span ? { span } : {}),
    };
  };

  const handleInvocation = async (
    invocation: Invocation,
    admitted: Admitted,
  ): Promise<WireError | ModelResponse> => {
    const { backend } = admitted;
    const reply =
      backend.kind === "reference"
        ? invokeReferenceModel(invocation)
        : await invokeContainer(backend.url, invocation);
    admitted.span?.modelDone();
    if ("code" in reply) return reply;
    if (reply.status < 200 || reply.status >= 300) return modelError(invocation, reply);
    return reply;
  };

  const handleStream = async (
    invocation: Invocation,
    admitted: Admitted,
    res: ServerResponse,
  ): Promise<void> => {
    const { backend, record, fault, span } = admitted;
    record.streamedParts = 0;
    // Until the stream ends the model is at work; a stream that throws counts as SageMaker's failure.
    let error: WireError | undefined = internalFailure("the stream broke off");
    try {
      error = await sendStream(res, invocation, {
        backend,
        tokenDelayMs: options.tokenDelayMs ?? 0,
        ...(fault?.streamError
          ? { fault: { streamError: fault.streamError, afterParts: fault.afterParts ?? 0 } }
          : {}),
        onPart: () => {
          record.streamedParts = (record.streamedParts ?? 0) + 1;
        },
      });
    } finally {
      span?.end(error);
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A call arriving on a kept-alive socket during close() is still served, then its socket is let go.
    if (closing) res.setHeader("connection", "close");
    const control = options.adminToken ? FAULTS_PATH.exec(pathOf(req.url)) : null;
    if (control && options.adminToken) {
      return handleFaultControl(req, res, control[1], {
        adminToken: options.adminToken,
        faults,
        endpointExists: async (name) => (await options.resolveEndpoint(name)) !== undefined,
      });
    }
    const match = req.method === "POST" ? INVOCATIONS_PATH.exec(pathOf(req.url)) : null;
    if (!match?.[1]) {
      await readBody(req, 0);
      return sendError(res, unknownRoute(req.method, pathOf(req.url)));
    }
    const endpointName = safeDecode(match[1]);
    const streaming = match[2] === "invocations-response-stream";
    const body = await readBody(req, MAX_PAYLOAD_BYTES);
    if (!body) {
      return sendError(res, validationError(`Request payload exceeds the ${MAX_PAYLOAD_BYTES} byte limit.`));
    }
    if (!ENDPOINT_NAME.test(endpointName)) return sendError(res, invalidEndpointName(endpointName));
    const invocation = invocationOf(req, endpointName, body, streaming);
    const admitted = await admit(invocation, performance.now());
    if ("code" in admitted) return sendError(res, admitted);
    try {
      if (streaming) return await handleStream(invocation, admitted, res);
      await answerInvocation(invocation, admitted, res);
    } finally {
      admitted.release();
    }
  };

  const answerInvocation = async (invocation: Invocation, admitted: Admitted, res: ServerResponse) => {
    let result: WireError | ModelResponse = internalFailure("the model call failed");
    try {
      result = await handleInvocation(invocation, admitted);
      if ("code" in result) sendError(res, result);
      else sendModelResponse(res, result, invocation.targetVariant);
    } finally {
      admitted.span?.end("code" in result ? result : undefined);
    }
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
    injectFault: (endpointName, fault) => faults.inject(endpointName, fault),
    setConditions: (endpointName, conditions) => faults.set(endpointName, conditions),
    faultState: (endpointName) => faults.state(endpointName),
    clearFaults: (endpointName) => {
      faults.clear(endpointName);
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

/** POST {url}/invocations as SageMaker forwards to a container: body, types and pass-through headers. */
async function invokeContainer(url: string, invocation: Invocation): Promise<ModelResponse | WireError> {
  try {
    const res = await postInvocation(
      url,
      containerHeaders(invocation),
      invocation.body,
      AbortSignal.timeout(CONTAINER_TIMEOUT_MS),
    );
    const header = (name: string) => [res.headers[name]].flat()[0];
    const customAttributes = header("x-amzn-sagemaker-custom-attributes");
    return {
      status: res.status,
      contentType: header("content-type") ?? "application/octet-stream",
      body: res.body,
      ...(customAttributes ? { customAttributes } : {}),
    };
  } catch (err) {
    return containerUnreachable(invocation, err);
  }
}

function sendModelResponse(res: ServerResponse, reply: ModelResponse, targetVariant: string | undefined) {
  const headers: Record<string, string | number> = {
    "content-type": reply.contentType,
    "content-length": reply.body.length,
    "x-amzn-requestid": randomUUID(),
    "x-amzn-invoked-production-variant": targetVariant ?? "AllTraffic",
  };
  if (reply.customAttributes) headers["x-amzn-sagemaker-custom-attributes"] = reply.customAttributes;
  res.writeHead(200, headers);
  res.end(reply.body);
}

function pathOf(url: string | undefined): string {
  return (url ?? "/").split("?")[0] ?? "/";
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

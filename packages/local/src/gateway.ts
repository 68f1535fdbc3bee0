/**
 * An API Gateway (REST API) emulator: builds Lambda-proxy events as API Gateway does, runs the real
 * REQUEST authorizer with result caching, calls the real handlers in this process, and answers with
 * the gateway responses the stacks configure. It serves exactly the route table of packages/functions.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  type ApiRoute,
  type GatewayResponseType,
  gatewayLimits,
  gatewayResponseBody,
  gatewayResponses,
} from "@atrium/functions/api";
import {
  type AuthorizerSettings,
  GatewayError,
  type LambdaHandler,
  requestAuthorizer,
} from "./gateway-authorizer";
import { ACCOUNT_ID, API_ID, collectHeaders, lambdaContext, matchRoute, proxyEvent } from "./gateway-event";
import { checkAdmin, FLUSH_PATH, flushStageAuthorizersCache } from "./gateway-iam";
import { callBufferedIntegration } from "./gateway-integration";
import {
  callStreamedIntegration,
  type StreamLimits,
  type StreamOutcome,
  streamingLimits,
} from "./gateway-stream";
import { ClientGone, listen, readBody, responseFlushed } from "./http-server";
import { installLocalInvokeStore } from "./lambda-invoke-store";
import { installLocalLambdaStreamingRuntime, invocationsFinished } from "./lambda-streaming-runtime";
import type { StaticCredentials } from "./sigv4";

export { API_ID, type LambdaHandler };

export interface AccessLogEntry {
  requestId: string;
  method: string;
  path: string;
  status: number;
  latencyMs: number;
  tenantId?: string;
  error?: GatewayResponseType;
  /** For a STREAM route that sent its head: how the stream ended. */
  stream?: StreamOutcome;
  /** For a STREAM route: from the request's arrival to the first body byte after the head, if one came. */
  ttftMs?: number;
}

/** The gateway's limits; a STREAM route's integration timeout and idle timeout are in StreamLimits. */
export type GatewayLimits = { maxBodyBytes: number; integrationTimeoutMs: number } & StreamLimits;

export interface GatewayOptions {
  host?: string;
  port?: number;
  stage: string;
  region: string;
  routes: readonly ApiRoute[];
  /** Resolves an SST handler string ("packages/functions/src/chat.handler") to the function. */
  loadHandler: (handler: string) => Promise<LambdaHandler>;
  authorizer: AuthorizerSettings;
  /**
   * FAKE of IAM (SigV4) authorization for admin routes, which cannot run here: a bearer token.
   * The deployed stage checks SigV4 signatures in API Gateway itself.
   */
  adminToken: string;
  /**
   * FAKE of IAM for the control plane (FlushStageAuthorizersCache): the credential the platform gives
   * its functions; their SigV4 signature is verified with it. The admin token is accepted too.
   */
  functionCredentials: StaticCredentials;
  binaryMediaTypes: readonly string[];
  /** API Gateway's own by default; tests shorten them. */
  limits?: Partial<GatewayLimits>;
  onAccess?: (entry: AccessLogEntry) => void;
}

export interface ApiGatewayEmulator {
  url: string;
  /** What FlushStageAuthorizersCache does: forget every cached authorizer result now. */
  flushAuthorizerCache(): void;
  /** How many times the authorizer function actually ran (cache misses). */
  authorizerInvocations(): number;
  /**
   * Resolves once every call in flight has been answered and every function it invoked has returned
   * (a streaming function may still write after its response ended: the settle and the ledger).
   */
  idle(): Promise<void>;
  /**
   * Refuses new connections at once, closes idle keep-alive ones, answers calls in flight (with
   * `connection: close`), lets their functions return, then resolves.
   */
  close(): Promise<void>;
}

/** The principal the admin-token fake of IAM reports as the caller (`identity.userArn`). */
export const LOCAL_ADMIN = "local-admin";

export async function startApiGateway(options: GatewayOptions): Promise<ApiGatewayEmulator> {
  const limits: GatewayLimits = { ...gatewayLimits, ...streamingLimits, ...options.limits };
  // STREAM routes run their deployed entry, which needs the Lambda runtime's `awslambda` global.
  installLocalLambdaStreamingRuntime();
  // It runs calls at once in one process, as Lambda's multi-concurrency mode does: state per invocation.
  installLocalInvokeStore();
  const host = options.host ?? "127.0.0.1";
  const contextOf = (handler: string, timeoutMs: number) => lambdaContext(options, handler, timeoutMs);
  const authorizer = requestAuthorizer({
    settings: options.authorizer,
    loadHandler: options.loadHandler,
    lambdaContext: contextOf,
  });
  // Each call in flight until its answer reached the socket, so close() can wait for exactly those.
  const inFlight = new Map<ServerResponse, Promise<void>>();
  let closing = false;

  const server: Server = createServer((req, res) => {
    if (closing) res.setHeader("connection", "close");
    const work = handle(req, res)
      .catch((err) => {
        if (err instanceof ClientGone) return;
        // Only a bug in the emulator itself lands here; the client still gets API Gateway's answer.
        console.error("api gateway emulator error", err);
        if (!res.headersSent) sendGatewayResponse(res, "DEFAULT_5XX", randomUUID(), 500);
      })
      .then(() => responseFlushed(res))
      .finally(() => inFlight.delete(res));
    inFlight.set(res, work);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = randomUUID();
    const url = new URL(req.url ?? "/", "http://gateway.local");
    const method = (req.method ?? "GET").toUpperCase();
    const log = (status: number, extra: Partial<AccessLogEntry> = {}) =>
      options.onAccess?.({
        requestId,
        method,
        path: url.pathname,
        status,
        latencyMs: Math.round(performance.now() - started),
        ...extra,
      });
    const fail = (type: GatewayResponseType, status?: number, tenantId?: string) => {
      const sent = sendGatewayResponse(res, type, requestId, status);
      log(sent, { error: type, ...(tenantId ? { tenantId } : {}) });
    };

    const flush = method === "DELETE" ? FLUSH_PATH.exec(url.pathname) : null;
    if (flush) {
      const target = { restApiId: flush[1], stage: flush[2] };
      log(await flushStageAuthorizersCache(req, res, target, { ...options, flush: authorizer.flush }));
      return;
    }

    const body = await readBody(req, limits.maxBodyBytes);
    if (body === undefined) {
      return fail("REQUEST_TOO_LARGE");
    }

    const matched = matchRoute(options.routes, method, url.pathname);
    if (!matched) return fail("MISSING_AUTHENTICATION_TOKEN");
    const { route, pathParameters } = matched;

    const headers = collectHeaders(req);
    const event = proxyEvent({
      req,
      url,
      method,
      route,
      pathParameters,
      headers,
      body,
      requestId,
      stage: options.stage,
      binaryMediaTypes: options.binaryMediaTypes,
    });
    const methodArn = `arn:aws:execute-api:${options.region}:${ACCOUNT_ID}:${API_ID}/${options.stage}/${method}${url.pathname}`;

    let tenantId: string | undefined;
    try {
      if (route.auth === "admin") {
        checkAdmin(headers, options.adminToken);
        event.requestContext.identity.userArn = LOCAL_ADMIN;
      } else {
        const authStarted = performance.now();
        const decision = await authorizer.authorize(event, methodArn, headers);
        event.requestContext.authorizer = {
          principalId: decision.principalId,
          ...decision.context,
          integrationLatency: Math.round(performance.now() - authStarted),
        };
        tenantId = typeof decision.context?.tenantId === "string" ? decision.context.tenantId : undefined;
      }
    } catch (err) {
      if (err instanceof GatewayError) return fail(err.type, undefined, tenantId);
      throw err;
    }

    // The function's deadline is its own timeout, capped by the route's integration timeout (ADR 0007).
    const integrationTimeoutMs = route.stream
      ? limits.streamedIntegrationTimeoutMs
      : limits.integrationTimeoutMs;
    const timeoutMs = Math.min((route.timeoutSeconds ?? Infinity) * 1000, integrationTimeoutMs);
    const call = {
      entry: route.handler,
      loadHandler: options.loadHandler,
      event,
      context: contextOf(route.handler, timeoutMs),
      requestId,
    };
    const tenant = tenantId ? { tenantId } : {};
    try {
      if (!route.stream) {
        log(await callBufferedIntegration(res, { ...call, timeoutMs: integrationTimeoutMs }), tenant);
        return;
      }
      const streamed = await callStreamedIntegration(res, { ...call, limits });
      const ttftMs =
        streamed.firstByteAt === undefined ? {} : { ttftMs: Math.round(streamed.firstByteAt - started) };
      log(streamed.statusCode, { ...tenant, stream: streamed.outcome, ...ttftMs });
    } catch (err) {
      // A Lambda error in a proxy integration: API Gateway answers 502 and the details stay in the logs.
      if (!(err instanceof GatewayError)) console.error(`lambda ${route.handler} failed:`, err);
      const type = err instanceof GatewayError ? err.type : "DEFAULT_5XX";
      return fail(type, type === "DEFAULT_5XX" ? 502 : undefined, tenantId);
    }
  }

  async function idle(): Promise<void> {
    while (inFlight.size > 0) await Promise.allSettled([...inFlight.values()]);
    await invocationsFinished();
  }

  async function closeServer(): Promise<void> {
    closing = true;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Busy keep-alive clients are told this answer is the connection's last.
    for (const res of inFlight.keys()) if (!res.headersSent) res.setHeader("connection", "close");
    await idle();
    server.closeAllConnections();
    await stopped;
  }

  const url = await listen(server, options.port ?? 0, host);
  let closed: Promise<void> | undefined;

  return {
    url,
    idle,
    flushAuthorizerCache: () => authorizer.flush(),
    authorizerInvocations: () => authorizer.invocations(),
    close: () => {
      closed ??= closeServer();
      return closed;
    },
  };
}

function sendGatewayResponse(
  res: ServerResponse,
  type: GatewayResponseType,
  requestId: string,
  status?: number,
): number {
  const response = gatewayResponses[type];
  const statusCode = status ?? response.status;
  const body = gatewayResponseBody(response);
  res.writeHead(statusCode, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "x-request-id": requestId,
    "x-amzn-requestid": requestId,
    "x-amzn-errortype": type,
  });
  res.end(body);
  return statusCode;
}

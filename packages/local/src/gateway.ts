/**
 * An API Gateway (REST API) emulator: builds Lambda-proxy events as API Gateway does, runs the real
 * REQUEST authorizer with result caching, calls the real handlers in this process, and answers with
 * the gateway responses the stacks configure. It serves exactly the route table of packages/functions.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import {
  type ApiRoute,
  type GatewayResponseType,
  gatewayLimits,
  gatewayResponseBody,
  gatewayResponses,
} from "@atrium/functions/api";
import type { APIGatewayProxyResult } from "aws-lambda";
import {
  type AuthorizerSettings,
  GatewayError,
  type LambdaHandler,
  requestAuthorizer,
  withTimeout,
} from "./gateway-authorizer";
import {
  ACCOUNT_ID,
  API_ID,
  type CollectedHeaders,
  collectHeaders,
  lambdaContext,
  matchRoute,
  proxyEvent,
} from "./gateway-event";
import {
  readPrelude,
  relayStream,
  type StreamLimits,
  type StreamOutcome,
  streamingLimits,
} from "./gateway-stream";
import { listen, readBody, responseFlushed } from "./http-server";
import {
  installLocalLambdaStreamingRuntime,
  invokeStreaming,
  isStreamingHandler,
} from "./lambda-streaming-runtime";
import { checkSignature, type StaticCredentials } from "./sigv4";

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
}

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
  limits?: { maxBodyBytes: number; integrationTimeoutMs: number } & Partial<StreamLimits>;
  onAccess?: (entry: AccessLogEntry) => void;
}

export interface ApiGatewayEmulator {
  url: string;
  /** What FlushStageAuthorizersCache does: forget every cached authorizer result now. */
  flushAuthorizerCache(): void;
  /** How many times the authorizer function actually ran (cache misses). */
  authorizerInvocations(): number;
  /**
   * Refuses new connections at once, closes idle keep-alive ones, answers calls in flight (with
   * `connection: close`), then resolves.
   */
  close(): Promise<void>;
}

/** The principal the admin-token fake of IAM reports as the caller (`identity.userArn`). */
export const LOCAL_ADMIN = "local-admin";

const BEARER = /^Bearer\s+(\S+)$/i;
const FLUSH_PATH = /^\/restapis\/([^/]+)\/stages\/([^/]+)\/cache\/authorizers$/;

export async function startApiGateway(options: GatewayOptions): Promise<ApiGatewayEmulator> {
  const limits = { ...gatewayLimits, ...streamingLimits, ...options.limits };
  // STREAM routes run their deployed entry, which needs the Lambda runtime's `awslambda` global.
  installLocalLambdaStreamingRuntime();
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
      const status = await flushStageAuthorizersCache(req, flush[1], flush[2], res);
      log(status);
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
        checkAdmin(headers);
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

    const functionTimeoutMs = Math.min(
      (route.timeoutSeconds ?? Infinity) * 1000,
      limits.integrationTimeoutMs,
    );
    if (route.stream) {
      const entry = route.handler;
      try {
        const handler = await options.loadHandler(entry);
        if (!isStreamingHandler(handler)) {
          console.error(`lambda ${entry} is not wrapped by awslambda.streamifyResponse`);
          return fail("DEFAULT_5XX", 502, tenantId);
        }
        const body = invokeStreaming(handler, event, contextOf(entry, functionTimeoutMs));
        const { head, rest } = await readPrelude(body, limits.integrationTimeoutMs);
        head.headers["x-amzn-requestid"] = requestId;
        const outcome = await relayStream(res, head, rest, body, limits);
        log(head.statusCode, { ...(tenantId ? { tenantId } : {}), stream: outcome });
      } catch (err) {
        if (err instanceof GatewayError && err.type !== "DEFAULT_5XX")
          return fail(err.type, undefined, tenantId);
        // As for buffered routes: a Lambda error before the response head is a 502, details in the logs.
        if (!(err instanceof GatewayError)) console.error(`lambda ${entry} failed:`, err);
        return fail("DEFAULT_5XX", 502, tenantId);
      }
      return;
    }

    let result: APIGatewayProxyResult;
    try {
      const handler = await options.loadHandler(route.handler);
      result = await withTimeout(
        handler(event, contextOf(route.handler, functionTimeoutMs)),
        limits.integrationTimeoutMs,
      );
    } catch (err) {
      if (err instanceof GatewayError) return fail(err.type, undefined, tenantId);
      // A Lambda error in a proxy integration: API Gateway answers 502 and the details stay in the logs.
      console.error(`lambda ${route.handler} failed:`, err);
      return fail("DEFAULT_5XX", 502, tenantId);
    }
    if (!isProxyResult(result)) {
      console.error(`lambda ${route.handler} returned a malformed proxy response`);
      return fail("DEFAULT_5XX", 502, tenantId);
    }
    sendProxyResult(res, result, requestId);
    log(result.statusCode, tenantId ? { tenantId } : {});
  }

  /** The one admin-token value of the request, compared in constant time. */
  function isAdminToken(authorization: readonly string[] | undefined): boolean {
    const token = authorization?.length === 1 ? BEARER.exec(authorization[0] ?? "")?.[1] : undefined;
    if (!token) return false;
    const a = Buffer.from(token);
    const b = Buffer.from(options.adminToken);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  function checkAdmin(headers: CollectedHeaders): void {
    const authorization = headers.byName.get("authorization") ?? [];
    const [only] = authorization;
    if (authorization.length === 0 || (only !== undefined && !BEARER.test(only))) {
      throw new GatewayError("MISSING_AUTHENTICATION_TOKEN");
    }
    if (!isAdminToken(authorization)) throw new GatewayError("INVALID_SIGNATURE");
  }

  /**
   * The control-plane call FlushStageAuthorizersCache: 202 and an empty body, as API Gateway answers.
   * Only the platform's functions (SigV4 with their credential) and the admin token may make it.
   */
  async function flushStageAuthorizersCache(
    req: IncomingMessage,
    restApiId: string | undefined,
    stage: string | undefined,
    res: ServerResponse,
  ): Promise<number> {
    const body = (await readBody(req, 64 * 1024)) ?? Buffer.alloc(0);
    const authorization = collectHeaders(req).byName.get("authorization");
    const refused = isAdminToken(authorization)
      ? undefined
      : checkSignature(
          { method: "DELETE", url: req.url ?? "/", rawHeaders: req.rawHeaders, body },
          options.functionCredentials,
          "apigateway",
        );
    if (refused) return sendControlPlaneError(res, 403, refused, "The request signature is not valid.");
    if (restApiId !== API_ID || stage !== options.stage) {
      return sendControlPlaneError(res, 404, "NotFoundException", "Invalid stage identifier specified");
    }
    authorizer.flush();
    res.writeHead(202).end();
    return 202;
  }

  async function closeServer(): Promise<void> {
    closing = true;
    const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Busy keep-alive clients are told this answer is the connection's last.
    for (const res of inFlight.keys()) if (!res.headersSent) res.setHeader("connection", "close");
    while (inFlight.size > 0) await Promise.allSettled([...inFlight.values()]);
    server.closeAllConnections();
    await stopped;
  }

  const url = await listen(server, options.port ?? 0, host);
  let closed: Promise<void> | undefined;

  return {
    url,
    flushAuthorizerCache: () => authorizer.flush(),
    authorizerInvocations: () => authorizer.invocations(),
    close: () => {
      closed ??= closeServer();
      return closed;
    },
  };
}

/** A control-plane error as the API Gateway service sends it (restJson1: the code in x-amzn-ErrorType). */
function sendControlPlaneError(res: ServerResponse, status: number, code: string, message: string): number {
  const body = JSON.stringify({ message });
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    "x-amzn-errortype": code,
    "x-amzn-requestid": randomUUID(),
  });
  res.end(body);
  return status;
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

function sendProxyResult(res: ServerResponse, result: APIGatewayProxyResult, requestId: string): void {
  const headers: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(result.headers ?? {}))
    headers[name.toLowerCase()] = String(value);
  for (const [name, values] of Object.entries(result.multiValueHeaders ?? {})) {
    headers[name.toLowerCase()] = values.map(String);
  }
  const body = Buffer.from(result.body ?? "", result.isBase64Encoded ? "base64" : "utf8");
  headers["content-length"] = String(body.length);
  headers["x-amzn-requestid"] = requestId;
  headers["content-type"] ??= "application/json";
  res.writeHead(result.statusCode, headers);
  res.end(body);
}

function isProxyResult(value: unknown): value is APIGatewayProxyResult {
  const v = value as APIGatewayProxyResult | undefined;
  return (
    typeof v?.statusCode === "number" &&
    (v.body === undefined || v.body === null || typeof v.body === "string")
  );
}

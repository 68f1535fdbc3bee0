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
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  APIGatewayRequestAuthorizerEvent,
  Context,
} from "aws-lambda";
import { listen, readBody, safeDecode } from "./http-server";

// biome-ignore lint/suspicious/noExplicitAny: handlers are typed by their own modules
export type LambdaHandler = (event: any, context: Context) => Promise<any>;

export interface AccessLogEntry {
  requestId: string;
  method: string;
  path: string;
  status: number;
  latencyMs: number;
  tenantId?: string;
  error?: GatewayResponseType;
}

export interface GatewayOptions {
  host?: string;
  port?: number;
  stage: string;
  region: string;
  routes: readonly ApiRoute[];
  /** Resolves an SST handler string ("packages/functions/src/chat.handler") to the function. */
  loadHandler: (handler: string) => Promise<LambdaHandler>;
  authorizer: { handler: string; identityHeader: string; cacheTtlSeconds: number };
  /**
   * FAKE of IAM (SigV4) authorization for admin routes, which cannot run here: a bearer token.
   * The deployed stage checks SigV4 signatures in API Gateway itself.
   */
  adminToken: string;
  binaryMediaTypes: readonly string[];
  limits?: { maxBodyBytes: number; integrationTimeoutMs: number };
  onAccess?: (entry: AccessLogEntry) => void;
}

export interface ApiGatewayEmulator {
  url: string;
  /** What FlushStageAuthorizersCache does: forget every cached authorizer result now. */
  flushAuthorizerCache(): void;
  /** How many times the authorizer function actually ran (cache misses). */
  authorizerInvocations(): number;
  close(): Promise<void>;
}

const ACCOUNT_ID = "000000000000";
/** The emulated REST API's id, as FlushStageAuthorizersCache and execute-api ARNs name it. */
export const API_ID = "atriumlocal";
/** The principal the admin-token fake of IAM reports as the caller (`identity.userArn`). */
export const LOCAL_ADMIN = "local-admin";

interface CachedPolicy {
  result: APIGatewayAuthorizerResult;
  expiresAt: number;
}

interface MatchedRoute {
  route: ApiRoute;
  pathParameters: Record<string, string> | null;
}

class GatewayError extends Error {
  constructor(readonly type: GatewayResponseType) {
    super(type);
  }
}

export async function startApiGateway(options: GatewayOptions): Promise<ApiGatewayEmulator> {
  const limits = options.limits ?? gatewayLimits;
  const host = options.host ?? "127.0.0.1";
  const cache = new Map<string, CachedPolicy>();
  let authorizerRuns = 0;
  const inFlight = new Set<Promise<void>>();

  const server: Server = createServer((req, res) => {
    const work = handle(req, res).catch((err) => {
      // Only a bug in the emulator itself lands here; the client still gets API Gateway's answer.
      console.error("api gateway emulator error", err);
      if (!res.headersSent) sendGatewayResponse(res, "DEFAULT_5XX", randomUUID(), 500);
    });
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
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

    if (method === "DELETE" && /^\/restapis\/[^/]+\/stages\/[^/]+\/cache\/authorizers$/.test(url.pathname)) {
      // The control-plane call FlushStageAuthorizersCache, answered as API Gateway does (202, empty).
      await readBody(req, 0);
      cache.clear();
      res.writeHead(202).end();
      log(202);
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
    const event = proxyEvent({ req, url, method, route, pathParameters, headers, body, requestId });
    const methodArn = `arn:aws:execute-api:${options.region}:${ACCOUNT_ID}:${API_ID}/${options.stage}/${method}${url.pathname}`;

    let tenantId: string | undefined;
    try {
      if (route.auth === "admin") {
        checkAdmin(headers.single.authorization);
        event.requestContext.identity.userArn = LOCAL_ADMIN;
      } else {
        const authStarted = performance.now();
        const identity = headers.single[options.authorizer.identityHeader.toLowerCase()];
        const decision = await authorize(event, methodArn, identity);
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

    let result: APIGatewayProxyResult;
    try {
      const handler = await options.loadHandler(route.handler);
      result = await withTimeout(
        handler(
          event,
          lambdaContext(
            route.handler,
            Math.min((route.timeoutSeconds ?? Infinity) * 1000, limits.integrationTimeoutMs),
          ),
        ),
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

  function checkAdmin(authorization: string | undefined): void {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
    if (!token) throw new GatewayError("MISSING_AUTHENTICATION_TOKEN");
    const a = Buffer.from(token);
    const b = Buffer.from(options.adminToken);
    if (a.length !== b.length || !timingSafeEqual(a, b)) throw new GatewayError("INVALID_SIGNATURE");
  }

  async function authorize(
    event: APIGatewayProxyEvent,
    methodArn: string,
    identity: string | undefined,
  ): Promise<APIGatewayAuthorizerResult> {
    // API Gateway refuses a request whose identity source is absent without calling the authorizer.
    if (!identity) throw new GatewayError("UNAUTHORIZED");
    const now = Date.now();
    let cached = cache.get(identity);
    if (!cached || cached.expiresAt <= now) {
      cache.delete(identity);
      const result = await runAuthorizer(event, methodArn);
      cached = { result, expiresAt: now + options.authorizer.cacheTtlSeconds * 1000 };
      if (options.authorizer.cacheTtlSeconds > 0) cache.set(identity, cached);
    }
    if (evaluatePolicy(cached.result, methodArn) !== "Allow") throw new GatewayError("ACCESS_DENIED");
    return cached.result;
  }

  async function runAuthorizer(
    event: APIGatewayProxyEvent,
    methodArn: string,
  ): Promise<APIGatewayAuthorizerResult> {
    authorizerRuns += 1;
    const authorizerEvent: APIGatewayRequestAuthorizerEvent = {
      type: "REQUEST",
      methodArn,
      resource: event.resource,
      path: event.path,
      httpMethod: event.httpMethod,
      headers: event.headers as Record<string, string>,
      multiValueHeaders: event.multiValueHeaders as Record<string, string[]>,
      pathParameters: event.pathParameters,
      queryStringParameters: event.queryStringParameters,
      multiValueQueryStringParameters: event.multiValueQueryStringParameters,
      stageVariables: null,
      requestContext: event.requestContext as APIGatewayRequestAuthorizerEvent["requestContext"],
    };
    let result: unknown;
    try {
      const handler = await options.loadHandler(options.authorizer.handler);
      result = await withTimeout(
        handler(authorizerEvent, lambdaContext(options.authorizer.handler, 10_000)),
        10_000,
      );
    } catch (err) {
      if (err instanceof Error && err.message === "Unauthorized") throw new GatewayError("UNAUTHORIZED");
      console.error("authorizer failed:", err);
      throw new GatewayError("AUTHORIZER_FAILURE");
    }
    if (!isAuthorizerResult(result)) throw new GatewayError("AUTHORIZER_CONFIGURATION_ERROR");
    return result;
  }

  function proxyEvent(input: {
    req: IncomingMessage;
    url: URL;
    method: string;
    route: ApiRoute;
    pathParameters: Record<string, string> | null;
    headers: CollectedHeaders;
    body: Buffer;
    requestId: string;
  }): APIGatewayProxyEvent {
    const { req, url, method, route, pathParameters, headers, body, requestId } = input;
    const query = collectQuery(url);
    const binary = isBinary(headers.single["content-type"], options.binaryMediaTypes);
    const now = new Date();
    const sourceIp = req.socket.remoteAddress ?? "127.0.0.1";
    return {
      resource: route.path,
      path: url.pathname,
      httpMethod: method,
      headers: headers.asSent,
      multiValueHeaders: headers.multi,
      queryStringParameters: query.single,
      multiValueQueryStringParameters: query.multi,
      pathParameters,
      stageVariables: null,
      body: body.length === 0 ? null : body.toString(binary ? "base64" : "utf8"),
      isBase64Encoded: binary && body.length > 0,
      requestContext: {
        accountId: ACCOUNT_ID,
        apiId: API_ID,
        resourceId: route.path,
        resourcePath: route.path,
        httpMethod: method,
        path: `/${options.stage}${url.pathname}`,
        stage: options.stage,
        requestId,
        extendedRequestId: requestId,
        requestTime: apiGatewayTime(now),
        requestTimeEpoch: now.getTime(),
        protocol: `HTTP/${req.httpVersion}`,
        domainName: headers.single.host ?? "localhost",
        domainPrefix: (headers.single.host ?? "localhost").split(".")[0],
        authorizer: undefined,
        identity: {
          sourceIp,
          userAgent: headers.single["user-agent"] ?? null,
          accessKey: null,
          accountId: null,
          apiKey: null,
          apiKeyId: null,
          caller: null,
          clientCert: null,
          cognitoAuthenticationProvider: null,
          cognitoAuthenticationType: null,
          cognitoIdentityId: null,
          cognitoIdentityPoolId: null,
          principalOrgId: null,
          user: null,
          userArn: null,
        },
      },
    };
  }

  function lambdaContext(handler: string, timeoutMs: number): Context {
    const deadline = Date.now() + timeoutMs;
    const functionName = `atrium-${options.stage}-${handler.replace(/^packages\/functions\/src\//, "").replace(/[^\w-]/g, "-")}`;
    return {
      callbackWaitsForEmptyEventLoop: true,
      functionName,
      functionVersion: "$LATEST",
      invokedFunctionArn: `arn:aws:lambda:${options.region}:${ACCOUNT_ID}:function:${functionName}`,
      memoryLimitInMB: "1024",
      awsRequestId: randomUUID(),
      logGroupName: `/aws/lambda/${functionName}`,
      logStreamName: "local",
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
      done: () => undefined,
      fail: () => undefined,
      succeed: () => undefined,
    };
  }

  const url = await listen(server, options.port ?? 0, host);

  return {
    url,
    flushAuthorizerCache: () => cache.clear(),
    authorizerInvocations: () => authorizerRuns,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await Promise.allSettled([...inFlight]);
      await closed;
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

interface CollectedHeaders {
  /** Last value per header, names as the client sent them (what `event.headers` holds). */
  asSent: Record<string, string>;
  multi: Record<string, string[]>;
  /** Last value per lower-cased name, for the emulator's own look-ups. */
  single: Record<string, string>;
}

function collectHeaders(req: IncomingMessage): CollectedHeaders {
  const asSent: Record<string, string> = {};
  const multi: Record<string, string[]> = {};
  const single: Record<string, string> = {};
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    const value = req.rawHeaders[i + 1] as string;
    asSent[name] = value;
    multi[name] = [...(multi[name] ?? []), value];
    single[name.toLowerCase()] = value;
  }
  // Headers API Gateway adds in front of every integration.
  const added = {
    "X-Forwarded-For": req.socket.remoteAddress ?? "127.0.0.1",
    "X-Forwarded-Proto": "http",
    "X-Forwarded-Port": String(req.socket.localPort ?? ""),
    "X-Amzn-Trace-Id": `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)}`,
  };
  for (const [name, value] of Object.entries(added)) {
    asSent[name] = value;
    multi[name] = [value];
    single[name.toLowerCase()] = value;
  }
  return { asSent, multi, single };
}

function collectQuery(url: URL) {
  const multi: Record<string, string[]> = {};
  for (const [name, value] of url.searchParams) multi[name] = [...(multi[name] ?? []), value];
  const names = Object.keys(multi);
  if (names.length === 0) return { single: null, multi: null };
  const single = Object.fromEntries(names.map((name) => [name, multi[name]?.at(-1) ?? ""]));
  return { single, multi };
}

/** Matches a path against the route table's resource paths; `{name}` takes one non-empty segment. */
export function matchRoute(
  routes: readonly ApiRoute[],
  method: string,
  path: string,
): MatchedRoute | undefined {
  const segments = path.split("/");
  for (const route of routes) {
    if (route.method !== method) continue;
    const pattern = route.path.split("/");
    if (pattern.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const matches = pattern.every((part, i) => {
      const segment = segments[i] ?? "";
      const param = /^\{(\w+)\}$/.exec(part);
      if (!param) return part === segment;
      if (segment === "") return false;
      params[param[1] as string] = safeDecode(segment);
      return true;
    });
    if (matches) return { route, pathParameters: Object.keys(params).length > 0 ? params : null };
  }
  return undefined;
}

/** Whether API Gateway would hand this body to Lambda base64-encoded (binaryMediaTypes, `type/*` wildcards). */
export function isBinary(contentType: string | undefined, binaryMediaTypes: readonly string[]): boolean {
  const type = (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (!type) return false;
  return binaryMediaTypes.some((pattern) => {
    if (pattern === "*/*") return true;
    if (pattern.endsWith("/*")) return type.startsWith(pattern.slice(0, -1));
    return type === pattern;
  });
}

/** IAM policy evaluation for execute-api: an explicit Deny wins, then any Allow, else implicit deny. */
export function evaluatePolicy(result: APIGatewayAuthorizerResult, methodArn: string): "Allow" | "Deny" {
  let allowed = false;
  for (const statement of result.policyDocument.Statement) {
    const resources = "Resource" in statement ? [statement.Resource].flat() : [];
    if (!resources.some((resource) => arnMatches(String(resource), methodArn))) continue;
    if (statement.Effect === "Deny") return "Deny";
    if (statement.Effect === "Allow") allowed = true;
  }
  return allowed ? "Allow" : "Deny";
}

function arnMatches(pattern: string, arn: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${regex}$`).test(arn);
}

function isAuthorizerResult(value: unknown): value is APIGatewayAuthorizerResult {
  const v = value as APIGatewayAuthorizerResult | undefined;
  return typeof v?.principalId === "string" && Array.isArray(v.policyDocument?.Statement);
}

function isProxyResult(value: unknown): value is APIGatewayProxyResult {
  const v = value as APIGatewayProxyResult | undefined;
  return (
    typeof v?.statusCode === "number" &&
    (v.body === undefined || v.body === null || typeof v.body === "string")
  );
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError("INTEGRATION_TIMEOUT")), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** API Gateway's `requestTime` format, e.g. 28/Nov/2026:03:53:55 +0000. */
function apiGatewayTime(date: Date): string {
  const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getUTCDate())}/${months[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(
    date.getUTCHours(),
  )}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

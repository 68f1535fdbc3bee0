/**
 * The Lambda-proxy events the local API Gateway builds, as a REST API does: headers and query
 * strings as sent (every name an ordinary name, `__proto__` and `constructor` included), the
 * headers API Gateway adds, the request context, and the Lambda context of each invocation.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { ApiRoute } from "@atrium/functions/api";
import type { APIGatewayProxyEvent, Context } from "aws-lambda";
import { appendValue, safeDecode } from "./http-server";

export const ACCOUNT_ID = "000000000000";
/** The emulated REST API's id, as FlushStageAuthorizersCache and execute-api ARNs name it. */
export const API_ID = "atriumlocal";

export interface CollectedHeaders {
  /** Last value per name, spelled as the client sent it (what `event.headers` holds). */
  asSent: Record<string, string>;
  /** Every value per name, spelled as sent (`event.multiValueHeaders`). */
  multi: Record<string, string[]>;
  /** Every value per lower-cased name, for the emulator's own look-ups. */
  byName: ReadonlyMap<string, readonly string[]>;
}

/** The last value of a header, whatever its letter case. */
export const lastValue = (headers: CollectedHeaders, name: string): string | undefined =>
  headers.byName.get(name.toLowerCase())?.at(-1);

/** Request headers; Maps while collecting, so no header name can reach Object.prototype. */
export function collectHeaders(req: IncomingMessage): CollectedHeaders {
  const asSent = new Map<string, string[]>();
  const byName = new Map<string, string[]>();
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] as string;
    const value = req.rawHeaders[i + 1] as string;
    appendValue(asSent, name, value);
    appendValue(byName, name.toLowerCase(), value);
  }
  // Headers API Gateway adds in front of every integration.
  const added: [string, string][] = [
    ["X-Forwarded-For", req.socket.remoteAddress ?? "127.0.0.1"],
    ["X-Forwarded-Proto", "http"],
    ["X-Forwarded-Port", String(req.socket.localPort ?? "")],
    [
      "X-Amzn-Trace-Id",
      `Root=1-${Math.floor(Date.now() / 1000).toString(16)}-${randomUUID().replace(/-/g, "").slice(0, 24)}`,
    ],
  ];
  for (const [name, value] of added) {
    asSent.set(name, [value]);
    byName.set(name.toLowerCase(), [value]);
  }
  // Object.fromEntries defines own properties, as JSON.parse of the real event does.
  return { asSent: lastValues(asSent), multi: Object.fromEntries(asSent), byName };
}

/** The last value collected under each name, as the single-valued fields of the event hold them. */
function lastValues(multi: Map<string, string[]>): Record<string, string> {
  const last = new Map<string, string>();
  for (const [name, values] of multi) last.set(name, values.at(-1) ?? "");
  return Object.fromEntries(last);
}

export function collectQuery(url: URL) {
  // Without a query string, no URLSearchParams is made: most calls have none.
  if (url.search === "") return { single: null, multi: null };
  const multi = new Map<string, string[]>();
  for (const [name, value] of url.searchParams) appendValue(multi, name, value);
  if (multi.size === 0) return { single: null, multi: null };
  return {
    single: lastValues(multi),
    multi: Object.fromEntries(multi),
  };
}

export interface ProxyEventInput {
  req: IncomingMessage;
  url: URL;
  method: string;
  route: ApiRoute;
  pathParameters: Record<string, string> | null;
  headers: CollectedHeaders;
  body: Buffer;
  requestId: string;
  stage: string;
  binaryMediaTypes: readonly string[];
}

export function proxyEvent(input: ProxyEventInput): APIGatewayProxyEvent {
  const { req, url, method, route, pathParameters, headers, body, requestId, stage } = input;
  const query = collectQuery(url);
  const binary = isBinary(lastValue(headers, "content-type"), input.binaryMediaTypes);
  const now = new Date();
  const host = lastValue(headers, "host") ?? "localhost";
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
      path: `/${stage}${url.pathname}`,
      stage,
      requestId,
      extendedRequestId: requestId,
      requestTime: apiGatewayTime(now),
      requestTimeEpoch: now.getTime(),
      protocol: `HTTP/${req.httpVersion}`,
      domainName: host,
      domainPrefix: host.split(".")[0] ?? host,
      authorizer: undefined,
      identity: {
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: lastValue(headers, "user-agent") ?? null,
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

export function lambdaContext(
  options: { stage: string; region: string },
  handler: string,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  const functionName = `atrium-${options.stage}-${handler.replace(/^packages\/functions\/src\//, "").replace(/[^\w-]/g, "-")}`;
  const context: Context = {
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
  return context;
}

/** A resource path's segments: a literal, or the name of the `{name}` parameter it takes. */
type RoutePattern = ({ literal: string } | { param: string })[];
const patterns = new WeakMap<ApiRoute, RoutePattern>();

function patternOf(route: ApiRoute): RoutePattern {
  let pattern = patterns.get(route);
  if (!pattern) {
    pattern = route.path.split("/").map((part) => {
      const param = /^\{(\w+)\}$/.exec(part)?.[1];
      return param === undefined ? { literal: part } : { param };
    });
    patterns.set(route, pattern);
  }
  return pattern;
}

/** Matches a path against the route table's resource paths; `{name}` takes one non-empty segment. */
export function matchRoute(
  routes: readonly ApiRoute[],
  method: string,
  path: string,
): { route: ApiRoute; pathParameters: Record<string, string> | null } | undefined {
  const segments = path.split("/");
  for (const route of routes) {
    if (route.method !== method) continue;
    const pattern = patternOf(route);
    if (pattern.length !== segments.length) continue;
    const params = new Map<string, string>();
    const matches = pattern.every((part, i) => {
      const segment = segments[i] ?? "";
      if ("literal" in part) return part.literal === segment;
      if (segment === "") return false;
      params.set(part.param, safeDecode(segment));
      return true;
    });
    if (matches) return { route, pathParameters: params.size > 0 ? Object.fromEntries(params) : null };
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

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** API Gateway's `requestTime` format, e.g. 28/Nov/2026:03:53:55 +0000. */
function apiGatewayTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(
    date.getUTCHours(),
  )}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

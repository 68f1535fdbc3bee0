/**
 * The API's one definition: routes, authorizer, binary media types and gateway responses.
 * stacks/Api.ts deploys exactly this and packages/local's API Gateway emulator serves exactly this,
 * so local and deployed routing cannot drift.
 */
import type { ErrorType } from "@atrium/core/errors";
import { functionTimeoutSeconds, INTEGRATION_TIMEOUT_MS } from "./lib/timeouts";

export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

/** `tenant`: the Lambda REQUEST authorizer (API key). `admin`: IAM (SigV4) when deployed. */
export type RouteAuth = "tenant" | "admin";

export interface ApiRoute {
  method: HttpMethod;
  /** API Gateway resource path; `{name}` is a path parameter. */
  path: string;
  /** SST handler string: file relative to the repo root, then the export. */
  handler: string;
  auth: RouteAuth;
  /** The function's timeout (docs/adr/0007-timeouts.md); `routes` gives every route one. */
  timeoutSeconds?: number;
  /**
   * Set for a route whose integration streams (ResponseTransferMode STREAM): its handler is wrapped by
   * `awslambda.streamifyResponse` and writes API Gateway's streaming proxy format, deployed and locally.
   */
  stream?: true;
}

const fn = (file: string, exported = "handler") => `packages/functions/src/${file}.${exported}`;

const modelCall = functionTimeoutSeconds.modelCall;

const routeTable: readonly ApiRoute[] = [
  {
    method: "POST",
    path: "/v1/chat/completions",
    handler: fn("chat"),
    auth: "tenant",
    timeoutSeconds: functionTimeoutSeconds.streamedCall,
    stream: true,
  },
  {
    method: "POST",
    path: "/v1/models/{model}/invocations",
    handler: fn("invocations"),
    auth: "tenant",
    timeoutSeconds: modelCall,
    // One body, streamed so that its settle comes after the client's last byte (ADR 0007: the
    // function's own timeout, under a minute, ends the call long before the integration's).
    stream: true,
  },
  {
    method: "POST",
    path: "/v1/models/{model}/invocations-response-stream",
    handler: fn("invocations-stream"),
    auth: "tenant",
    timeoutSeconds: functionTimeoutSeconds.streamedCall,
    stream: true,
  },
  { method: "GET", path: "/v1/models", handler: fn("models"), auth: "tenant" },
  { method: "GET", path: "/v1/usage", handler: fn("usage"), auth: "tenant" },
  { method: "POST", path: "/admin/tenants", handler: fn("admin/tenants", "create"), auth: "admin" },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/endpoints",
    handler: fn("admin/endpoints", "add"),
    auth: "admin",
  },
  // Tenant lifecycle (docs/adr/0005-tenant-lifecycle.md): every change here is audited.
  { method: "GET", path: "/admin/tenants", handler: fn("admin/tenants", "list"), auth: "admin" },
  { method: "GET", path: "/admin/tenants/{tenantId}", handler: fn("admin/tenants", "get"), auth: "admin" },
  {
    method: "PATCH",
    path: "/admin/tenants/{tenantId}",
    handler: fn("admin/tenants", "update"),
    auth: "admin",
  },
  {
    method: "DELETE",
    path: "/admin/tenants/{tenantId}",
    handler: fn("admin/tenants", "remove"),
    auth: "admin",
  },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/suspend",
    handler: fn("admin/tenants", "suspend"),
    auth: "admin",
  },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/resume",
    handler: fn("admin/tenants", "resume"),
    auth: "admin",
  },
  { method: "GET", path: "/admin/tenants/{tenantId}/keys", handler: fn("admin/keys", "list"), auth: "admin" },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/keys",
    handler: fn("admin/keys", "create"),
    auth: "admin",
  },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/keys/{keyId}/rotate",
    handler: fn("admin/keys", "rotate"),
    auth: "admin",
  },
  {
    method: "POST",
    path: "/admin/tenants/{tenantId}/keys/{keyId}/revoke",
    handler: fn("admin/keys", "revoke"),
    auth: "admin",
  },
  {
    method: "GET",
    path: "/admin/tenants/{tenantId}/endpoints",
    handler: fn("admin/endpoints", "list"),
    auth: "admin",
  },
  {
    method: "DELETE",
    path: "/admin/tenants/{tenantId}/endpoints/{model}",
    handler: fn("admin/endpoints", "remove"),
    auth: "admin",
  },
  {
    method: "GET",
    path: "/admin/tenants/{tenantId}/audit",
    handler: fn("admin/audit", "list"),
    auth: "admin",
  }, // Reads every tenant's ledger and limiter items (docs/reports.md).
  { method: "GET", path: "/admin/reports", handler: fn("admin/reports"), auth: "admin" },
];

/** The route table, each route with its function's timeout: model calls as set above, the rest by kind. */
export const routes: readonly (ApiRoute & { timeoutSeconds: number })[] = routeTable.map((route) => ({
  ...route,
  timeoutSeconds:
    route.timeoutSeconds ??
    (route.auth === "admin" ? functionTimeoutSeconds.admin : functionTimeoutSeconds.tenantRead),
}));

export const authorizer = {
  handler: fn("authorizer"),
  /** The header the REQUEST authorizer is keyed and cached on. */
  identityHeader: "Authorization",
  timeoutSeconds: functionTimeoutSeconds.authorizer,
} as const;

/** Content types API Gateway passes to Lambda base64-encoded (raw invocations may be binary). */
export const binaryMediaTypes: readonly string[] = [
  "application/octet-stream",
  "application/x-npy",
  "application/x-image",
  "image/*",
  "audio/*",
];

/** API Gateway's own limits that the emulator enforces too. */
export const gatewayLimits = {
  maxBodyBytes: 10 * 1024 * 1024,
  integrationTimeoutMs: INTEGRATION_TIMEOUT_MS,
} as const;

export type GatewayResponseType =
  | "UNAUTHORIZED"
  | "ACCESS_DENIED"
  | "MISSING_AUTHENTICATION_TOKEN"
  | "INVALID_SIGNATURE"
  | "AUTHORIZER_FAILURE"
  | "AUTHORIZER_CONFIGURATION_ERROR"
  | "THROTTLED"
  | "QUOTA_EXCEEDED"
  | "REQUEST_TOO_LARGE"
  | "INTEGRATION_TIMEOUT"
  | "INTEGRATION_FAILURE"
  | "DEFAULT_4XX"
  | "DEFAULT_5XX";

export interface GatewayResponse {
  status: number;
  type: ErrorType;
  code: string;
  message: string;
}

/** Every response API Gateway answers by itself, customised to OpenAI's error shape. */
export const gatewayResponses: Record<GatewayResponseType, GatewayResponse> = {
  UNAUTHORIZED: {
    status: 401,
    type: "authentication_error",
    code: "invalid_api_key",
    message: "Missing, malformed, unknown or revoked API key. Send it as 'Authorization: Bearer <key>'.",
  },
  ACCESS_DENIED: {
    status: 403,
    type: "permission_error",
    code: "access_denied",
    message: "Access denied: this API key's tenant is suspended, or the caller may not use this route.",
  },
  MISSING_AUTHENTICATION_TOKEN: {
    status: 404,
    type: "not_found_error",
    code: "unknown_route",
    message: "No route matches this method and path (admin routes also need a signed request).",
  },
  INVALID_SIGNATURE: {
    status: 403,
    type: "permission_error",
    code: "invalid_admin_credentials",
    message: "The request's signature or admin credentials are not valid.",
  },
  AUTHORIZER_FAILURE: {
    status: 503,
    type: "api_error",
    code: "authorizer_unavailable",
    message: "The API key could not be checked just now. Retry shortly.",
  },
  AUTHORIZER_CONFIGURATION_ERROR: {
    status: 503,
    type: "api_error",
    code: "authorizer_unavailable",
    message: "The API key could not be checked just now. Retry shortly.",
  },
  THROTTLED: {
    status: 429,
    type: "rate_limit_error",
    code: "rate_limit_exceeded",
    message: "Too many requests to this API stage. Slow down and retry.",
  },
  QUOTA_EXCEEDED: {
    status: 429,
    type: "rate_limit_error",
    code: "insufficient_quota",
    message: "The API stage's request quota is exhausted.",
  },
  REQUEST_TOO_LARGE: {
    status: 413,
    type: "invalid_request_error",
    code: "request_too_large",
    message: "The request body exceeds the 10 MB limit.",
  },
  INTEGRATION_TIMEOUT: {
    status: 504,
    type: "api_error",
    code: "timeout",
    message: "The request did not complete within 29 seconds.",
  },
  INTEGRATION_FAILURE: {
    status: 502,
    type: "api_error",
    code: "integration_failure",
    message: "The request could not be completed. Retry shortly.",
  },
  DEFAULT_4XX: {
    status: 400,
    type: "invalid_request_error",
    code: "bad_request",
    message: "The request was rejected by the API gateway.",
  },
  DEFAULT_5XX: {
    status: 502,
    type: "api_error",
    code: "gateway_error",
    message: "The API gateway could not complete the request. Retry shortly.",
  },
};

/** The JSON body of a gateway response; also the response template the stack deploys. */
export const gatewayResponseBody = (r: GatewayResponse): string =>
  JSON.stringify({ error: { message: r.message, type: r.type, param: null, code: r.code } });

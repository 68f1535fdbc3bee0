/**
 * The FAKES of IAM that cannot run here: a bearer admin token stands in for SigV4 on admin routes,
 * and FlushStageAuthorizersCache (the one control-plane call) checks its SigV4 signature with the
 * credential the platform gives its functions. The deployed stage checks both in API Gateway itself.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "./gateway-authorizer";
import { API_ID, type CollectedHeaders, collectHeaders } from "./gateway-event";
import { readBody } from "./http-server";
import { checkSignature, type StaticCredentials } from "./sigv4";

const BEARER = /^Bearer\s+(\S+)$/i;
/** FlushStageAuthorizersCache's path: DELETE /restapis/{restApiId}/stages/{stage}/cache/authorizers. */
export const FLUSH_PATH = /^\/restapis\/([^/]+)\/stages\/([^/]+)\/cache\/authorizers$/;

/** The one admin-token value of the request, compared in constant time. */
export function isAdminToken(authorization: readonly string[] | undefined, adminToken: string): boolean {
  const token = authorization?.length === 1 ? BEARER.exec(authorization[0] ?? "")?.[1] : undefined;
  if (!token) return false;
  const a = Buffer.from(token);
  const b = Buffer.from(adminToken);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** An admin route's IAM check: no bearer token is MISSING_AUTHENTICATION_TOKEN, a wrong one INVALID_SIGNATURE. */
export function checkAdmin(headers: CollectedHeaders, adminToken: string): void {
  const authorization = headers.byName.get("authorization") ?? [];
  const [only] = authorization;
  if (authorization.length === 0 || (only !== undefined && !BEARER.test(only))) {
    throw new GatewayError("MISSING_AUTHENTICATION_TOKEN");
  }
  if (!isAdminToken(authorization, adminToken)) throw new GatewayError("INVALID_SIGNATURE");
}

/**
 * The control-plane call FlushStageAuthorizersCache: 202 and an empty body, as API Gateway answers.
 * Only the platform's functions (SigV4 with their credential) and the admin token may make it.
 * Returns the status sent.
 */
export async function flushStageAuthorizersCache(
  req: IncomingMessage,
  res: ServerResponse,
  target: { restApiId: string | undefined; stage: string | undefined },
  options: { stage: string; adminToken: string; functionCredentials: StaticCredentials; flush: () => void },
): Promise<number> {
  const body = (await readBody(req, 64 * 1024)) ?? Buffer.alloc(0);
  const authorization = collectHeaders(req).byName.get("authorization");
  const refused = isAdminToken(authorization, options.adminToken)
    ? undefined
    : checkSignature(
        { method: "DELETE", url: req.url ?? "/", rawHeaders: req.rawHeaders, body },
        options.functionCredentials,
        "apigateway",
      );
  if (refused) return sendControlPlaneError(res, 403, refused, "The request signature is not valid.");
  if (target.restApiId !== API_ID || target.stage !== options.stage) {
    return sendControlPlaneError(res, 404, "NotFoundException", "Invalid stage identifier specified");
  }
  options.flush();
  res.writeHead(202).end();
  return 202;
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

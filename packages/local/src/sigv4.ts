/**
 * FAKE of IAM for the control-plane calls the local API Gateway answers (FlushStageAuthorizersCache):
 * a call is the platform's functions' own when its AWS Signature Version 4 verifies with the one
 * credential the platform gives them. It proves possession of that secret, as AWS does; there are no
 * policies, roles or session tokens behind it.
 */
import { timingSafeEqual } from "node:crypto";
import { canonicalRequest, sha256Hex, signatureOf } from "@atrium/core/sigv4";
import { appendValue } from "./http-server";

export interface StaticCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SignedRequest {
  method: string;
  /** Path and query exactly as sent on the wire (percent-encoded). */
  url: string;
  rawHeaders: readonly string[];
  body: Buffer;
}

/** The error codes AWS answers when a signature is missing or wrong. */
export type SignatureFailure =
  | "MissingAuthenticationTokenException"
  | "IncompleteSignatureException"
  | "UnrecognizedClientException"
  | "InvalidSignatureException";

// AWS refuses a signature whose X-Amz-Date is more than 15 minutes from its own clock.
const MAX_SKEW_MS = 15 * 60_000;
const AUTHORIZATION =
  /^AWS4-HMAC-SHA256 Credential=([^/,\s]+)\/(\d{8})\/([\w-]+)\/([\w-]+)\/aws4_request,\s*SignedHeaders=([a-z0-9;_.-]+),\s*Signature=([0-9a-f]{64})$/;

/** Undefined when the request is signed with `credentials` for `service`; otherwise why not. */
export function checkSignature(
  request: SignedRequest,
  credentials: StaticCredentials,
  service: string,
  now = Date.now(),
): SignatureFailure | undefined {
  const headers = new Map<string, string[]>();
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    appendValue(
      headers,
      (request.rawHeaders[i] as string).toLowerCase(),
      request.rawHeaders[i + 1] as string,
    );
  }
  const authorization = headers.get("authorization");
  if (!authorization) return "MissingAuthenticationTokenException";
  const [credential, day, region, signedService, signedHeaders, signature] =
    (authorization.length === 1 ? AUTHORIZATION.exec(authorization[0] as string)?.slice(1) : undefined) ?? [];
  const amzDate = headers.get("x-amz-date") ?? [];
  const signedAt = amzDate.length === 1 ? parseAmzDate(amzDate[0] as string) : undefined;
  if (!credential || !day || !region || !signedService || !signedHeaders || !signature) {
    return "IncompleteSignatureException";
  }
  if (signedAt === undefined || amzDate[0]?.slice(0, 8) !== day) return "IncompleteSignatureException";
  if (credential !== credentials.accessKeyId) return "UnrecognizedClientException";
  const names = signedHeaders.split(";");
  if (signedService !== service || Math.abs(now - signedAt) > MAX_SKEW_MS || !names.includes("host")) {
    return "InvalidSignatureException";
  }

  const queryAt = request.url.indexOf("?");
  const canonical = canonicalRequest({
    method: request.method,
    path: queryAt < 0 ? request.url : request.url.slice(0, queryAt),
    query: queryAt < 0 ? "" : request.url.slice(queryAt + 1),
    headers: (name) => headers.get(name) ?? [],
    signedHeaders: names,
    payloadHash: headers.get("x-amz-content-sha256")?.[0] ?? sha256Hex(request.body),
  });
  const expected = Buffer.from(
    signatureOf(
      credentials.secretAccessKey,
      { amzDate: amzDate[0] as string, day, region, service },
      canonical,
    ),
  );
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? undefined
    : "InvalidSignatureException";
}

/** `20261130T101500Z` → epoch milliseconds. */
function parseAmzDate(value: string): number | undefined {
  const parts = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(value);
  if (!parts) return undefined;
  const [year, month, day, hour, minute, second] = parts.slice(1).map(Number) as number[];
  return Date.UTC(year as number, (month as number) - 1, day, hour, minute, second);
}

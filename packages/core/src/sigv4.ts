/**
 * AWS Signature Version 4 (AWS4-HMAC-SHA256): the one implementation the functions sign their AWS
 * calls with (docs/adr/0015-sagemaker-runtime-client.md) and the local API Gateway checks signatures
 * with; S3's variant too (`pathAsSent`). Node's crypto only, so it costs nothing to import.
 */
import { createHmac, hash } from "node:crypto";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  /** A temporary credential's token (STS, Lambda's own role): sent as X-Amz-Security-Token and signed. */
  sessionToken?: string;
}

/** What a request is signed for: the region and the service's signing name (`sagemaker`, `dynamodb`, ...). */
export interface SigningScope {
  region: string;
  service: string;
}

export interface RequestToSign {
  method: string;
  /** The Host header: host name, and the port when it is not the scheme's default. */
  host: string;
  /** The path exactly as it goes on the wire (percent-encoded), without the query. */
  path: string;
  /** The query as it goes on the wire, without `?`; empty when there is none. */
  query?: string;
  /** Headers to send and sign, names in lower case. */
  headers: Record<string, string>;
  body: Uint8Array;
  /**
   * S3's rule: the path is signed exactly as sent (each key segment percent-encoded once), neither
   * normalised nor encoded again, as the SDK's signer does with `uriEscapePath: false`.
   */
  pathAsSent?: boolean;
}

/**
 * Headers never signed, as the AWS SDK's signer leaves them out: ones a proxy or the transport may
 * change or add (hop-by-hop, caching, proxy-* and sec-*), the user agent and the trace header.
 */
const UNSIGNED = new Set([
  "authorization",
  "cache-control",
  "connection",
  "expect",
  "from",
  "keep-alive",
  "max-forwards",
  "pragma",
  "referer",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "user-agent",
  "x-amzn-trace-id",
]);
const signed = (name: string) =>
  !UNSIGNED.has(name) && !name.startsWith("proxy-") && !name.startsWith("sec-");

/**
 * The request's headers with its signature added: `host`, `x-amz-date`, `x-amz-security-token` (for
 * temporary credentials) and `authorization`. Every header given is signed but the unsignable ones.
 */
export function signRequest(
  request: RequestToSign,
  credentials: AwsCredentials,
  scope: SigningScope,
  now: Date = new Date(),
): Record<string, string> {
  const amzDate = toAmzDate(now);
  const headers: Record<string, string> = { ...request.headers, host: request.host, "x-amz-date": amzDate };
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers).filter(signed).sort(compare);
  const canonical = canonicalRequest({
    method: request.method,
    path: request.path,
    pathAsSent: request.pathAsSent,
    query: request.query ?? "",
    headers: (name) => [headers[name] ?? ""],
    signedHeaders: names,
    payloadHash: sha256Hex(request.body),
  });
  const day = amzDate.slice(0, 8);
  const signature = signatureOf(credentials.secretAccessKey, { amzDate, day, ...scope }, canonical);
  headers.authorization =
    `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${credentialScope(day, scope)}, ` +
    `SignedHeaders=${names.join(";")}, Signature=${signature}`;
  return headers;
}

export interface CanonicalParts {
  method: string;
  path: string;
  /** S3: the path signed as sent, not normalised nor encoded again. */
  pathAsSent?: boolean;
  query: string;
  /** A header's values as sent, in order (several when the header was repeated). */
  headers: (name: string) => readonly string[];
  /** Signed header names, lower case, sorted. */
  signedHeaders: readonly string[];
  /** The hex SHA-256 of the body, or the X-Amz-Content-Sha256 the request carries. */
  payloadHash: string;
}

/** SigV4's canonical request: method, canonical path, canonical query, signed headers, payload hash. */
export function canonicalRequest(parts: CanonicalParts): string {
  return [
    parts.method,
    parts.pathAsSent ? parts.path : canonicalPath(parts.path),
    canonicalQuery(parts.query),
    ...parts.signedHeaders.map((name) => `${name}:${parts.headers(name).map(normaliseSpaces).join(",")}`),
    "",
    parts.signedHeaders.join(";"),
    parts.payloadHash,
  ].join("\n");
}

/** The hex signature of a canonical request, signed at `amzDate` (YYYYMMDDTHHMMSSZ) for `day` and scope. */
export function signatureOf(
  secretAccessKey: string,
  at: SigningScope & { amzDate: string; day: string },
  canonical: string,
): string {
  const stringToSign = [
    "AWS4-HMAC-SHA256",
    at.amzDate,
    credentialScope(at.day, at),
    sha256Hex(canonical),
  ].join("\n");
  return createHmac("sha256", signingKey(secretAccessKey, at.day, at))
    .update(stringToSign)
    .digest("hex");
}

/** One-shot: no Hash object per call (two per signature, on every call to AWS). */
export const sha256Hex = (data: Uint8Array | string): string => hash("sha256", data, "hex");

/** `2026-12-01T04:05:06.789Z` → `20261201T040506Z`. */
export const toAmzDate = (at: Date): string => at.toISOString().replace(/[-:]|\.\d{3}/g, "");

const credentialScope = (day: string, scope: SigningScope) =>
  `${day}/${scope.region}/${scope.service}/aws4_request`;

/**
 * Keys derived, by secret, day, region and service: a container signs for a few services (a model
 * call and its ledger write alternate between two on every call) with one secret, or a tenant's, for a
 * whole day. Bounded: the oldest goes first.
 */
const keys = new Map<string, Buffer>();
const MAX_KEYS = 64;

function signingKey(secretAccessKey: string, day: string, scope: SigningScope): Buffer {
  const id = `${secretAccessKey}\n${day}\n${scope.region}\n${scope.service}`;
  const known = keys.get(id);
  if (known) return known;
  let key = hmac(`AWS4${secretAccessKey}`, day);
  for (const part of [scope.region, scope.service, "aws4_request"]) key = hmac(key, part);
  if (keys.size >= MAX_KEYS) keys.delete(keys.keys().next().value as string);
  keys.set(id, key);
  return key;
}

/** Dot segments resolved, empty ones dropped, each segment encoded again (as SigV4 wants for all but S3). */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") segments.pop();
    else segments.push(encode(segment));
  }
  const trailing = segments.length > 0 && path.endsWith("/") ? "/" : "";
  return `/${segments.join("/")}${trailing}`;
}

/** Names and values decoded and encoded again, sorted by name, then value (code-unit order). */
function canonicalQuery(query: string): string {
  const pairs = query
    .split("&")
    .filter(Boolean)
    .map((pair) => {
      const equals = pair.indexOf("=");
      const name = equals < 0 ? pair : pair.slice(0, equals);
      const value = equals < 0 ? "" : pair.slice(equals + 1);
      return [encode(decode(name)), encode(decode(value))] as const;
    });
  pairs.sort(([a, av], [b, bv]) => compare(a, b) || compare(av, bv));
  return pairs.map(([name, value]) => `${name}=${value}`).join("&");
}

/** RFC 3986 percent-encoding: everything but A-Z a-z 0-9 - _ . ~ */
const encode = (text: string) =>
  encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Percent-decoding that leaves a malformed escape as it is, instead of throwing. */
function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

const normaliseSpaces = (value: string) => value.trim().replace(/\s+/g, " ");

const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

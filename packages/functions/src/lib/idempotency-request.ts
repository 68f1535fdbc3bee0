/**
 * What identifies an idempotent request: the key the client sent in its Idempotency-Key header (IETF
 * httpapi draft), and a fingerprint of the request that key may only ever be used for.
 */
import { createHmac } from "node:crypto";
import { invalidRequest } from "@atrium/core/errors";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { bodyBytes } from "./http";

export const IDEMPOTENCY_HEADER = "Idempotency-Key";
export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** The header's one value: a token or a structured-field string; 400 when it is not a usable key. */
export function idempotencyKeyOf(event: APIGatewayProxyEvent): string | undefined {
  const wanted = IDEMPOTENCY_HEADER.toLowerCase();
  const values: string[] = [];
  for (const [name, list] of Object.entries(event.multiValueHeaders ?? {})) {
    if (name.toLowerCase() === wanted) values.push(...(list ?? []));
  }
  if (values.length === 0) {
    for (const [name, value] of Object.entries(event.headers ?? {})) {
      if (name.toLowerCase() === wanted && value !== undefined) values.push(value);
    }
  }
  if (values.length === 0) return undefined;
  const refused = (why: string) =>
    invalidRequest("invalid_idempotency_key", `${IDEMPOTENCY_HEADER}: ${why}`, IDEMPOTENCY_HEADER);
  if (values.length > 1) throw refused("send it once");
  const raw = (values[0] as string).trim();
  const quoted = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(raw);
  const key = quoted ? (quoted[1] as string).replace(/\\(["\\])/g, "$1") : raw;
  if (key.length === 0) throw refused("empty");
  if (key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
    throw refused(`longer than ${MAX_IDEMPOTENCY_KEY_LENGTH} characters`);
  }
  if (!/^[\x20-\x7e]+$/.test(key)) throw refused("printable ASCII only");
  return key;
}

/** What makes two calls "the same request": route, parameters, media types and body bytes (keyed, so no plain hash of a prompt is stored). */
export function fingerprint(event: APIGatewayProxyEvent, secret: string): string {
  const header = (name: string) =>
    Object.entries(event.headers ?? {}).find(([key]) => key.toLowerCase() === name)?.[1] ?? "";
  const parameters = Object.entries(event.pathParameters ?? {}).sort(([a], [b]) => a.localeCompare(b));
  const described = JSON.stringify([
    event.httpMethod,
    event.resource,
    parameters,
    header("content-type"),
    header("accept"),
  ]);
  return createHmac("sha256", secret)
    .update(described)
    .update("\n")
    .update(bodyBytes(event))
    .digest("base64");
}

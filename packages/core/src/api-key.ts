import { hash } from "node:crypto";
import { newKeyId, randomString } from "./ids";

/** Recognisable by people and secret scanners; the rest is ~238 bits of entropy. */
export const KEY_PREFIX = "atr_";
const SECRET_LENGTH = 40;
const KEY_PATTERN = /^atr_[0-9A-Za-z]{40}$/;

export interface NewApiKey {
  /** Shown once to the caller, never stored. */
  plaintext: string;
  hash: string;
  keyId: string;
  /** Safe to display: enough to tell keys apart, useless to an attacker. */
  hint: string;
}

export const hashApiKey = (plaintext: string): string => hash("sha256", plaintext, "hex");

/** Cheap shape check so malformed keys are refused without a DynamoDB call. */
export const isWellFormedApiKey = (candidate: string): boolean => KEY_PATTERN.test(candidate);

export const hintOf = (plaintext: string) =>
  `${plaintext.slice(0, KEY_PREFIX.length + 4)}…${plaintext.slice(-4)}`;

export function generateApiKey(): NewApiKey {
  const plaintext = `${KEY_PREFIX}${randomString(SECRET_LENGTH)}`;
  return { plaintext, hash: hashApiKey(plaintext), keyId: newKeyId(), hint: hintOf(plaintext) };
}

/** `Authorization: Bearer <key>` → the key, or undefined when the header is absent or not a bearer. */
export function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return match?.[1];
}

/** A request's headers as API Gateway (REST) hands them to Lambda: names as sent, last value and all values. */
export interface RequestHeaders {
  headers?: Record<string, string | undefined> | null;
  multiValueHeaders?: Record<string, string[] | undefined> | null;
}

/**
 * Every `Authorization` value of a request, in any letter case, from both maps: a REST API keeps
 * `Authorization` and `authorization` as two entries, and `headers` holds only the last of repeated lines.
 */
export function authorizationValues({ headers, multiValueHeaders }: RequestHeaders): string[] {
  const single = headers ?? {};
  const multi = multiValueHeaders ?? {};
  const values: string[] = [];
  for (const name of new Set([...Object.keys(single), ...Object.keys(multi)])) {
    if (name.toLowerCase() !== "authorization") continue;
    const all = (Object.hasOwn(multi, name) ? multi[name] : undefined) ?? [];
    const last = Object.hasOwn(single, name) ? single[name] : undefined;
    values.push(...all);
    if (last !== undefined && !all.includes(last)) values.push(last);
  }
  return values;
}

/**
 * The one API key a request carries, or undefined. More than one `Authorization` value is no key at
 * all, so the key checked is always the one the gateway cached the decision under; a comma-joined
 * pair is not a well-formed key either.
 */
export function apiKeyOfRequest(request: RequestHeaders): string | undefined {
  const values = authorizationValues(request);
  if (values.length !== 1) return undefined;
  const key = bearerToken(values[0]);
  return key && isWellFormedApiKey(key) ? key : undefined;
}

import { createHash } from "node:crypto";
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

export const hashApiKey = (plaintext: string): string => createHash("sha256").update(plaintext).digest("hex");

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

/**
 * A reply kept for an idempotent replay is sealed (AES-256-GCM, gzip inside) under a key derived from the
 * client's Idempotency-Key, which is stored only as a hash: the table never holds a readable API key or
 * completion, and only a caller presenting the same Idempotency-Key can open it again.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import type { APIGatewayProxyResult } from "aws-lambda";

const INFO = "atrium idempotent reply v1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** `secret`: the Idempotency-Key; `scope`: who sent it (so one key string opens nothing of another caller's). */
const sealingKey = (secret: string, scope: string) =>
  Buffer.from(hkdfSync("sha256", secret, scope, INFO, 32));

export function sealReply(reply: APIGatewayProxyResult, secret: string, scope: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", sealingKey(secret, scope), iv);
  const sealed = Buffer.concat([cipher.update(gzipSync(JSON.stringify(reply))), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64");
}

/** Throws when the reply was sealed under another key or scope, or altered. */
export function openReply(sealed: string, secret: string, scope: string): APIGatewayProxyResult {
  const bytes = Buffer.from(sealed, "base64");
  const decipher = createDecipheriv("aes-256-gcm", sealingKey(secret, scope), bytes.subarray(0, IV_BYTES));
  decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  const zipped = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
  return JSON.parse(gunzipSync(zipped).toString("utf8")) as APIGatewayProxyResult;
}

/**
 * The rules of an API key's life after creation: rotation with a grace period, revocation, the
 * last-used stamp the authorizer keeps, and how a key is shown to operators (never its plaintext).
 */

import { conflict, fromValidationIssues } from "./errors";
import * as z from "./zod";

export type KeyStatus = "active" | "revoked";

/** What is stored about a key besides its hash. */
export interface KeyRecord {
  tenantId: string;
  keyId: string;
  hint: string;
  status: KeyStatus;
  createdAt: string;
  /** Set by a rotation: the key stops working at this instant. */
  expiresAt?: string;
  /** The key that a rotation made to replace this one. */
  replacedBy?: string;
  revokedAt?: string;
  /** Refreshed by the authorizer at most once per LAST_USED_RESOLUTION_MS (plus the authorizer cache TTL). */
  lastUsedAt?: string;
}

/** `expiring`: rotated, still inside its grace period. */
export type KeyState = "active" | "expiring" | "expired" | "revoked";

export function keyState(key: KeyRecord, now = Date.now()): KeyState {
  if (key.status === "revoked") return "revoked";
  if (key.expiresAt === undefined) return "active";
  return Date.parse(key.expiresAt) > now ? "expiring" : "expired";
}

/** Whether the authorizer may admit a call with this key at `now`. */
export const isKeyUsable = (key: KeyRecord, now = Date.now()): boolean => {
  const state = keyState(key, now);
  return state === "active" || state === "expiring";
};

/**
 * The authorizer stamps `lastUsedAt` only when the stored stamp is older than this, so a busy key
 * costs one write per 5 minutes, not one per call (and the authorizer only runs on cache misses).
 */
export const LAST_USED_RESOLUTION_MS = 5 * 60_000;

export const lastUsedIsStale = (key: KeyRecord, now = Date.now()): boolean =>
  key.lastUsedAt === undefined || now - Date.parse(key.lastUsedAt) >= LAST_USED_RESOLUTION_MS;

/** Keys a tenant may hold that still work (active or in a grace period): enough for any rotation scheme. */
export const MAX_LIVE_KEYS = 10;

/** The longest grace period a rotation may give the old key. */
export const MAX_GRACE_SECONDS = 30 * 24 * 3600;

export const RotateKeyInput = z.strictObject({
  /** How long the old key keeps working; 0 stops it at once. */
  graceSeconds: z.number().check(z.int(), z.gte(0), z.lte(MAX_GRACE_SECONDS)),
});

/** Checks a rotation request against the key it rotates; returns when the old key stops working. */
export function rotationExpiry(key: KeyRecord, raw: unknown, now = Date.now()): Date {
  const parsed = RotateKeyInput.safeParse(raw);
  if (!parsed.success) throw fromValidationIssues(parsed.error.issues);
  const state = keyState(key, now);
  if (state !== "active") {
    throw conflict(
      `key_${state}`,
      `key ${key.keyId} is ${state}${key.replacedBy ? ` (replaced by ${key.replacedBy})` : ""}; only an active key can be rotated`,
      "keyId",
    );
  }
  return new Date(now + parsed.data.graceSeconds * 1000);
}

/** Checks that a key may be revoked: an expired or revoked key already admits nobody. */
export function checkRevocable(key: KeyRecord, now = Date.now()): void {
  const state = keyState(key, now);
  if (state === "revoked" || state === "expired") {
    throw conflict(`key_${state}`, `key ${key.keyId} is already ${state}`, "keyId");
  }
}

/** Checks that a tenant may get one more key. */
export function checkRoomForKey(keys: readonly KeyRecord[], now = Date.now()): void {
  const live = keys.filter((key) => isKeyUsable(key, now)).length;
  if (live >= MAX_LIVE_KEYS) {
    throw conflict(
      "too_many_keys",
      `this tenant already has ${live} working keys (the most is ${MAX_LIVE_KEYS}); revoke one first`,
    );
  }
}

/** How a key is listed: its hint and dates, never the plaintext or the hash. */
export function keyView(key: KeyRecord, now = Date.now()) {
  return {
    keyId: key.keyId,
    hint: key.hint,
    state: keyState(key, now),
    createdAt: key.createdAt,
    lastUsedAt: key.lastUsedAt ?? null,
    expiresAt: key.expiresAt ?? null,
    ...(key.replacedBy ? { replacedBy: key.replacedBy } : {}),
    ...(key.revokedAt ? { revokedAt: key.revokedAt } : {}),
  };
}
export type KeyView = ReturnType<typeof keyView>;

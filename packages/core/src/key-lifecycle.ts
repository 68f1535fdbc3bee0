/**
 * The rules of an API key's life after creation: rotation with a grace period, revocation, how many
 * keys a tenant may hold, and how a key is shown to operators (never its plaintext). What a key's
 * record says at an instant (its state, the last-used stamp the authorizer keeps) is ./key-state.
 */

import { conflict, fromValidationIssues } from "./errors";
import { isKeyUsable, type KeyRecord, keyState } from "./key-state";
import * as z from "./zod";

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

/**
 * What a stored API key's record says at an instant: active, in its grace period, expired or revoked,
 * and whether its last-used stamp is due. Without zod, so the authorizer, which needs only this, does
 * not load the lifecycle's input schemas (docs/adr/0014-lambda-bundles.md).
 */

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

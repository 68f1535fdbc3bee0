/**
 * API key admin actions: create, rotate, revoke. A create or rotation also bumps the profile's
 * revision, so the live-key count it checked cannot change underneath it and a concurrent delete
 * (which revokes the keys it read) cannot miss the new key.
 */
import { generateApiKey, type NewApiKey } from "../api-key";
import { type AuditChange, auditEntry } from "../audit";
import { notFound } from "../errors";
import { checkRevocable, checkRoomForKey, rotationExpiry } from "../key-lifecycle";
import { type KeyRecord, keyState } from "../key-state";
import { findKeyById, keyCreation, keyExpiry, keyRevocation, listKeys, type StoredKey } from "../key-store";
import { profileUpdate, requireProfile, tenantDeleted, type VersionedTenant } from "../profiles";
import { type Table, type Write, writeAtomically } from "../transaction";

/** One more key for an active or suspended tenant; its plaintext is returned once. */
export async function createKey(
  table: Table,
  actor: string,
  tenantId: string,
  now = new Date(),
): Promise<{ key: NewApiKey; record: KeyRecord }> {
  const profile = await liveProfile(table, tenantId);
  checkRoomForKey(
    (await listKeys(table, tenantId)).map((key) => key.record),
    now.getTime(),
  );
  const key = generateApiKey();
  const { record, writes } = keyCreation(table, tenantId, key, now.toISOString());
  const changes = { hint: { to: key.hint } };
  const audit = auditEntry(table, { tenantId, actor, action: "key.create", target: key.keyId, changes }, now);
  await writeAtomically(table, [keyCountGuard(table, profile), ...writes, audit.write]);
  return { key, record };
}

/**
 * A new key now; the old one keeps working for the grace period (`{graceSeconds}`) and is refused from
 * its end on. Both keys and the audit entry in one transaction: there is never a moment with none.
 */
export async function rotateKey(
  table: Table,
  actor: string,
  tenantId: string,
  keyId: string,
  raw: unknown,
  now = new Date(),
): Promise<{ key: NewApiKey; record: KeyRecord; rotated: KeyRecord }> {
  const profile = await liveProfile(table, tenantId);
  const old = await requireKey(table, tenantId, keyId);
  const expiresAt = rotationExpiry(old.record, raw, now.getTime());
  const others = (await listKeys(table, tenantId)).filter((key) => key.record.keyId !== keyId);
  checkRoomForKey(
    others.map((key) => key.record),
    now.getTime(),
  );
  const key = generateApiKey();
  const { record, writes } = keyCreation(table, tenantId, key, now.toISOString());
  const rotated: KeyRecord = { ...old.record, expiresAt: expiresAt.toISOString(), replacedBy: key.keyId };
  const changes = { expiresAt: { to: rotated.expiresAt }, replacedBy: { to: key.keyId } };
  const audit = auditEntry(table, { tenantId, actor, action: "key.rotate", target: keyId, changes }, now);
  await writeAtomically(table, [
    keyCountGuard(table, profile),
    ...writes,
    keyExpiry(table, old, expiresAt, key.keyId),
    audit.write,
  ]);
  return { key, record, rotated };
}

/** Revokes a key: refused (401) from the authorizer's next run. */
export async function revokeKey(
  table: Table,
  actor: string,
  tenantId: string,
  keyId: string,
  now = new Date(),
): Promise<{ revoked: KeyRecord; changes: Record<string, AuditChange> }> {
  await requireProfile(table, tenantId);
  const key = await requireKey(table, tenantId, keyId);
  checkRevocable(key.record, now.getTime());
  const changes = { state: { from: keyState(key.record, now.getTime()), to: "revoked" } };
  const audit = auditEntry(table, { tenantId, actor, action: "key.revoke", target: keyId, changes }, now);
  await writeAtomically(table, [keyRevocation(table, key, now), audit.write]);
  return { revoked: { ...key.record, status: "revoked", revokedAt: now.toISOString() }, changes };
}

export async function requireKey(table: Table, tenantId: string, keyId: string): Promise<StoredKey> {
  const key = await findKeyById(table, tenantId, keyId);
  if (!key) throw notFound("key_not_found", `keyId: tenant ${tenantId} has no key ${keyId}`, "keyId");
  return key;
}

/** Keys can be added to an active or suspended tenant, never to a deleted one. */
async function liveProfile(table: Table, tenantId: string): Promise<VersionedTenant> {
  const profile = await requireProfile(table, tenantId);
  if (profile.tenant.status === "deleted") throw tenantDeleted(tenantId);
  return profile;
}

/** Bumps the revision the key count was read at: a concurrent create, rotation or delete answers 409. */
function keyCountGuard(table: Table, { tenant, version }: VersionedTenant): Write {
  return profileUpdate(table, tenant.id, version, {
    condition: "#status <> :deleted",
    names: { "#status": "status" },
    values: { ":deleted": "deleted" },
  });
}

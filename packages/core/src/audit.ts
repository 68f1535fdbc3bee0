/**
 * The SOC2 audit trail of admin actions: one entry per action that changed something, appended and
 * never updated, in the same transaction as the change it records. Entries live in their tenant's own
 * partition (`AUDIT#<id>#`), apart from the tenant's data, so an erase can remove every entry but the
 * record of the erase itself.
 */
import { decodeCursor, encodeCursor } from "./cursor";
import { randomString } from "./ids";
import { auditKey } from "./keys";
import { deletePartition } from "./partition";
import type { Table, Write } from "./transaction";

export const AUDIT_ACTIONS = [
  "tenant.create",
  "tenant.update",
  "tenant.suspend",
  "tenant.resume",
  "tenant.delete",
  "tenant.erase",
  "key.create",
  "key.rotate",
  "key.revoke",
  "endpoint.add",
  "endpoint.remove",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** The one action whose entry outlives an erase: it names the tenant id and nothing else of the tenant. */
export const ERASE_ACTION: AuditAction = "tenant.erase";

export interface AuditChange {
  from?: unknown;
  to?: unknown;
}

export interface AuditEntry {
  tenantId: string;
  /** `<ISO time>#<random>`: time-ordered and never reused, so a put can only ever add. */
  id: string;
  at: string;
  /** Who: the IAM caller's ARN when deployed, `local-admin` under `npm start`. */
  actor: string;
  action: AuditAction;
  /** What the action was applied to: the tenant id, a key id or a model name. */
  target: string;
  /** What changed, field by field. */
  changes?: Record<string, AuditChange>;
}

export type NewAuditEntry = Omit<AuditEntry, "id" | "at">;

/** Field-by-field differences between two versions of a record (undefined = absent). */
export function changesBetween<T extends object>(
  before: T | undefined,
  after: T | undefined,
  fields: readonly (keyof T & string)[],
): Record<string, AuditChange> {
  const changes: Record<string, AuditChange> = {};
  for (const field of fields) {
    const from = before?.[field];
    const to = after?.[field];
    if (JSON.stringify(from) === JSON.stringify(to)) continue;
    changes[field] = { ...(from !== undefined ? { from } : {}), ...(to !== undefined ? { to } : {}) };
  }
  return changes;
}

/**
 * An entry to write in the same transaction as the change it records. The condition makes an
 * overwrite impossible even if an id ever repeated (the time plus ~71 random bits: it will not).
 */
export function auditEntry(
  table: Table,
  entry: NewAuditEntry,
  now: Date,
): { entry: AuditEntry; write: Write } {
  const stored: AuditEntry = {
    ...entry,
    id: `${now.toISOString()}#${randomString(12)}`,
    at: now.toISOString(),
  };
  return {
    entry: stored,
    write: {
      action: {
        Put: {
          TableName: table.name,
          Item: { pk: auditKey(entry.tenantId), sk: stored.id, type: "audit", ...stored },
          ConditionExpression: "attribute_not_exists(#pk)",
          ExpressionAttributeNames: { "#pk": "pk" },
        },
      },
      refused: () => new Error(`audit entry ${stored.id} exists already; nothing was written`),
    },
  };
}

/** A tenant's entries, oldest first, a page at a time (consistent). */
export async function listAuditEntries(
  table: Table,
  tenantId: string,
  page: { limit: number; cursor?: string },
): Promise<{ entries: AuditEntry[]; nextCursor?: string }> {
  const pk = auditKey(tenantId);
  const start = page.cursor
    ? decodeCursor(page.cursor, (p) => p.pk === pk && typeof p.sk === "string" && Object.keys(p).length === 2)
    : undefined;
  const result = await table.db.query({
    TableName: table.name,
    KeyConditionExpression: "#pk = :pk",
    ExpressionAttributeNames: { "#pk": "pk" },
    ExpressionAttributeValues: { ":pk": pk },
    Limit: page.limit,
    ConsistentRead: true,
    ...(start ? { ExclusiveStartKey: start } : {}),
  });
  const entries = (result.Items ?? []).map(toEntry);
  const last = result.LastEvaluatedKey as Record<string, string> | undefined;
  return { entries, ...(last ? { nextCursor: encodeCursor(last) } : {}) };
}

/** Deletes a tenant's entries except erase records; returns how many went. */
export function eraseAuditTrail(table: Table, tenantId: string): Promise<number> {
  return deletePartition(table.db, table.name, auditKey(tenantId), (item) => item.action === ERASE_ACTION);
}

function toEntry(item: Record<string, unknown>): AuditEntry {
  const { tenantId, id, at, actor, action, target, changes } = item as unknown as AuditEntry;
  return { tenantId, id, at, actor, action, target, ...(changes ? { changes } : {}) };
}

/**
 * The usage ledger as a container writes it (docs/adr/0010-usage-ledger.md): each settled call adds
 * to its tenant's hour and model with one UpdateItem, never retried; refusals are counted here and
 * written with the tenant's next ledger write, or once 10 s have passed since its last one.
 */

import { UsageTable } from "@atrium/core/tables";
import {
  callCounters,
  hourOf,
  type LedgerCounters,
  ledgerUpdate,
  type RefusalReason,
  refusalCounter,
  type SettledCall,
} from "@atrium/core/usage-ledger";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { config, requireEnv } from "./clients";
import { logger, metrics } from "./observability";
import { tenantClients } from "./tenant-clients";

const tableName = requireEnv(UsageTable.env);
/** How long a tenant's refusal counts may wait in the container for a write. */
export const REFUSALS_FLUSH_MS = 10_000;

/** Per tenant: refusal counts not yet written (by hour and model), and when the tenant's last write was. */
const pending = new Map<string, { refusals: Map<string, LedgerCounters>; lastWriteAt: number }>();

const entryKey = (hour: string, model: string) => `${hour} ${model}`;

function pendingOf(tenantId: string) {
  let state = pending.get(tenantId);
  if (!state) {
    state = { refusals: new Map(), lastWriteAt: Date.now() };
    pending.set(tenantId, state);
  }
  return state;
}

/** Records a settled call, with the tenant's refusal counts waiting in this container. */
export async function recordCall(tenantId: string, call: SettledCall, now = Date.now()): Promise<void> {
  const state = pendingOf(tenantId);
  const hour = hourOf(now);
  const key = entryKey(hour, call.model);
  const counters = add(callCounters(call), state.refusals.get(key) ?? {});
  state.refusals.delete(key);
  const writes = [{ hour, model: call.model, counters }, ...drain(state)];
  await write(tenantId, writes, state, now);
}

/** Counts a refused call; written with the tenant's next write, or now when its counts have waited long enough. */
export async function recordRefusal(
  tenantId: string,
  model: string,
  reason: RefusalReason,
  now = Date.now(),
): Promise<void> {
  const state = pendingOf(tenantId);
  const key = entryKey(hourOf(now), model);
  state.refusals.set(key, add(state.refusals.get(key) ?? {}, { [refusalCounter(reason)]: 1 }));
  if (now - state.lastWriteAt < REFUSALS_FLUSH_MS) return;
  await write(tenantId, drain(state), state, now);
}

function drain(state: { refusals: Map<string, LedgerCounters> }) {
  const entries = [...state.refusals.entries()].map(([key, counters]) => {
    const [hour = "", model = ""] = key.split(" ");
    return { hour, model, counters };
  });
  state.refusals.clear();
  return entries;
}

async function write(
  tenantId: string,
  entries: { hour: string; model: string; counters: LedgerCounters }[],
  state: { refusals: Map<string, LedgerCounters>; lastWriteAt: number },
  now: number,
): Promise<void> {
  state.lastWriteAt = now;
  // Only tenants with refusals still to write are kept, so the map stays as small as they are.
  if (state.refusals.size === 0) pending.delete(tenantId);
  const { ledger } = tenantClients(tenantId);
  await Promise.all(
    entries.map(async (entry) => {
      try {
        await ledger.send(
          new UpdateCommand(ledgerUpdate(tableName, { tenantId, ...entry }, config.usageRetentionDays)),
        );
      } catch (err) {
        // Never retried: it may have applied. The report's reconciliation shows what is missing.
        metrics.addMetric("LedgerWriteFailed", MetricUnit.Count, 1);
        logger.error("usage ledger write failed", {
          error: (err as Error).name,
          hour: entry.hour,
          model: entry.model,
        });
      }
    }),
  );
}

function add(a: LedgerCounters, b: LedgerCounters): LedgerCounters {
  const sum = { ...a };
  for (const [name, value] of Object.entries(b)) sum[name] = (sum[name] ?? 0) + value;
  return sum;
}

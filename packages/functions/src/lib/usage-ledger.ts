/**
 * The usage ledger as a container writes it (docs/adr/0010-usage-ledger.md): each settled call adds
 * to its tenant's hour and model with one UpdateItem, never retried, shared with the calls settling
 * meanwhile in the same container (group commit); refusals are counted here and written with the
 * tenant's next ledger write, or once 10 s have passed since its last one.
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
  await Promise.all(entries.map((entry) => enqueue(tenantId, entry)));
}

/** Counters waiting for their ledger item's next write, and the callers waiting for it. */
interface Batch {
  hour: string;
  model: string;
  counters: LedgerCounters;
  written: Promise<void>;
  done: () => void;
}

/** Per ledger item: whether a write is on its way, and the batch that waits for it to finish. */
const lanes = new Map<string, { writing: boolean; batch?: Batch }>();

/**
 * Group commit: one write per ledger item at a time. Counters that arrive while it is on its way
 * are added up and go in the item's next write, which starts as soon as it is back; each caller's
 * promise resolves once a write holding its counters has returned. One call at a time (a Lambda
 * container) writes each call at once; many at once (the local gateway) share writes.
 */
function enqueue(tenantId: string, entry: { hour: string; model: string; counters: LedgerCounters }) {
  const key = `${tenantId} ${entryKey(entry.hour, entry.model)}`;
  let lane = lanes.get(key);
  if (!lane) {
    lane = { writing: false };
    lanes.set(key, lane);
  }
  if (!lane.batch) {
    let done = () => {};
    const written = new Promise<void>((resolve) => {
      done = resolve;
    });
    lane.batch = { hour: entry.hour, model: entry.model, counters: {}, written, done };
  }
  lane.batch.counters = add(lane.batch.counters, entry.counters);
  const { written } = lane.batch;
  if (!lane.writing) void pump(key, tenantId, lane);
  return written;
}

async function pump(key: string, tenantId: string, lane: { writing: boolean; batch?: Batch }) {
  lane.writing = true;
  for (let batch = lane.batch; batch; batch = lane.batch) {
    lane.batch = undefined;
    await send(tenantId, batch);
    batch.done();
  }
  lane.writing = false;
  lanes.delete(key);
}

/** One ledger UpdateItem; never retried (it may have applied) and never thrown. */
async function send(tenantId: string, entry: { hour: string; model: string; counters: LedgerCounters }) {
  const { ledger } = tenantClients(tenantId);
  try {
    await ledger.update(ledgerUpdate(tableName, { tenantId, ...entry }, config.usageRetentionDays));
  } catch (err) {
    // The report's reconciliation shows what is missing.
    metrics.addMetric("LedgerWriteFailed", MetricUnit.Count, 1);
    logger.error("usage ledger write failed", {
      error: (err as Error).name,
      hour: entry.hour,
      model: entry.model,
    });
  }
}

function add(a: LedgerCounters, b: LedgerCounters): LedgerCounters {
  const sum = { ...a };
  for (const [name, value] of Object.entries(b)) sum[name] = (sum[name] ?? 0) + value;
  return sum;
}

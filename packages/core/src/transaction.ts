/**
 * One DynamoDB transaction (TransactWriteItems) for each admin action: the change and its audit entry
 * are written together or not at all. A refused condition becomes the domain error its write names.
 */
import { type DynamoCallError, type DynamoClient, isTransactionCanceled } from "./dynamodb/client";
import type { TransactWriteInput } from "./dynamodb/operations";
import { conflict } from "./errors";

/** The tenant table as the admin side sees it: a DynamoDB client and the table's name. */
export interface Table {
  db: DynamoClient;
  name: string;
}

type TransactItem = NonNullable<TransactWriteInput["TransactItems"]>[number];

/** One action of a transaction, and what its refused condition means. */
export interface Write {
  action: TransactItem;
  /** The error for a refused condition, given the item as it was (ALL_OLD; undefined: there was none). */
  refused?: (old: Record<string, unknown> | undefined) => Error;
}

/** DynamoDB's limit of actions in one TransactWriteItems. */
export const MAX_TRANSACTION_WRITES = 100;

/** Writes every action or none. The client sends a ClientRequestToken, so its own retries cannot apply it twice. */
export async function writeAtomically(table: Table, writes: readonly Write[]): Promise<void> {
  if (writes.length > MAX_TRANSACTION_WRITES) {
    throw new Error(`${writes.length} writes do not fit one transaction (at most ${MAX_TRANSACTION_WRITES})`);
  }
  try {
    await table.db.transactWrite({ TransactItems: writes.map((write) => write.action) });
  } catch (err) {
    if (isTransactionCanceled(err)) throw refusal(err, writes);
    throw err;
  }
}

function refusal(err: DynamoCallError, writes: readonly Write[]): Error {
  const reasons = err.cancellationReasons ?? [];
  const failed = reasons.findIndex((reason) => reason.code === "ConditionalCheckFailed");
  if (failed >= 0) {
    const reason = reasons[failed];
    const old = reason?.item;
    const refused = writes[failed]?.refused;
    if (refused) return refused(old);
    return new Error(`condition of transaction write ${failed} failed unexpectedly`);
  }
  // Another transaction held one of the items: nothing was written, and the same call can be retried.
  if (reasons.some((reason) => reason.code === "TransactionConflict")) {
    return conflict("concurrent_change", "Another change to this tenant was in progress; retry.");
  }
  return err;
}

/** `ReturnValuesOnConditionCheckFailure: ALL_OLD`, for writes whose refusal depends on the item as it was. */
export const RETURN_OLD = { ReturnValuesOnConditionCheckFailure: "ALL_OLD" } as const;

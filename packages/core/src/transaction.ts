/**
 * One DynamoDB transaction (TransactWriteItems) for each admin action: the change and its audit entry
 * are written together or not at all. A refused condition becomes the domain error its write names.
 */
import { TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  type DynamoDBDocumentClient,
  TransactWriteCommand,
  type TransactWriteCommandInput,
} from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import { conflict } from "./errors";

/** The tenant table as the admin side sees it: a document client and the table's name. */
export interface Table {
  db: DynamoDBDocumentClient;
  name: string;
}

type TransactItem = NonNullable<TransactWriteCommandInput["TransactItems"]>[number];

/** One action of a transaction, and what its refused condition means. */
export interface Write {
  action: TransactItem;
  /** The error for a refused condition, given the item as it was (ALL_OLD; undefined: there was none). */
  refused?: (old: Record<string, unknown> | undefined) => Error;
}

/** DynamoDB's limit of actions in one TransactWriteItems. */
export const MAX_TRANSACTION_WRITES = 100;

/** Writes every action or none. The SDK sends a ClientRequestToken, so its own retries cannot apply it twice. */
export async function writeAtomically(table: Table, writes: readonly Write[]): Promise<void> {
  if (writes.length > MAX_TRANSACTION_WRITES) {
    throw new Error(`${writes.length} writes do not fit one transaction (at most ${MAX_TRANSACTION_WRITES})`);
  }
  try {
    await table.db.send(new TransactWriteCommand({ TransactItems: writes.map((write) => write.action) }));
  } catch (err) {
    if (err instanceof TransactionCanceledException) throw refusal(err, writes);
    throw err;
  }
}

function refusal(err: TransactionCanceledException, writes: readonly Write[]): Error {
  const reasons = err.CancellationReasons ?? [];
  const failed = reasons.findIndex((reason) => reason.Code === "ConditionalCheckFailed");
  if (failed >= 0) {
    const reason = reasons[failed];
    const old = reason?.Item ? unmarshall(reason.Item as Parameters<typeof unmarshall>[0]) : undefined;
    const refused = writes[failed]?.refused;
    if (refused) return refused(old);
    return new Error(`condition of transaction write ${failed} failed unexpectedly`);
  }
  // Another transaction held one of the items: nothing was written, and the same call can be retried.
  if (reasons.some((reason) => reason.Code === "TransactionConflict")) {
    return conflict("concurrent_change", "Another change to this tenant was in progress; retry.");
  }
  return err;
}

/** `ReturnValuesOnConditionCheckFailure: ALL_OLD`, for writes whose refusal depends on the item as it was. */
export const RETURN_OLD = { ReturnValuesOnConditionCheckFailure: "ALL_OLD" } as const;

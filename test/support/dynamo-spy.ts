/**
 * A look at what Atrium's DynamoDB client sends, for what DynamoDB Local cannot show by itself: which
 * reads ask for consistency, and what happens when something else writes just before a transaction.
 */
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { fromItem } from "@atrium/core/dynamodb/marshall";

export interface SentCommand {
  /** DynamoDB's operation: GetItem, Query, TransactWriteItems... */
  command: string;
  /** Wire form: attribute values marshalled. */
  input: Record<string, unknown>;
}

/** Records every request the client sends until `stop()`. */
export function recordCommands(client: DynamoClient): { sent: SentCommand[]; stop(): void } {
  const sent: SentCommand[] = [];
  const stop = client.beforeSend((command, input) => {
    sent.push({ command, input });
  });
  return { sent, stop };
}

/** The reads among `sent` (GetItem, Query, BatchGetItem), each with the table or index it read and its consistency. */
export function readsOf(sent: readonly SentCommand[]) {
  const reads: { command: string; table: string; index?: string; consistent: boolean }[] = [];
  for (const { command, input } of sent) {
    if (command === "GetItem" || command === "Query") {
      reads.push({
        command,
        table: String(input.TableName),
        ...(input.IndexName ? { index: String(input.IndexName) } : {}),
        consistent: input.ConsistentRead === true,
      });
    } else if (command === "BatchGetItem") {
      const requests = input.RequestItems as Record<string, { ConsistentRead?: boolean }>;
      for (const [table, request] of Object.entries(requests)) {
        reads.push({ command, table, consistent: request.ConsistentRead === true });
      }
    }
  }
  return reads;
}

type TransactItems = { Put?: { Item: Parameters<typeof fromItem>[0] }; [other: string]: unknown }[];

/**
 * Runs `meddle` once, just before the client's next TransactWriteItems leaves, with the items it
 * puts (unmarshalled): a stand-in for another writer that got there first.
 */
export function beforeNextTransaction(
  client: DynamoClient,
  meddle: (puts: Record<string, unknown>[]) => Promise<void>,
): void {
  const stop = client.beforeSend(async (command, input) => {
    if (command !== "TransactWriteItems") return;
    stop();
    const items = (input as { TransactItems: TransactItems }).TransactItems;
    await meddle(items.flatMap((item) => (item.Put ? [fromItem(item.Put.Item)] : [])));
  });
}

/**
 * An SDK middleware on a real DynamoDB client, for what DynamoDB Local cannot show by itself: which
 * reads ask for consistency, and what happens when something else writes just before a transaction.
 */
import { unmarshall } from "@aws-sdk/util-dynamodb";

type Middleware = (
  next: (args: { input: unknown }) => Promise<unknown>,
  context: { commandName?: string },
) => (args: { input: unknown }) => Promise<unknown>;

/** The part of an SDK v3 client's middleware stack used here (a document client shares its base client's). */
interface Stack {
  add(middleware: Middleware, options: { step: "build"; name: string }): void;
  remove(name: string): boolean;
}

/** Any SDK v3 client, or a document client. */
type SdkClient = { middlewareStack: object };
const stackOf = (client: SdkClient) => client.middlewareStack as Stack;

export interface SentCommand {
  command: string;
  /** Wire form: attribute values marshalled. */
  input: Record<string, unknown>;
}

/** Records every command the client sends until `stop()`. */
export function recordCommands(client: SdkClient): { sent: SentCommand[]; stop(): void } {
  const sent: SentCommand[] = [];
  const name = `record-${Math.random()}`;
  stackOf(client).add(
    (next, context) => async (args) => {
      sent.push({ command: context.commandName ?? "?", input: args.input as Record<string, unknown> });
      return next(args);
    },
    { step: "build", name },
  );
  return { sent, stop: () => stackOf(client).remove(name) };
}

/** The reads among `sent` (GetItem, Query, BatchGetItem), each with the table or index it read and its consistency. */
export function readsOf(sent: readonly SentCommand[]) {
  const reads: { command: string; table: string; index?: string; consistent: boolean }[] = [];
  for (const { command, input } of sent) {
    if (command === "GetItemCommand" || command === "QueryCommand") {
      reads.push({
        command,
        table: String(input.TableName),
        ...(input.IndexName ? { index: String(input.IndexName) } : {}),
        consistent: input.ConsistentRead === true,
      });
    } else if (command === "BatchGetItemCommand") {
      const requests = input.RequestItems as Record<string, { ConsistentRead?: boolean }>;
      for (const [table, request] of Object.entries(requests)) {
        reads.push({ command, table, consistent: request.ConsistentRead === true });
      }
    }
  }
  return reads;
}

type TransactItems = { Put?: { Item: Record<string, never> }; [other: string]: unknown }[];

/**
 * Runs `meddle` once, just before the client's next TransactWriteItems leaves, with the items it
 * puts (unmarshalled): a stand-in for another writer that got there first.
 */
export function beforeNextTransaction(
  client: SdkClient,
  meddle: (puts: Record<string, unknown>[]) => Promise<void>,
): void {
  const name = `meddle-${Math.random()}`;
  stackOf(client).add(
    (next, context) => async (args) => {
      if (context.commandName === "TransactWriteItemsCommand") {
        stackOf(client).remove(name);
        const items = (args.input as { TransactItems: TransactItems }).TransactItems;
        await meddle(items.flatMap((item) => (item.Put ? [unmarshall(item.Put.Item)] : [])));
      }
      return next(args);
    },
    { step: "build", name },
  );
}

/**
 * DynamoDB's operations as Atrium uses them, in their document form (attribute values as plain JS
 * values, the way the AWS SDK's document client takes them), and the two steps between that form and
 * the wire's: every member that holds attribute values (Key, Item, ExpressionAttributeValues,
 * ExclusiveStartKey and their places in batches and transactions) is marshalled going out and
 * unmarshalled coming back; every other member goes as it is.
 */
import { type AttributeValue, fromItem, type Item, toItem } from "./marshall";

export type { Item };

interface Expressions {
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Item;
}

interface Conditional extends Expressions {
  ConditionExpression?: string;
  /** ALL_OLD: a failed condition's error carries the item as it was. */
  ReturnValuesOnConditionCheckFailure?: "ALL_OLD" | "NONE";
}

type ReturnValues = "NONE" | "ALL_OLD" | "UPDATED_OLD" | "ALL_NEW" | "UPDATED_NEW";

export interface GetInput {
  TableName: string;
  Key: Item;
  ConsistentRead?: boolean;
  ProjectionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
}

export interface PutInput extends Conditional {
  TableName: string;
  Item: Item;
  ReturnValues?: "NONE" | "ALL_OLD";
}

export interface UpdateInput extends Conditional {
  TableName: string;
  Key: Item;
  UpdateExpression: string;
  ReturnValues?: ReturnValues;
}

export interface DeleteInput extends Conditional {
  TableName: string;
  Key: Item;
  ReturnValues?: "NONE" | "ALL_OLD";
}

export interface QueryInput extends Expressions {
  TableName: string;
  IndexName?: string;
  KeyConditionExpression: string;
  FilterExpression?: string;
  ProjectionExpression?: string;
  ConsistentRead?: boolean;
  ScanIndexForward?: boolean;
  Limit?: number;
  ExclusiveStartKey?: Item;
}

export interface ScanInput extends Expressions {
  TableName: string;
  IndexName?: string;
  FilterExpression?: string;
  ProjectionExpression?: string;
  ConsistentRead?: boolean;
  Limit?: number;
  ExclusiveStartKey?: Item;
}

export interface BatchGetInput {
  RequestItems: Record<
    string,
    {
      Keys: Item[];
      ConsistentRead?: boolean;
      ProjectionExpression?: string;
      ExpressionAttributeNames?: Record<string, string>;
    }
  >;
}

export type WriteRequest = { PutRequest: { Item: Item } } | { DeleteRequest: { Key: Item } };

export interface BatchWriteInput {
  RequestItems: Record<string, WriteRequest[]>;
}

/** One action of a transaction; TransactWriteItems takes up to 100. */
export type TransactWriteItem =
  | { ConditionCheck: Conditional & { TableName: string; Key: Item; ConditionExpression: string } }
  | { Put: Omit<PutInput, "ReturnValues"> }
  | { Update: Omit<UpdateInput, "ReturnValues"> }
  | { Delete: Omit<DeleteInput, "ReturnValues"> };

export interface TransactWriteInput {
  TransactItems: TransactWriteItem[];
  ClientRequestToken?: string;
}

export interface ItemOutput {
  Item?: Item;
}
export interface WriteOutput {
  /** What ReturnValues asked for. */
  Attributes?: Item;
}
export interface PageOutput {
  Items: Item[];
  Count: number;
  /** Where the next page starts; none after the last. */
  LastEvaluatedKey?: Item;
}
export interface BatchGetOutput {
  Responses: Record<string, Item[]>;
  /** Keys DynamoDB did not read this time (throughput, size): ask again. */
  UnprocessedKeys: BatchGetInput["RequestItems"];
}
export interface BatchWriteOutput {
  UnprocessedItems: BatchWriteInput["RequestItems"];
}

type Wire = Record<string, unknown>;
type WireItem = Record<string, AttributeValue>;

/** Members that hold attribute values: one item (or key), or a map of named values. */
const VALUE_MEMBERS = new Set(["Key", "Item", "ExpressionAttributeValues", "ExclusiveStartKey"]);

/** A request's wire form: value members marshalled, the rest as they are, undefined members left out. */
export function toWire(input: object): Wire {
  const wire: Wire = {};
  for (const [name, value] of Object.entries(input)) {
    if (value === undefined) continue;
    wire[name] = VALUE_MEMBERS.has(name) ? toItem(value as Item) : value;
  }
  return wire;
}

export function transactToWire(input: TransactWriteInput): Wire {
  return {
    ...toWire({ ClientRequestToken: input.ClientRequestToken }),
    TransactItems: input.TransactItems.map((action) =>
      Object.fromEntries(Object.entries(action).map(([kind, member]) => [kind, toWire(member)])),
    ),
  };
}

export function batchGetToWire(input: BatchGetInput): Wire {
  return {
    RequestItems: Object.fromEntries(
      Object.entries(input.RequestItems).map(([table, request]) => [
        table,
        { ...toWire(request), Keys: request.Keys.map(toItem) },
      ]),
    ),
  };
}

export function batchWriteToWire(input: BatchWriteInput): Wire {
  return {
    RequestItems: Object.fromEntries(
      Object.entries(input.RequestItems).map(([table, requests]) => [
        table,
        requests.map(writeRequestToWire),
      ]),
    ),
  };
}

function writeRequestToWire(request: WriteRequest): Wire {
  return "PutRequest" in request
    ? { PutRequest: { Item: toItem(request.PutRequest.Item) } }
    : { DeleteRequest: { Key: toItem(request.DeleteRequest.Key) } };
}

/** A wire map of attribute values (Item, Attributes, LastEvaluatedKey...), read; undefined stays undefined. */
export function itemOf(wire: unknown): Item | undefined {
  return wire === undefined || wire === null ? undefined : fromItem(wire as WireItem);
}

export function pageOf(wire: Wire): PageOutput {
  const items = ((wire.Items as WireItem[] | undefined) ?? []).map(fromItem);
  const last = itemOf(wire.LastEvaluatedKey);
  return {
    Items: items,
    Count: Number(wire.Count ?? items.length),
    ...(last ? { LastEvaluatedKey: last } : {}),
  };
}

export function batchGetOf(wire: Wire): BatchGetOutput {
  const responses = (wire.Responses ?? {}) as Record<string, WireItem[]>;
  const unprocessed = (wire.UnprocessedKeys ?? {}) as Record<string, { Keys: WireItem[] }>;
  return {
    Responses: Object.fromEntries(
      Object.entries(responses).map(([table, items]) => [table, items.map(fromItem)]),
    ),
    UnprocessedKeys: Object.fromEntries(
      Object.entries(unprocessed).map(([table, request]) => [
        table,
        { ...request, Keys: request.Keys.map(fromItem) },
      ]),
    ),
  };
}

export function batchWriteOf(wire: Wire): BatchWriteOutput {
  const unprocessed = (wire.UnprocessedItems ?? {}) as Record<string, Wire[]>;
  return {
    UnprocessedItems: Object.fromEntries(
      Object.entries(unprocessed).map(([table, requests]) => [
        table,
        requests.map((request) =>
          request.PutRequest
            ? { PutRequest: { Item: fromItem((request.PutRequest as { Item: WireItem }).Item) } }
            : { DeleteRequest: { Key: fromItem((request.DeleteRequest as { Key: WireItem }).Key) } },
        ),
      ]),
    ),
  };
}

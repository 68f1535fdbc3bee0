/**
 * Atrium's DynamoDB client: the operations Atrium calls, in the document form the AWS SDK's document
 * client takes (./operations), sent as DynamoDB's JSON protocol (awsJson1_0) over @atrium/core/aws-http.
 * Not the SDK's client: importing it cost 70-100 ms of every function's cold start, and each call
 * through it about 2 ms of CPU (docs/adr/0016-dynamodb-client.md). Retries as the SDK's standard mode
 * classifies errors, up to `maxAttempts`; its errors are one class, DynamoCallError, named by
 * DynamoDB's error code.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import {
  AwsCallError,
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  headerOf,
  jsonObject,
  regionalHost,
} from "../aws-http";
import {
  type BatchGetInput,
  type BatchGetOutput,
  type BatchWriteInput,
  type BatchWriteOutput,
  batchGetOf,
  batchGetToWire,
  batchWriteOf,
  batchWriteToWire,
  type DeleteInput,
  type GetInput,
  type Item,
  type ItemOutput,
  itemOf,
  type PageOutput,
  type PutInput,
  pageOf,
  type QueryInput,
  type ScanInput,
  type TransactWriteInput,
  toWire,
  transactToWire,
  type UpdateInput,
  type WriteOutput,
} from "./operations";

export const DYNAMODB: AwsService = {
  title: "DynamoDB",
  signingName: "dynamodb",
  endpointId: "DYNAMODB",
  host: regionalHost("dynamodb", true),
};

/** Why one action of a cancelled transaction failed (DynamoDB lists one per action, `None` where nothing did). */
export interface CancellationReason {
  code: string;
  message?: string;
  /** ReturnValuesOnConditionCheckFailure ALL_OLD: the item as it was. */
  item?: Item;
}

/** A DynamoDB call's failure: DynamoDB's error code as `name`, or what happened to the connection. */
export class DynamoCallError extends AwsCallError {
  /** ConditionalCheckFailedException with ReturnValuesOnConditionCheckFailure ALL_OLD: the item as it was. */
  readonly item?: Item;
  /** TransactionCanceledException: per action of the transaction, in order. */
  readonly cancellationReasons?: CancellationReason[];

  constructor(
    name: string,
    message: string,
    details: {
      status?: number;
      notSent?: boolean;
      item?: Item;
      cancellationReasons?: CancellationReason[];
    } = {},
  ) {
    super(name, message, details);
    this.item = details.item;
    this.cancellationReasons = details.cancellationReasons;
  }
}

/** The write's condition was false. */
export const isConditionFailed = (err: unknown): err is DynamoCallError =>
  err instanceof DynamoCallError && err.name === "ConditionalCheckFailedException";

/** A transaction cancelled (one of its conditions false, or a conflict): see its cancellationReasons. */
export const isTransactionCanceled = (err: unknown): err is DynamoCallError =>
  err instanceof DynamoCallError && err.name === "TransactionCanceledException";

export interface DynamoClientOptions extends ConnectionOptions {
  /** Attempts per call, retries included: 1 where a retried write might apply twice. */
  maxAttempts: number;
}

/** Called with each request's operation and wire form just before it is sent (tests look through it). */
export type RequestHook = (operation: string, wire: Record<string, unknown>) => void | Promise<void>;

const failure = (name: string, message: string, notSent: boolean) =>
  new DynamoCallError(name, message, { notSent });

export class DynamoClient {
  readonly #connection: AwsConnection;
  readonly #hooks = new Set<RequestHook>();

  constructor(options: DynamoClientOptions) {
    this.#connection = new AwsConnection(DYNAMODB, options, failure);
  }

  /** Closes the pooled connections. */
  destroy(): void {
    this.#connection.destroy();
  }

  /** Calls `hook` before each request until the returned function is called. */
  beforeSend(hook: RequestHook): () => void {
    this.#hooks.add(hook);
    return () => this.#hooks.delete(hook);
  }

  async get(input: GetInput): Promise<ItemOutput> {
    const item = itemOf((await this.#call("GetItem", toWire(input))).Item);
    return item ? { Item: item } : {};
  }

  async put(input: PutInput): Promise<WriteOutput> {
    return attributes(await this.#call("PutItem", toWire(input)));
  }

  async update(input: UpdateInput): Promise<WriteOutput> {
    return attributes(await this.#call("UpdateItem", toWire(input)));
  }

  async delete(input: DeleteInput): Promise<WriteOutput> {
    return attributes(await this.#call("DeleteItem", toWire(input)));
  }

  async query(input: QueryInput): Promise<PageOutput> {
    return pageOf(await this.#call("Query", toWire(input)));
  }

  /** Every page of a Query, one after another. */
  async *queryPages(input: QueryInput): AsyncGenerator<PageOutput> {
    let start = input.ExclusiveStartKey;
    do {
      const page = await this.query({ ...input, ExclusiveStartKey: start });
      yield page;
      start = page.LastEvaluatedKey;
    } while (start);
  }

  async scan(input: ScanInput): Promise<PageOutput> {
    return pageOf(await this.#call("Scan", toWire(input)));
  }

  async batchGet(input: BatchGetInput): Promise<BatchGetOutput> {
    return batchGetOf(await this.#call("BatchGetItem", batchGetToWire(input)));
  }

  async batchWrite(input: BatchWriteInput): Promise<BatchWriteOutput> {
    return batchWriteOf(await this.#call("BatchWriteItem", batchWriteToWire(input)));
  }

  /** All of the actions or none; with a ClientRequestToken (a random one unless given), so a retry cannot apply them twice. */
  async transactWrite(input: TransactWriteInput): Promise<void> {
    const token = input.ClientRequestToken ?? randomUUID();
    await this.#call("TransactWriteItems", transactToWire({ ...input, ClientRequestToken: token }));
  }

  async #call(operation: string, wire: Record<string, unknown>): Promise<Record<string, unknown>> {
    const body = Buffer.from(JSON.stringify(wire));
    const headers = {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": `DynamoDB_20120810.${operation}`,
    };
    const { body: answer } = await this.#connection.exchange(
      { path: "/", headers, body },
      errorOf,
      async () => {
        for (const hook of this.#hooks) await hook(operation, wire);
      },
    );
    return jsonObject(answer);
  }
}

function attributes(wire: Record<string, unknown>): WriteOutput {
  const item = itemOf(wire.Attributes);
  return item ? { Attributes: item } : {};
}

/** awsJson1_0's error: its code in `__type` (after `#`) or x-amzn-ErrorType, its members in the body. */
function errorOf(response: IncomingMessage, body: Uint8Array): DynamoCallError {
  const members = jsonObject(body);
  const type =
    (typeof members.__type === "string" ? members.__type : undefined) ??
    headerOf(response, "x-amzn-errortype") ??
    `Http${response.statusCode}`;
  const code = type.split("#").at(-1)?.split(":")[0] ?? type;
  const reasons = Array.isArray(members.CancellationReasons)
    ? (members.CancellationReasons as Record<string, unknown>[]).map((reason) => ({
        code: String(reason.Code ?? "None"),
        ...(typeof reason.Message === "string" ? { message: reason.Message } : {}),
        ...(reason.Item ? { item: itemOf(reason.Item) } : {}),
      }))
    : undefined;
  const item = itemOf(members.Item);
  return new DynamoCallError(
    code,
    String(members.message ?? members.Message ?? `HTTP ${response.statusCode}`),
    {
      status: response.statusCode,
      ...(item ? { item } : {}),
      ...(reasons ? { cancellationReasons: reasons } : {}),
    },
  );
}

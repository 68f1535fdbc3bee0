/**
 * Atrium's CloudWatch client: GetMetricData, the one CloudWatch call the report functions make, in the
 * shapes the AWS SDK's GetMetricDataCommand takes and returns, sent as CloudWatch's JSON protocol
 * (awsJson1_0, `GraniteServiceVersion20100801`, query-compatible errors) over @atrium/core/aws-http.
 * Not the SDK's client: importing it cost admin/reports about 100 ms of its 148 ms cold import
 * (docs/adr/0016-dynamodb-client.md). Retries as the SDK's standard mode classifies errors, up to
 * `maxAttempts`; a failure is an AwsCallError named as the SDK names it (InvalidNextToken,
 * InvalidParameterValueException, Throttling...).
 */
import type { IncomingMessage } from "node:http";
import {
  AwsCallError,
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  headerOf,
  jsonObject,
  regionalHost,
} from "./aws-http";

export const CLOUDWATCH: AwsService = {
  title: "CloudWatch",
  signingName: "monitoring",
  endpointId: "CLOUDWATCH",
  // In GovCloud the rules name the usual host for FIPS too.
  host: regionalHost("monitoring", true),
};

export interface Dimension {
  Name: string;
  Value: string;
}

export interface MetricStat {
  Metric: { Namespace?: string; MetricName?: string; Dimensions?: Dimension[] };
  Period: number;
  Stat: string;
  Unit?: string;
}

export interface MetricDataQuery {
  Id: string;
  MetricStat?: MetricStat;
  Expression?: string;
  Label?: string;
  ReturnData?: boolean;
  Period?: number;
  AccountId?: string;
}

export interface GetMetricDataInput {
  MetricDataQueries: MetricDataQuery[];
  StartTime: Date;
  EndTime: Date;
  NextToken?: string;
  ScanBy?: "TimestampAscending" | "TimestampDescending";
  MaxDatapoints?: number;
  LabelOptions?: { Timezone?: string };
}

export interface MessageData {
  Code?: string;
  Value?: string;
}

/** As the SDK returns it: a member CloudWatch left out (or sent as null) is absent. */
export interface MetricDataResult {
  Id?: string;
  Label?: string;
  Timestamps?: Date[];
  Values?: number[];
  /** Complete, InternalError, PartialData (more in the next page) or Forbidden. */
  StatusCode?: string;
  Messages?: MessageData[];
}

export interface GetMetricDataOutput {
  MetricDataResults?: MetricDataResult[];
  NextToken?: string;
  Messages?: MessageData[];
}

export interface CloudWatchOptions extends ConnectionOptions {
  /** Attempts per call, retries included. */
  maxAttempts: number;
}

const TARGET = "GraniteServiceVersion20100801";

export class CloudWatchMetrics {
  readonly #connection: AwsConnection;

  constructor(options: CloudWatchOptions) {
    this.#connection = new AwsConnection(CLOUDWATCH, options);
  }

  /** Closes the pooled connections. */
  destroy(): void {
    this.#connection.destroy();
  }

  async getMetricData(input: GetMetricDataInput): Promise<GetMetricDataOutput> {
    return outputOf(await this.#call("GetMetricData", inputToWire(input)));
  }

  async #call(operation: string, wire: Record<string, unknown>): Promise<Record<string, unknown>> {
    const body = Buffer.from(JSON.stringify(wire));
    const headers = {
      "content-type": "application/x-amz-json-1.0",
      "x-amz-target": `${TARGET}.${operation}`,
      // As the SDK asks (CloudWatch is awsQueryCompatible): errors carry their awsQuery code in x-amzn-query-error.
      "x-amzn-query-mode": "true",
    };
    return jsonObject((await this.#connection.exchange({ path: "/", headers, body }, errorOf)).body);
  }
}

/** The wire's members in the model's order, without the absent ones (the SDK's serialiser does the same). */
function defined(members: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(members)) if (value != null) out[name] = value;
  return out;
}

/** awsJson1_0's timestamps: epoch seconds, as a number (fractional when the Date has milliseconds). */
function epochSeconds(date: Date, member: string): number {
  const ms = date.getTime();
  if (Number.isNaN(ms)) throw new RangeError(`GetMetricData's ${member} is not a valid Date.`);
  return ms / 1000;
}

function inputToWire(input: GetMetricDataInput): Record<string, unknown> {
  return defined({
    MetricDataQueries: input.MetricDataQueries.map((query) =>
      defined({
        Id: query.Id,
        MetricStat: query.MetricStat && metricStatToWire(query.MetricStat),
        Expression: query.Expression,
        Label: query.Label,
        ReturnData: query.ReturnData,
        Period: query.Period,
        AccountId: query.AccountId,
      }),
    ),
    StartTime: epochSeconds(input.StartTime, "StartTime"),
    EndTime: epochSeconds(input.EndTime, "EndTime"),
    NextToken: input.NextToken,
    ScanBy: input.ScanBy,
    MaxDatapoints: input.MaxDatapoints,
    LabelOptions: input.LabelOptions && defined({ Timezone: input.LabelOptions.Timezone }),
  });
}

function metricStatToWire(stat: MetricStat): Record<string, unknown> {
  const { Namespace, MetricName, Dimensions } = stat.Metric;
  return defined({
    Metric: defined({
      Namespace,
      MetricName,
      Dimensions: Dimensions?.map((d) => defined({ Name: d.Name, Value: d.Value })),
    }),
    Period: stat.Period,
    Stat: stat.Stat,
    Unit: stat.Unit,
  });
}

function outputOf(wire: Record<string, unknown>): GetMetricDataOutput {
  const out: GetMetricDataOutput = {};
  if (Array.isArray(wire.MetricDataResults)) {
    out.MetricDataResults = (wire.MetricDataResults as Record<string, unknown>[]).map(resultOf);
  }
  if (wire.NextToken != null) out.NextToken = wire.NextToken as string;
  if (Array.isArray(wire.Messages)) out.Messages = wire.Messages.map(messageOf);
  return out;
}

function resultOf(wire: Record<string, unknown>): MetricDataResult {
  const out: MetricDataResult = {};
  if (wire.Id != null) out.Id = wire.Id as string;
  if (wire.Label != null) out.Label = wire.Label as string;
  if (Array.isArray(wire.Timestamps)) out.Timestamps = wire.Timestamps.map(dateOf);
  if (Array.isArray(wire.Values)) out.Values = wire.Values.map(doubleOf);
  if (wire.StatusCode != null) out.StatusCode = wire.StatusCode as string;
  if (Array.isArray(wire.Messages)) out.Messages = wire.Messages.map(messageOf);
  return out;
}

function messageOf(wire: Record<string, unknown>): MessageData {
  const out: MessageData = {};
  if (wire.Code != null) out.Code = wire.Code as string;
  if (wire.Value != null) out.Value = wire.Value as string;
  return out;
}

/** Epoch seconds (a number, or its string) to a Date, to the millisecond, as the SDK reads them. */
function dateOf(value: unknown): Date {
  const seconds = typeof value === "string" ? (value.trim() ? Number(value) : Number.NaN) : value;
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) {
    throw new TypeError(`CloudWatch sent a timestamp that is not epoch seconds: ${String(value)}`);
  }
  return new Date(Math.round(seconds * 1000));
}

/** JSON has no NaN or infinities: the protocol sends them as strings. */
function doubleOf(value: unknown): number {
  if (value === "NaN") return Number.NaN;
  if (value === "Infinity") return Number.POSITIVE_INFINITY;
  if (value === "-Infinity") return Number.NEGATIVE_INFINITY;
  return value as number;
}

/**
 * CloudWatch's awsQuery codes that name another shape in its model: the SDK names a query-compatible
 * error by the shape whose awsQueryError code it is. A code that is itself a shape's name (InvalidNextToken,
 * ResourceNotFound...) or in no shape (Throttling) stays as it is.
 */
const SHAPE_OF_QUERY_CODE: Record<string, string> = {
  InternalServiceError: "InternalServiceFault",
  InvalidFormat: "InvalidFormatFault",
  InvalidParameterCombination: "InvalidParameterCombinationException",
  InvalidParameterInput: "DashboardInvalidInputError",
  InvalidParameterValue: "InvalidParameterValueException",
  LimitExceeded: "LimitExceededFault",
  MissingParameter: "MissingRequiredParameterException",
  ValidationError: "ValidationException",
};

/** `ns#Code:detail,more` to `Code`, as the SDK reads an error code. */
function sanitize(raw: string): string {
  let code = raw.split(",")[0] ?? raw;
  code = code.split(":")[0] ?? code;
  return code.includes("#") ? (code.split("#")[1] ?? code) : code;
}

/**
 * A query-compatible awsJson1_0 error, named as the SDK names it: its code from x-amzn-query-error
 * (`Code;Sender`), else the body's `code`, else x-amzn-ErrorType, else `__type`; then the shape that
 * code belongs to. Its message is the body's `Message`, else `message`.
 */
function errorOf(response: IncomingMessage, body: Uint8Array): AwsCallError {
  const members = jsonObject(body);
  const codeKey = Object.keys(members).find((key) => key.toLowerCase() === "code");
  const raw =
    headerOf(response, "x-amzn-query-error")?.split(";")[0] ??
    (codeKey !== undefined && members[codeKey] != null ? String(members[codeKey]) : undefined) ??
    headerOf(response, "x-amzn-errortype") ??
    (typeof members.__type === "string" ? members.__type : undefined);
  const code = raw === undefined ? "Unknown" : sanitize(raw);
  const name = Object.hasOwn(SHAPE_OF_QUERY_CODE, code) ? (SHAPE_OF_QUERY_CODE[code] as string) : code;
  const message = members.Message || members.message || "UnknownError";
  return new AwsCallError(name, String(message), { status: response.statusCode });
}

/**
 * The local CloudWatch's errors, and a reader for operation input as the three wire protocols decode
 * it: JSON and CBOR give typed values, awsQuery gives strings, so every read coerces and validates.
 * Parameter paths are named as CloudWatch names them (`MetricData.member.1.Value`).
 */

/** CloudWatch's error codes (the awsQuery codes, which its JSON and CBOR errors also carry). */
const ERRORS = {
  InvalidParameterValue: { shape: "InvalidParameterValueException", status: 400 },
  MissingParameter: { shape: "MissingRequiredParameterException", status: 400 },
  InvalidParameterCombination: { shape: "InvalidParameterCombinationException", status: 400 },
  InvalidNextToken: { shape: "InvalidNextToken", status: 400 },
  InvalidAction: { shape: "UnknownOperationException", status: 400 },
  SerializationException: { shape: "SerializationException", status: 400 },
  RequestEntityTooLarge: { shape: "RequestEntityTooLarge", status: 413 },
  InternalServiceError: { shape: "InternalServiceFault", status: 500 },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export const UNITS = [
  "Seconds",
  "Microseconds",
  "Milliseconds",
  "Bytes",
  "Kilobytes",
  "Megabytes",
  "Gigabytes",
  "Terabytes",
  "Bits",
  "Kilobits",
  "Megabits",
  "Gigabits",
  "Terabits",
  "Percent",
  "Count",
  "Bytes/Second",
  "Kilobytes/Second",
  "Megabytes/Second",
  "Gigabytes/Second",
  "Terabytes/Second",
  "Bits/Second",
  "Kilobits/Second",
  "Megabits/Second",
  "Gigabits/Second",
  "Terabits/Second",
  "Count/Second",
  "None",
] as const;

export class CloudWatchError extends Error {
  readonly status: number;
  /** The error's shape name in CloudWatch's model: JSON and CBOR errors carry it in `__type`. */
  readonly shape: string;
  /** awsQuery's fault type: Sender for the caller's mistakes, Receiver for the service's. */
  readonly fault: "Sender" | "Receiver";

  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.status = ERRORS[code].status;
    this.shape = ERRORS[code].shape;
    this.fault = this.status >= 500 ? "Receiver" : "Sender";
  }
}

export function invalidValue(path: string, value: unknown, why?: string): CloudWatchError {
  const shown = typeof value === "string" ? value : JSON.stringify(value);
  const reason = why ? `: ${why}` : "";
  return new CloudWatchError(
    "InvalidParameterValue",
    `The value ${shown} for parameter ${path} is invalid${reason}.`,
  );
}

export function missing(path: string): CloudWatchError {
  return new CloudWatchError("MissingParameter", `The parameter ${path} is required.`);
}

/** One structure of the input, at a path. */
export class Params {
  constructor(
    private readonly value: Record<string, unknown>,
    readonly path = "",
  ) {}

  static of(input: unknown): Params {
    if (input === undefined || input === null) return new Params({});
    if (typeof input !== "object" || Array.isArray(input)) {
      throw new CloudWatchError("SerializationException", "The request body is not a structure.");
    }
    return new Params(input as Record<string, unknown>);
  }

  pathOf(name: string): string {
    return this.path ? `${this.path}.${name}` : name;
  }

  has(name: string): boolean {
    const value = this.value[name];
    return value !== undefined && value !== null;
  }

  string(name: string, limits: { required?: boolean; max?: number } = {}): string | undefined {
    const value = this.present(name, limits.required);
    if (value === undefined) return undefined;
    if (typeof value !== "string") throw invalidValue(this.pathOf(name), value, "expected a string");
    if (value.length < 1 || value.length > (limits.max ?? 1024)) {
      throw invalidValue(this.pathOf(name), value, `its length must be from 1 to ${limits.max ?? 1024}`);
    }
    return value;
  }

  number(name: string, required = false): number | undefined {
    const value = this.present(name, required);
    if (value === undefined) return undefined;
    const number = toNumber(value);
    if (number === undefined) throw invalidValue(this.pathOf(name), value, "expected a finite number");
    return number;
  }

  integer(name: string, limits: { required?: boolean; min?: number } = {}): number | undefined {
    const number = this.number(name, limits.required);
    if (number === undefined) return undefined;
    if (!Number.isInteger(number) || number < (limits.min ?? Number.NEGATIVE_INFINITY)) {
      throw invalidValue(this.pathOf(name), number, `expected a whole number of at least ${limits.min}`);
    }
    return number;
  }

  boolean(name: string): boolean | undefined {
    const value = this.present(name, false);
    if (value === undefined || typeof value === "boolean") return value;
    if (value === "true" || value === "false") return value === "true";
    throw invalidValue(this.pathOf(name), value, "expected true or false");
  }

  /** Epoch milliseconds from epoch seconds (JSON), a CBOR date, or ISO 8601 (awsQuery). */
  timestamp(name: string, required = false): number | undefined {
    const value = this.present(name, required);
    if (value === undefined) return undefined;
    const ms =
      value instanceof Date
        ? value.getTime()
        : typeof value === "number" || typeof value === "bigint"
          ? Number(value) * 1000
          : typeof value === "string"
            ? /^-?\d+(\.\d+)?$/.test(value)
              ? Number(value) * 1000
              : Date.parse(value)
            : Number.NaN;
    if (!Number.isFinite(ms)) throw invalidValue(this.pathOf(name), value, "expected a timestamp");
    return ms;
  }

  enumerated<T extends string>(name: string, allowed: readonly T[]): T | undefined {
    const value = this.string(name, { max: 255 });
    if (value !== undefined && !allowed.includes(value as T)) {
      throw invalidValue(this.pathOf(name), value, `expected one of ${allowed.join(", ")}`);
    }
    return value as T | undefined;
  }

  object(name: string, required = false): Params | undefined {
    const value = this.present(name, required);
    if (value === undefined) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) {
      throw invalidValue(this.pathOf(name), value, "expected a structure");
    }
    return new Params(value as Record<string, unknown>, this.pathOf(name));
  }

  /** A list of structures; awsQuery sends an empty list as an empty string. */
  items(name: string, limits: { required?: boolean; max?: number } = {}): Params[] {
    return this.list(name, limits).map((item, i) => {
      const path = `${this.pathOf(name)}.member.${i + 1}`;
      if (typeof item !== "object" || item === null || Array.isArray(item)) {
        throw invalidValue(path, item, "expected a structure");
      }
      return new Params(item as Record<string, unknown>, path);
    });
  }

  numbers(name: string, max: number): number[] | undefined {
    if (!this.has(name)) return undefined;
    return this.list(name, { max }).map((item, i) => {
      const number = toNumber(item);
      if (number === undefined) {
        throw invalidValue(`${this.pathOf(name)}.member.${i + 1}`, item, "expected a finite number");
      }
      return number;
    });
  }

  strings(name: string, max: number): string[] | undefined {
    if (!this.has(name)) return undefined;
    return this.list(name, { max }).map((item, i) => {
      if (typeof item !== "string") throw invalidValue(`${this.pathOf(name)}.member.${i + 1}`, item);
      return item;
    });
  }

  private list(name: string, limits: { required?: boolean; max?: number }): unknown[] {
    const value = this.present(name, limits.required);
    if (value === undefined || value === "") return [];
    if (!Array.isArray(value)) throw invalidValue(this.pathOf(name), value, "expected a list");
    if (limits.max !== undefined && value.length > limits.max) {
      throw new CloudWatchError(
        "InvalidParameterValue",
        `The collection ${this.pathOf(name)} must not have a size greater than ${limits.max}.`,
      );
    }
    return value;
  }

  private present(name: string, required = false): unknown {
    const value = this.value[name];
    if (value === undefined || value === null) {
      if (required) throw missing(this.pathOf(name));
      return undefined;
    }
    return value;
  }
}

function toNumber(value: unknown): number | undefined {
  const number =
    typeof value === "number" || typeof value === "bigint"
      ? Number(value)
      : typeof value === "string" && value.trim() !== ""
        ? Number(value)
        : Number.NaN;
  return Number.isFinite(number) ? number : undefined;
}

export function pageToken(offset: number): string {
  return Buffer.from(`offset:${offset}`).toString("base64url");
}

/** The offset a NextToken from `pageToken` carries; an unknown token is InvalidNextToken. */
export function readOffset(input: Params, limit: number): number {
  const token = input.string("NextToken", { max: 4096 });
  if (token === undefined) return 0;
  const match = /^offset:(\d+)$/.exec(Buffer.from(token, "base64url").toString("utf8"));
  const offset = match ? Number(match[1]) : Number.NaN;
  if (!(offset >= 0 && offset <= limit))
    throw new CloudWatchError("InvalidNextToken", "The NextToken is invalid.");
  return offset;
}

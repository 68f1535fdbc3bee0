/** OpenAI's error `type` vocabulary, so existing clients classify Atrium's errors correctly. */
export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "permission_error"
  | "not_found_error"
  | "conflict_error"
  | "rate_limit_error"
  | "requests"
  | "tokens"
  | "insufficient_quota"
  | "api_error";

/** An error that is a value: it knows its HTTP status and how to say itself in OpenAI's shape. */
export class AtriumError extends Error {
  /** Extra response headers the edge sends with this error (e.g. retry-after on a 429). */
  headers: Record<string, string> = {};

  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = "AtriumError";
  }
}

export interface OpenAIErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string };
}

export function errorBody(err: AtriumError): OpenAIErrorBody {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code } };
}

export const invalidRequest = (code: string, message: string, param: string | null = null) =>
  new AtriumError(400, "invalid_request_error", code, message, param);

export const notFound = (code: string, message: string, param: string | null = null) =>
  new AtriumError(404, "not_found_error", code, message, param);

export const conflict = (code: string, message: string, param: string | null = null) =>
  new AtriumError(409, "conflict_error", code, message, param);

export const upstream = (status: 502 | 503 | 504, code: string, message: string) =>
  new AtriumError(status, "api_error", code, message);

/** Turns a zod issue list into one 400 naming the first offending field. */
export function fromValidationIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]) {
  const first = issues[0];
  const param = first && first.path.length > 0 ? first.path.map(String).join(".") : null;
  const message = first ? (param ? `${param}: ${first.message}` : first.message) : "Invalid request";
  return invalidRequest("invalid_request", message, param);
}

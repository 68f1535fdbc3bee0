import { randomUUID } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { ModelReply } from "./reference-model";

/** SageMaker Runtime's errors as they go on the wire (restJson1), and the situations that raise them. */

// IAM cannot run locally, so every caller is this account (the SigV4 signature is never verified).
export const ACCOUNT_ID = "000000000000";

/** What an error names: the endpoint and, for the ARN in ModelError, the caller's region. */
export interface ErrorContext {
  endpointName: string;
  region: string;
}

export type InjectableError =
  | "ModelError"
  | "ThrottlingException"
  | "ServiceUnavailable"
  | "InternalFailure"
  | "ModelNotReadyException"
  | "InternalDependencyException";

/** What an injected error may carry besides its name. */
export interface InjectedErrorDetails {
  /** ModelError only: the container's status SageMaker reports (default 500), e.g. 429 for an overloaded model. */
  originalStatusCode?: number;
  /** Sent as the answer's `Retry-After` header, in seconds, for a client that honours one. */
  retryAfterSeconds?: number;
}

export type ErrorCode = InjectableError | "ValidationError" | "UnknownOperationException";

export interface WireError {
  status: number;
  code: ErrorCode;
  message: string;
  extra?: Record<string, string | number>;
  headers?: Record<string, string>;
}

/** restJson1 errors: the code goes in `x-amzn-ErrorType`, the modeled members (Message...) in the body. */
export function sendError(res: ServerResponse, error: WireError): void {
  const body = Buffer.from(JSON.stringify({ Message: error.message, ...error.extra }));
  res.writeHead(error.status, {
    "content-type": "application/json",
    "content-length": body.length,
    "x-amzn-requestid": randomUUID(),
    "x-amzn-errortype": error.code,
    ...error.headers,
  });
  res.end(body);
}

export function validationError(message: string): WireError {
  return { status: 400, code: "ValidationError", message };
}

export function endpointNotFound(endpointName: string): WireError {
  return validationError(`Endpoint ${endpointName} of account ${ACCOUNT_ID} not found.`);
}

export function invalidEndpointName(endpointName: string): WireError {
  return validationError(
    `1 validation error detected: Value '${endpointName}' at 'endpointName' failed to satisfy constraint: ` +
      "Member must satisfy regular expression pattern: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
  );
}

export function unknownRoute(method: string | undefined, path: string): WireError {
  return {
    status: 404,
    code: "UnknownOperationException",
    message: `No operation at ${method ?? "?"} ${path}; only InvokeEndpoint and InvokeEndpointWithResponseStream are emulated.`,
  };
}

export function internalFailure(err: unknown): WireError {
  const detail = err instanceof Error ? err.message : String(err);
  return { status: 500, code: "InternalFailure", message: `The emulator failed: ${detail}` };
}

function logGroupOf(invocation: ErrorContext): string {
  return `/aws/sagemaker/Endpoints/${invocation.endpointName}`;
}

function logStreamArn(invocation: ErrorContext): string {
  return `arn:aws:logs:${invocation.region}:${ACCOUNT_ID}:log-group:${logGroupOf(invocation)}`;
}

/** A container's non-2xx answer, as SageMaker reports it: 424 with the original status and body. */
export function modelError(invocation: ErrorContext, reply: ModelReply): WireError {
  const kind = reply.status >= 500 ? "server" : "client";
  const original = reply.body.toString("utf8");
  return {
    status: 424,
    code: "ModelError",
    message:
      `Received ${kind} error (${reply.status}) from model with message "${original}". ` +
      `See log group ${logGroupOf(invocation)} in account ${ACCOUNT_ID} for more information.`,
    extra: {
      OriginalStatusCode: reply.status,
      OriginalMessage: original,
      LogStreamArn: logStreamArn(invocation),
    },
  };
}

/** No HTTP answer at all (refused, reset, timed out): still ModelError, but with no original status. */
export function containerUnreachable(invocation: ErrorContext, err: unknown): WireError {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const detail = cause instanceof Error ? cause.message : String(cause);
  const timedOut = err instanceof Error && err.name === "TimeoutError";
  const reason = timedOut
    ? "timed out waiting for a response from the container"
    : "could not reach the container";
  return {
    status: 424,
    code: "ModelError",
    message: `Invocation of endpoint ${invocation.endpointName} ${reason}: ${detail}`,
    extra: { OriginalMessage: detail, LogStreamArn: logStreamArn(invocation) },
  };
}

export function injectedError(
  error: InjectableError,
  invocation: ErrorContext,
  details: InjectedErrorDetails = {},
): WireError {
  const wire = injectedWireError(error, invocation, details.originalStatusCode ?? 500);
  if (details.retryAfterSeconds === undefined) return wire;
  return { ...wire, headers: { ...wire.headers, "retry-after": String(details.retryAfterSeconds) } };
}

function injectedWireError(error: InjectableError, invocation: ErrorContext, modelStatus: number): WireError {
  const name = invocation.endpointName;
  switch (error) {
    case "ModelError":
      return modelError(invocation, {
        status: modelStatus,
        contentType: "text/plain",
        body: Buffer.from(`Injected fault: the model container answered ${modelStatus}`),
      });
    case "ThrottlingException":
      // AWS's common ThrottlingException is a 400; the SDK retries it by name, not by status.
      return { status: 400, code: error, message: "Rate exceeded" };
    case "ModelNotReadyException":
      return {
        status: 429,
        code: error,
        message: `Model for endpoint ${name} is not ready yet (injected fault).`,
      };
    case "ServiceUnavailable":
      return {
        status: 503,
        code: error,
        message: "Service is unavailable, try again later (injected fault).",
      };
    case "InternalFailure":
      return { status: 500, code: error, message: "An internal failure occurred (injected fault)." };
    case "InternalDependencyException":
      // SageMaker Runtime models it with HTTP 530 and a Message member; the standard SDK retry does not retry it.
      return {
        status: 530,
        code: error,
        message: "An internal dependency of the endpoint failed (injected fault).",
      };
  }
}

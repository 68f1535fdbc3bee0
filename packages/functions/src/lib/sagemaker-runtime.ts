/**
 * SageMaker Runtime's two operations, InvokeEndpoint and InvokeEndpointWithResponseStream, as Atrium
 * calls them on every model call: @atrium/core/aws-http's signed keep-alive connection and the
 * event-stream framing from @atrium/core/event-stream. Not the AWS SDK's
 * client: on the request path it cost about 1 ms of CPU per call more than this, and 80-100 ms to
 * import (docs/adr/0015-sagemaker-runtime-client.md). One attempt per call: model-retries.ts decides
 * what to try again.
 */
import type { IncomingMessage } from "node:http";
import {
  AwsCallError,
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  headerOf,
  jsonObject,
  partitionOf,
  restJsonError,
  succeeded,
} from "@atrium/core/aws-http";
import { type EventMessage, MessageDecoder } from "@atrium/core/event-stream";

export const SAGEMAKER_RUNTIME: AwsService = {
  title: "SageMaker Runtime",
  signingName: "sagemaker",
  endpointId: "SAGEMAKER_RUNTIME",
  // The FIPS host is named three ways: in the commercial partition, in GovCloud (the usual host) and elsewhere.
  host: (region, fips) => {
    const { id, dnsSuffix } = partitionOf(region);
    const name =
      !fips || id === "aws-us-gov"
        ? "runtime.sagemaker"
        : id === "aws"
          ? "runtime-fips.sagemaker"
          : "runtime.sagemaker-fips";
    return `${name}.${region}.${dnsSuffix}`;
  },
};

export interface InvokeInput {
  endpointName: string;
  body: Uint8Array;
  contentType: string;
  /** The answer's wanted type (X-Amzn-SageMaker-Accept when streamed). */
  accept?: string;
  /** A multi-model endpoint's model; InvokeEndpoint only (the streamed operation has no such member). */
  targetModel?: string;
  inferenceComponentName?: string;
}

export interface InvokeOutput {
  body: Uint8Array;
  /** The model's content type. */
  contentType?: string;
}

export interface StreamOutput {
  /** The model's content type (X-Amzn-SageMaker-Content-Type). */
  contentType?: string;
  /** The bytes of each PayloadPart; the stream's exception events are thrown as SageMakerCallError. */
  parts: AsyncIterable<Uint8Array>;
}

/** Why a call failed: SageMaker's own error, or what happened to the connection. */
export class SageMakerCallError extends AwsCallError {
  /** ModelError: the container's own status and message. */
  readonly originalStatusCode?: number;
  readonly originalMessage?: string;
  /** The answer's Retry-After header, as sent. */
  readonly retryAfter?: string;

  /** `name` is SageMaker's error code (ModelError, ThrottlingException, ...), TimeoutError, AbortError or a network code. */
  constructor(
    name: string,
    message: string,
    details: {
      status?: number;
      originalStatusCode?: number;
      originalMessage?: string;
      retryAfter?: string;
      notSent?: boolean;
    } = {},
  ) {
    super(name, message, details);
    this.originalStatusCode = details.originalStatusCode;
    this.originalMessage = details.originalMessage;
    this.retryAfter = details.retryAfter;
  }
}

const failure = (name: string, message: string, notSent: boolean) =>
  new SageMakerCallError(name, message, { notSent });

/** Timeouts, credentials, endpoint (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME by default) and region. */
export type SageMakerRuntimeOptions = ConnectionOptions;

export class SageMakerRuntime {
  readonly #connection: AwsConnection;

  constructor(options: SageMakerRuntimeOptions) {
    this.#connection = new AwsConnection(SAGEMAKER_RUNTIME, options, failure);
  }

  /** Closes the pooled connections. */
  destroy(): void {
    this.#connection.destroy();
  }

  /** InvokeEndpoint: the model's whole answer. `onSent` is called once the request has gone. */
  async invokeEndpoint(input: InvokeInput, signal?: AbortSignal, onSent?: () => void): Promise<InvokeOutput> {
    const headers: Record<string, string> = { "content-type": input.contentType };
    if (input.accept) headers.accept = input.accept;
    if (input.targetModel) headers["x-amzn-sagemaker-target-model"] = input.targetModel;
    if (input.inferenceComponentName)
      headers["x-amzn-sagemaker-inference-component"] = input.inferenceComponentName;
    const path = `/endpoints/${encodeURIComponent(input.endpointName)}/invocations`;
    const response = await this.#connection.send(
      { path, headers, body: input.body, ...(onSent ? { onSent } : {}) },
      signal,
    );
    const body = await this.#connection.readAll(response);
    if (!succeeded(response)) throw errorOf(response, body);
    return { body, contentType: headerOf(response, "content-type") };
  }

  /** InvokeEndpointWithResponseStream: the answer's PayloadParts as they arrive. */
  async invokeEndpointWithResponseStream(input: InvokeInput, signal?: AbortSignal): Promise<StreamOutput> {
    const headers: Record<string, string> = {
      "content-type": input.contentType,
      accept: "application/vnd.amazon.eventstream",
    };
    if (input.accept) headers["x-amzn-sagemaker-accept"] = input.accept;
    if (input.inferenceComponentName)
      headers["x-amzn-sagemaker-inference-component"] = input.inferenceComponentName;
    const path = `/endpoints/${encodeURIComponent(input.endpointName)}/invocations-response-stream`;
    const response = await this.#connection.send({ path, headers, body: input.body }, signal);
    if (!succeeded(response)) throw errorOf(response, await this.#connection.readAll(response));
    return {
      contentType: headerOf(response, "x-amzn-sagemaker-content-type"),
      parts: this.#payloadParts(response),
    };
  }

  async *#payloadParts(response: IncomingMessage): AsyncGenerator<Uint8Array> {
    const decoder = new MessageDecoder();
    try {
      for await (const chunk of response) {
        for (const message of decoder.push(chunk)) {
          const payload = payloadOf(message);
          if (payload) yield payload;
        }
      }
      decoder.end();
    } catch (err) {
      throw this.#connection.failureOf(err);
    } finally {
      // Stopped early (the caller returned or threw): the connection goes, not back to the pool half read.
      if (!response.complete) response.destroy();
    }
  }
}

/** A PayloadPart's bytes (undefined for an empty one, or another event); an exception or error message is thrown. */
function payloadOf(message: EventMessage): Uint8Array | undefined {
  const type = message.headers[":message-type"];
  if (type === "event") {
    const isPart = message.headers[":event-type"] === "PayloadPart" && message.payload.length > 0;
    return isPart ? message.payload : undefined;
  }
  if (type === "exception") {
    const members = jsonObject(message.payload);
    throw new SageMakerCallError(
      message.headers[":exception-type"] ?? "UnknownError",
      String(members.Message ?? members.message ?? "The stream failed."),
    );
  }
  if (type === "error") {
    throw new SageMakerCallError(
      message.headers[":error-code"] ?? "UnknownError",
      message.headers[":error-message"] ?? "The stream failed.",
    );
  }
  return undefined;
}

/** restJson1's error: its code in x-amzn-ErrorType (or the body's `__type`/`code`), its members in the body. */
function errorOf(response: IncomingMessage, body: Uint8Array): SageMakerCallError {
  const { code, message, members } = restJsonError(response, body);
  const originalStatusCode = Number(members.OriginalStatusCode);
  const retryAfter = headerOf(response, "retry-after");
  return new SageMakerCallError(code, message, {
    status: response.statusCode,
    ...(Number.isInteger(originalStatusCode) ? { originalStatusCode } : {}),
    ...(typeof members.OriginalMessage === "string" ? { originalMessage: members.OriginalMessage } : {}),
    ...(retryAfter ? { retryAfter } : {}),
  });
}

/**
 * SageMaker Runtime's two operations, InvokeEndpoint and InvokeEndpointWithResponseStream, as Atrium
 * calls them on every model call: Node's HTTP client, a keep-alive connection pool, SigV4 from
 * @atrium/core/sigv4 and the event-stream framing from @atrium/core/event-stream. Not the AWS SDK's
 * client: on the request path it cost about 1 ms of CPU per call more than this, and 80-100 ms to
 * import (docs/adr/0015-sagemaker-runtime-client.md). One attempt per call: model-retries.ts decides
 * what to try again.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { decodeMessages } from "@atrium/core/event-stream";
import type { AwsCredentials } from "@atrium/core/sigv4";
import { signRequest } from "@atrium/core/sigv4";

/** SageMaker Runtime's signing name. */
const SERVICE = "sagemaker";
/** As many connections at once as the AWS SDK's default for Node. */
const MAX_SOCKETS = 50;

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
export class SageMakerCallError extends Error {
  /** The HTTP status SageMaker answered, when it answered. */
  readonly status?: number;
  /** ModelError: the container's own status and message. */
  readonly originalStatusCode?: number;
  readonly originalMessage?: string;
  /** The answer's Retry-After header, as sent. */
  readonly retryAfter?: string;
  /** The request never reached SageMaker (refused, no address, connect timeout): trying again is safe. */
  readonly notSent: boolean;

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
    super(message);
    this.name = name;
    this.status = details.status;
    this.originalStatusCode = details.originalStatusCode;
    this.originalMessage = details.originalMessage;
    this.retryAfter = details.retryAfter;
    this.notSent = details.notSent ?? false;
  }
}

export interface SageMakerRuntimeOptions {
  /** Milliseconds to open a connection; past it the call fails as not sent. */
  connectionTimeout: number;
  /** Milliseconds the connection may stay silent, before the answer and between its parts. */
  requestTimeout: number;
  /** Credentials for each call; the function's own (its environment) by default. */
  credentials?: () => Promise<AwsCredentials>;
  /** The region's SageMaker Runtime, or AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME, by default. */
  endpoint?: string;
  /** AWS_REGION by default. */
  region?: string;
}

export class SageMakerRuntime {
  readonly #options: SageMakerRuntimeOptions;
  readonly #agent: HttpAgent;
  readonly #endpoint: URL;
  readonly #region: string;

  constructor(options: SageMakerRuntimeOptions) {
    this.#options = options;
    this.#region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "";
    if (!this.#region) throw new Error("AWS_REGION is not set: SageMaker Runtime needs a region.");
    this.#endpoint = new URL(options.endpoint ?? endpointOf(this.#region));
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
    this.#agent =
      this.#endpoint.protocol === "https:" ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  /** Closes the pooled connections. */
  destroy(): void {
    this.#agent.destroy();
  }

  /** InvokeEndpoint: the model's whole answer. */
  async invokeEndpoint(input: InvokeInput, signal?: AbortSignal): Promise<InvokeOutput> {
    const headers: Record<string, string> = { "content-type": input.contentType };
    if (input.accept) headers.accept = input.accept;
    if (input.targetModel) headers["x-amzn-sagemaker-target-model"] = input.targetModel;
    if (input.inferenceComponentName)
      headers["x-amzn-sagemaker-inference-component"] = input.inferenceComponentName;
    const response = await this.#send(
      `/endpoints/${encodeURIComponent(input.endpointName)}/invocations`,
      headers,
      input.body,
      signal,
    );
    const body = await readAll(response);
    if (!isSuccess(response)) throw errorOf(response, body);
    return { body, contentType: header(response, "content-type") };
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
    const response = await this.#send(path, headers, input.body, signal);
    if (!isSuccess(response)) throw errorOf(response, await readAll(response));
    return { contentType: header(response, "x-amzn-sagemaker-content-type"), parts: payloadParts(response) };
  }

  async #send(
    path: string,
    headers: Record<string, string>,
    body: Uint8Array,
    signal: AbortSignal | undefined,
  ): Promise<IncomingMessage> {
    if (signal?.aborted) throw aborted();
    const credentials = await (this.#options.credentials ?? credentialsFromEnv)();
    const signed = signRequest(
      {
        method: "POST",
        host: this.#endpoint.host,
        path,
        headers: { ...headers, "content-length": String(body.length) },
        body,
      },
      credentials,
      { region: this.#region, service: SERVICE },
    );
    const send = this.#endpoint.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = send({
        protocol: this.#endpoint.protocol,
        hostname: this.#endpoint.hostname,
        port: this.#endpoint.port || undefined,
        method: "POST",
        path,
        headers: signed,
        agent: this.#agent,
      });
      const { connectionTimeout, requestTimeout } = this.#options;
      let answer: IncomingMessage | undefined;
      // Once the answer has begun, a failure ends its body: that is where the caller is reading.
      const fail = (err: SageMakerCallError) => (answer ?? request).destroy(err);
      request.once("socket", (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () =>
            fail(
              new SageMakerCallError(
                "TimeoutError",
                `Could not connect to SageMaker Runtime within ${connectionTimeout} ms.`,
                { notSent: true },
              ),
            ),
          connectionTimeout,
        );
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      request.setTimeout(requestTimeout, () =>
        fail(
          new SageMakerCallError("TimeoutError", `SageMaker Runtime sent nothing for ${requestTimeout} ms.`),
        ),
      );
      const onAbort = () => fail(aborted());
      signal?.addEventListener("abort", onAbort, { once: true });
      request.once("close", () => signal?.removeEventListener("abort", onAbort));
      request.once("response", (response) => {
        answer = response;
        resolve(response);
      });
      request.once("error", (err) => {
        // A pooled connection SageMaker had already closed: the request never reached it (Node's advice).
        const stale = request.reusedSocket && (err as NodeJS.ErrnoException).code === "ECONNRESET";
        reject(stale && !answer ? staleConnection(err) : asCallError(err));
      });
      request.end(body);
    });
  }
}

/**
 * SageMaker Runtime's URL: the configured one (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME or AWS_ENDPOINT_URL,
 * as the SDKs read them), else the region's in the aws, aws-cn and aws-us-gov partitions, with the
 * FIPS host when AWS_USE_FIPS_ENDPOINT is true (as the SDK's endpoint rules name them).
 */
function endpointOf(region: string): string {
  const configured = process.env.AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME ?? process.env.AWS_ENDPOINT_URL;
  if (configured) return configured;
  const fips = process.env.AWS_USE_FIPS_ENDPOINT === "true";
  if (region.startsWith("cn-")) {
    if (fips) throw new Error(`SageMaker Runtime has no FIPS endpoint in ${region}.`);
    return `https://runtime.sagemaker.${region}.amazonaws.com.cn`;
  }
  return `https://runtime${fips ? "-fips" : ""}.sagemaker.${region}.amazonaws.com`;
}

/** The function's own credentials: Lambda puts its role's session in the environment. */
async function credentialsFromEnv(): Promise<AwsCredentials> {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new SageMakerCallError("CredentialsError", "No AWS credentials in the environment.", {
      notSent: true,
    });
  }
  const sessionToken = process.env.AWS_SESSION_TOKEN;
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
}

async function* payloadParts(response: IncomingMessage): AsyncGenerator<Uint8Array> {
  try {
    for await (const message of decodeMessages(response)) {
      const type = message.headers[":message-type"];
      if (type === "event") {
        if (message.headers[":event-type"] === "PayloadPart" && message.payload.length > 0) {
          yield message.payload;
        }
      } else if (type === "exception") {
        const members = parseJson(message.payload);
        throw new SageMakerCallError(
          message.headers[":exception-type"] ?? "UnknownError",
          String(members.Message ?? members.message ?? "The stream failed."),
        );
      } else if (type === "error") {
        throw new SageMakerCallError(
          message.headers[":error-code"] ?? "UnknownError",
          message.headers[":error-message"] ?? "The stream failed.",
        );
      }
    }
  } catch (err) {
    throw asCallError(err);
  } finally {
    // Stopped early (the caller returned or threw): the connection goes, not back to the pool half read.
    if (!response.complete) response.destroy();
  }
}

/** restJson1's error: its code in x-amzn-ErrorType (or the body's `__type`/`code`), its members in the body. */
function errorOf(response: IncomingMessage, body: Uint8Array): SageMakerCallError {
  const members = parseJson(body);
  const code =
    header(response, "x-amzn-errortype")?.split(":")[0] ??
    (typeof members.__type === "string" ? members.__type.split("#").at(-1) : undefined) ??
    (typeof members.code === "string" ? members.code : undefined) ??
    `Http${response.statusCode}`;
  const originalStatusCode = Number(members.OriginalStatusCode);
  return new SageMakerCallError(
    code,
    String(members.Message ?? members.message ?? `HTTP ${response.statusCode}`),
    {
      status: response.statusCode,
      ...(Number.isInteger(originalStatusCode) ? { originalStatusCode } : {}),
      ...(typeof members.OriginalMessage === "string" ? { originalMessage: members.OriginalMessage } : {}),
      ...(header(response, "retry-after") ? { retryAfter: header(response, "retry-after") } : {}),
    },
  );
}

function parseJson(bytes: Uint8Array): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Network failures as call errors; the ones raised before the request left say so. */
function asCallError(err: unknown): SageMakerCallError {
  if (err instanceof SageMakerCallError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  const notSent = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
  return new SageMakerCallError(code ?? e?.name ?? "NetworkError", e?.message ?? String(err), { notSent });
}

const aborted = () => new SageMakerCallError("AbortError", "The call was aborted.");

const staleConnection = (err: Error) =>
  new SageMakerCallError("ECONNRESET", `A pooled connection was closed by SageMaker: ${err.message}`, {
    notSent: true,
  });

const isSuccess = (response: IncomingMessage) =>
  (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300;

function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

async function readAll(response: IncomingMessage): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of response) chunks.push(chunk as Buffer);
  } catch (err) {
    throw asCallError(err);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

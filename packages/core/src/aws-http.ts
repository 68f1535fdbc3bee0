/**
 * One AWS service over HTTP, as Atrium's own clients call it (SageMaker Runtime, DynamoDB): the
 * service's endpoint (configured, else the region's), the caller's credentials, a keep-alive pool,
 * SigV4 and the two timeouts every request has. Node's HTTP client, not the AWS SDK's: on the request
 * path the SDK cost about 1 ms of CPU per call more, and 70-100 ms to import
 * (docs/adr/0015-sagemaker-runtime-client.md). One attempt per request: each client decides what it
 * tries again, knowing what is safe to.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { type AwsCredentials, signRequest } from "./sigv4";

export type { AwsCredentials };

/** As many connections at once as the AWS SDK's default for Node. */
const MAX_SOCKETS = 50;

/** A service, as its endpoint and signature name it. */
export interface AwsService {
  /** For messages: "DynamoDB", "SageMaker Runtime". */
  title: string;
  /** SigV4's service name. */
  signingName: string;
  /** The service's part of AWS_ENDPOINT_URL_<ID>, as the SDKs read it: DYNAMODB, SAGEMAKER_RUNTIME. */
  endpointId: string;
  /** The region's host name, as the SDKs' endpoint rules name it; `fips` when AWS_USE_FIPS_ENDPOINT is true. */
  host(region: string, fips: boolean): string;
  /** S3: requests' paths are signed as sent, not normalised nor encoded again (sigv4.ts, `pathAsSent`). */
  pathSignedAsSent?: boolean;
}

export interface ConnectionOptions {
  /** Milliseconds to open a connection; past it the request fails as not sent. */
  connectionTimeout: number;
  /** Milliseconds the connection may stay silent, before the answer and while it is read. */
  requestTimeout: number;
  /** Credentials for each request; the function's own (its environment) by default. */
  credentials?: () => Promise<AwsCredentials>;
  /** The region's endpoint, or AWS_ENDPOINT_URL_<ID> (else AWS_ENDPOINT_URL), by default. */
  endpoint?: string;
  /** AWS_REGION by default. */
  region?: string;
  /** Attempts per call through `exchange`, retries included (1 by default): 1 where a retry might apply twice. */
  maxAttempts?: number;
}

/** Why a request failed: the service's own error, or what happened to the connection. */
export class AwsCallError extends Error {
  /** The HTTP status the service answered, when it answered. */
  readonly status?: number;
  /** The request never reached the service (refused, no address, connect timeout): trying again is safe. */
  readonly notSent: boolean;
  /** How many attempts the call made before it gave up (withRetries). */
  attempts = 1;

  /** `name` is the service's error code, TimeoutError, AbortError or a network code (ECONNRESET...). */
  constructor(name: string, message: string, details: { status?: number; notSent?: boolean } = {}) {
    super(message);
    this.name = name;
    this.status = details.status;
    this.notSent = details.notSent ?? false;
  }
}

/** A connection's failure as a plain AwsCallError. */
const callFailure: FailureOf = (name, message, notSent) => new AwsCallError(name, message, { notSent });

/** How a client makes its own error for a failure of the connection. */
export type FailureOf = (name: string, message: string, notSent: boolean) => AwsCallError;

export interface OutgoingRequest {
  /** POST unless said otherwise. */
  method?: "POST" | "PUT" | "DELETE";
  path: string;
  /** The query as it goes on the wire, without `?`; none by default. */
  query?: string;
  /** Headers to send and sign, names in lower case. */
  headers: Record<string, string>;
  body: Uint8Array;
  /** Called once the whole request has been handed to the connection, its answer not yet read. */
  onSent?: () => void;
}

/** A keep-alive pool to one service's endpoint, signing every request. */
export class AwsConnection {
  readonly region: string;
  readonly #service: AwsService;
  readonly #options: ConnectionOptions;
  readonly #failure: FailureOf;
  readonly #endpoint: URL;
  readonly #agent: HttpAgent;

  /** `failure`: the client's own error class for a connection's failure (AwsCallError by default). */
  constructor(service: AwsService, options: ConnectionOptions, failure: FailureOf = callFailure) {
    this.#service = service;
    this.#options = options;
    this.#failure = failure;
    this.region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "";
    if (!this.region) throw new Error(`AWS_REGION is not set: ${service.title} needs a region.`);
    this.#endpoint = new URL(options.endpoint ?? endpointOf(service, this.region));
    const agentOptions = { keepAlive: true, maxSockets: MAX_SOCKETS };
    this.#agent =
      this.#endpoint.protocol === "https:" ? new HttpsAgent(agentOptions) : new HttpAgent(agentOptions);
  }

  /** Closes the pooled connections. */
  destroy(): void {
    this.#agent.destroy();
  }

  /** Sends `request`, signed; resolves with the answer's head (its body is the caller's to read). */
  async send(request: OutgoingRequest, signal?: AbortSignal): Promise<IncomingMessage> {
    if (signal?.aborted) throw this.#aborted();
    const provider = this.#options.credentials ?? (() => credentialsFromEnv(this.#failure));
    const credentials = await provider().catch((err: unknown) => {
      if (typeof err === "object" && err !== null) credentialFailures.add(err);
      throw err;
    });
    const method = request.method ?? "POST";
    const signed = signRequest(
      {
        method,
        host: this.#endpoint.host,
        path: request.path,
        query: request.query,
        headers: { ...request.headers, "content-length": String(request.body.length) },
        body: request.body,
        pathAsSent: this.#service.pathSignedAsSent,
      },
      credentials,
      { region: this.region, service: this.#service.signingName },
    );
    const send = this.#endpoint.protocol === "https:" ? httpsRequest : httpRequest;
    const title = this.#service.title;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const outgoing = send({
        protocol: this.#endpoint.protocol,
        hostname: this.#endpoint.hostname,
        port: this.#endpoint.port || undefined,
        method,
        path: request.query ? `${request.path}?${request.query}` : request.path,
        headers: signed,
        agent: this.#agent,
      });
      const { connectionTimeout, requestTimeout } = this.#options;
      let answer: IncomingMessage | undefined;
      // Once the answer has begun, a failure ends its body: that is where the caller is reading.
      const fail = (err: AwsCallError) => (answer ?? outgoing).destroy(err);
      outgoing.once("socket", (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () =>
            fail(
              this.#failure(
                "TimeoutError",
                `Could not connect to ${title} within ${connectionTimeout} ms.`,
                true,
              ),
            ),
          connectionTimeout,
        );
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      outgoing.setTimeout(requestTimeout, () =>
        fail(this.#failure("TimeoutError", `${title} sent nothing for ${requestTimeout} ms.`, false)),
      );
      const onAbort = () => fail(this.#aborted());
      signal?.addEventListener("abort", onAbort, { once: true });
      outgoing.once("close", () => signal?.removeEventListener("abort", onAbort));
      outgoing.once("response", (response) => {
        answer = response;
        resolve(response);
      });
      outgoing.once("error", (err) => {
        // A pooled connection the service had already closed: the request never reached it (Node's advice).
        const stale =
          outgoing.reusedSocket && (err as NodeJS.ErrnoException).code === "ECONNRESET" && !answer;
        reject(
          stale
            ? this.#failure("ECONNRESET", `A pooled connection was closed by ${title}: ${err.message}`, true)
            : this.failureOf(err),
        );
      });
      if (request.onSent) outgoing.once("finish", request.onSent);
      outgoing.end(request.body);
    });
  }

  /**
   * One call: `request` sent and its answer read whole, tried again as `withRetries` says up to
   * `maxAttempts`; an answer outside 2xx is thrown as `errorOf` reads it, any other resolves with its body. `beforeAttempt` runs
   * before each attempt is sent.
   */
  exchange(
    request: OutgoingRequest,
    errorOf: (response: IncomingMessage, body: Uint8Array) => AwsCallError,
    beforeAttempt?: () => void | Promise<void>,
  ): Promise<{ response: IncomingMessage; body: Uint8Array }> {
    return withRetries(Math.max(1, this.#options.maxAttempts ?? 1), async () => {
      await beforeAttempt?.();
      const response = await this.send(request);
      const body = await this.readAll(response);
      if (!succeeded(response)) throw errorOf(response, body);
      return { response, body };
    });
  }

  /** A network failure as the client's error; the ones raised before the request left say so. */
  failureOf(err: unknown): AwsCallError {
    if (err instanceof AwsCallError) return err;
    const e = err as NodeJS.ErrnoException;
    const code = e?.code;
    const notSent = code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN";
    return this.#failure(code ?? e?.name ?? "NetworkError", e?.message ?? String(err), notSent);
  }

  /** The answer's whole body. */
  async readAll(response: IncomingMessage): Promise<Uint8Array> {
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of response) chunks.push(chunk as Buffer);
    } catch (err) {
      throw this.failureOf(err);
    }
    return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
  }

  #aborted(): AwsCallError {
    return this.#failure("AbortError", "The call was aborted.", false);
  }
}

/** The SDK's throttling codes (@smithy/service-error-classification); status 429 too. */
const THROTTLING = new Set([
  "ProvisionedThroughputExceededException",
  "RequestLimitExceeded",
  "ThrottlingException",
  "Throttling",
  "TransactionInProgressException",
  "LimitExceededException",
  "TooManyRequestsException",
  "RequestThrottled",
  "RequestThrottledException",
]);
/** The SDK's transient failures: its timeout codes and Node's connection codes; 5xx too. */
const TRANSIENT = new Set([
  "TimeoutError",
  "RequestTimeout",
  "RequestTimeoutException",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
]);

/** A retry's random wait is at most this, doubling per retry (the SDK's standard mode, docs/adr/0007). */
export const RETRY_DELAY_BASE_MS = { transient: 50, throttling: 1000 } as const;

/** Whether the SDK's standard mode would try a failure again, and which wait it would take if so. */
export function retryKind(error: AwsCallError): keyof typeof RETRY_DELAY_BASE_MS | undefined {
  if (error.status === 429 || THROTTLING.has(error.name)) return "throttling";
  if (error.notSent || TRANSIENT.has(error.name) || [500, 502, 503, 504].includes(error.status ?? 0))
    return "transient";
  return undefined;
}

/** Failures of a request's credentials (an STS session, say), which their provider has retried already. */
const credentialFailures = new WeakSet<object>();

/**
 * Runs `attempt` until it succeeds, fails in a way not worth retrying, or `maxAttempts` are spent;
 * the error thrown says how many were made. A failure that is not the request's own (its credentials',
 * say) is thrown at once: their provider has its own retries.
 */
export async function withRetries<T>(maxAttempts: number, attempt: () => Promise<T>): Promise<T> {
  for (let made = 1; ; made++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof AwsCallError) || credentialFailures.has(err)) throw err;
      const kind = retryKind(err);
      if (made >= maxAttempts || !kind) {
        err.attempts = made;
        throw err;
      }
      const ceiling = RETRY_DELAY_BASE_MS[kind] * 2 ** (made - 1);
      await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * ceiling)));
    }
  }
}

/**
 * The service's URL: the configured one (AWS_ENDPOINT_URL_<ID>, else AWS_ENDPOINT_URL, as the SDKs
 * read them), else the region's, with its FIPS host when AWS_USE_FIPS_ENDPOINT is true.
 */
function endpointOf(service: AwsService, region: string): string {
  const configured = configuredEndpoint(service.endpointId);
  if (configured) return configured;
  return `https://${service.host(region, process.env.AWS_USE_FIPS_ENDPOINT === "true")}`;
}

/** AWS_ENDPOINT_URL_<ID>, else AWS_ENDPOINT_URL, as the SDKs read them; undefined when neither is set. */
export function configuredEndpoint(endpointId: string): string | undefined {
  return process.env[`AWS_ENDPOINT_URL_${endpointId}`] ?? process.env.AWS_ENDPOINT_URL;
}

/** AWS's partitions (as the SDKs' partition table has them): which regions, and their DNS suffix. */
const PARTITIONS = [
  { id: "aws-cn", regions: /^cn-\w+-\d+$/, dnsSuffix: "amazonaws.com.cn" },
  { id: "aws-us-gov", regions: /^us-gov-\w+-\d+$/, dnsSuffix: "amazonaws.com" },
  { id: "aws-iso", regions: /^us-iso-\w+-\d+$/, dnsSuffix: "c2s.ic.gov" },
  { id: "aws-iso-b", regions: /^us-isob-\w+-\d+$/, dnsSuffix: "sc2s.sgov.gov" },
  { id: "aws-iso-e", regions: /^eu-isoe-\w+-\d+$/, dnsSuffix: "cloud.adc-e.uk" },
  { id: "aws-iso-f", regions: /^us-isof-\w+-\d+$/, dnsSuffix: "csp.hci.ic.gov" },
] as const;

/** A region's partition: its id and DNS suffix (the commercial one, aws, unless another claims it). */
export function partitionOf(region: string): { id: string; dnsSuffix: string } {
  return (
    PARTITIONS.find((partition) => partition.regions.test(region)) ?? {
      id: "aws",
      dnsSuffix: "amazonaws.com",
    }
  );
}

/**
 * The usual host of a service in a region, `<name>.<region>.<suffix>`, and its FIPS host
 * `<name>-fips.<region>.<suffix>`; in GovCloud some services are FIPS on their usual host.
 */
export function regionalHost(name: string, fipsIsUsualInGovCloud: boolean): AwsService["host"] {
  return (region, fips) => {
    const { id, dnsSuffix } = partitionOf(region);
    const fipsHost = fips && !(fipsIsUsualInGovCloud && id === "aws-us-gov");
    return `${name}${fipsHost ? "-fips" : ""}.${region}.${dnsSuffix}`;
  };
}

/** The function's own credentials: Lambda puts its role's session in the environment. */
async function credentialsFromEnv(failure: FailureOf): Promise<AwsCredentials> {
  const accessKeyId = process.env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = process.env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey)
    throw failure("CredentialsError", "No AWS credentials in the environment.", true);
  const sessionToken = process.env.AWS_SESSION_TOKEN;
  return sessionToken ? { accessKeyId, secretAccessKey, sessionToken } : { accessKeyId, secretAccessKey };
}

/** A response header's value, repeated ones joined. */
export function headerOf(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

export const succeeded = (response: IncomingMessage) =>
  (response.statusCode ?? 0) >= 200 && (response.statusCode ?? 0) < 300;

/**
 * A restJson1 error's code and message: the code in x-amzn-ErrorType (or the body's `__type` or
 * `code`), the message in the body; `members` is the whole body, for the service's own members.
 */
export function restJsonError(
  response: IncomingMessage,
  body: Uint8Array,
): { code: string; message: string; members: Record<string, unknown> } {
  const members = jsonObject(body);
  const code =
    headerOf(response, "x-amzn-errortype")?.split(":")[0] ??
    (typeof members.__type === "string" ? members.__type.split("#").at(-1) : undefined) ??
    (typeof members.code === "string" ? members.code : undefined) ??
    `Http${response.statusCode}`;
  const message = String(members.Message ?? members.message ?? `HTTP ${response.statusCode}`);
  return { code, message, members };
}

/** A JSON object body; anything else (not JSON, not an object) reads as {}. */
export function jsonObject(bytes: Uint8Array): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(
      Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"),
    );
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * The REQUEST authorizer as the local API Gateway runs it: the identity source, the result cache
 * (per identity, for the TTL, flushable), the real authorizer function, and the IAM evaluation of its
 * policy for each method. A refusal is a GatewayError, answered with that gateway response.
 */
import type { GatewayResponseType } from "@atrium/functions/api";
import type {
  APIGatewayAuthorizerResult,
  APIGatewayProxyEvent,
  APIGatewayRequestAuthorizerEvent,
  Context,
} from "aws-lambda";
import type { CollectedHeaders } from "./gateway-event";
import { inInvocation } from "./lambda-invoke-store";

// biome-ignore lint/suspicious/noExplicitAny: handlers are typed by their own modules
export type LambdaHandler = (event: any, context: Context) => Promise<any>;

export class GatewayError extends Error {
  constructor(readonly type: GatewayResponseType) {
    super(type);
  }
}

export interface AuthorizerSettings {
  handler: string;
  /** The identity source: one header, `method.request.header.<identityHeader>`. */
  identityHeader: string;
  cacheTtlSeconds: number;
}

export interface RequestAuthorizer {
  /** The cached or fresh decision for this request; throws GatewayError unless it allows methodArn. */
  authorize(
    event: APIGatewayProxyEvent,
    methodArn: string,
    headers: CollectedHeaders,
  ): Promise<APIGatewayAuthorizerResult>;
  flush(): void;
  /** How many times the authorizer function actually ran (cache misses). */
  invocations(): number;
}

/**
 * The identity-source value of a request: its one value of the header, or undefined.
 *
 * What API Gateway documents for a REST API's REQUEST authorizer (API Gateway API reference,
 * Authorizer.identitySource): the identity sources are mapping expressions such as
 * `method.request.header.Authorization`; their values derive the authorizer cache key, and when any
 * is missing, null or empty API Gateway answers 401 without calling the authorizer. Header names are
 * case-insensitive (RFC 9110), so every spelling is the same source. Which value a repeated header
 * gives is not documented, so here every value counts, in any case, and more than one (two lines, or
 * one comma-joined line) is the same 401, decided before the cache is read: a decision is only ever
 * cached under the one key the authorizer checked, and only served to a caller sending that key alone.
 */
export function identitySourceValue(headers: CollectedHeaders, name: string): string | undefined {
  const values = headers.byName.get(name.toLowerCase()) ?? [];
  const [value] = values;
  if (values.length !== 1 || !value?.trim() || value.includes(",")) return undefined;
  return value;
}

export function requestAuthorizer(options: {
  settings: AuthorizerSettings;
  loadHandler: (handler: string) => Promise<LambdaHandler>;
  lambdaContext: (handler: string, timeoutMs: number) => Context;
}): RequestAuthorizer {
  const { settings } = options;
  const cache = new Map<string, { result: APIGatewayAuthorizerResult; expiresAt: number }>();
  let runs = 0;

  async function run(event: APIGatewayProxyEvent, methodArn: string): Promise<APIGatewayAuthorizerResult> {
    runs += 1;
    const authorizerEvent: APIGatewayRequestAuthorizerEvent = {
      type: "REQUEST",
      methodArn,
      resource: event.resource,
      path: event.path,
      httpMethod: event.httpMethod,
      headers: event.headers as Record<string, string>,
      multiValueHeaders: event.multiValueHeaders as Record<string, string[]>,
      pathParameters: event.pathParameters,
      queryStringParameters: event.queryStringParameters,
      multiValueQueryStringParameters: event.multiValueQueryStringParameters,
      stageVariables: null,
      requestContext: event.requestContext as APIGatewayRequestAuthorizerEvent["requestContext"],
    };
    let result: unknown;
    try {
      const handler = await options.loadHandler(settings.handler);
      const context = options.lambdaContext(settings.handler, 10_000);
      result = await withTimeout(
        inInvocation(context, () => handler(authorizerEvent, context)),
        10_000,
      );
    } catch (err) {
      if (err instanceof Error && err.message === "Unauthorized") throw new GatewayError("UNAUTHORIZED");
      console.error("authorizer failed:", err);
      throw new GatewayError("AUTHORIZER_FAILURE");
    }
    if (!isAuthorizerResult(result)) throw new GatewayError("AUTHORIZER_CONFIGURATION_ERROR");
    return result;
  }

  return {
    async authorize(event, methodArn, headers) {
      const identity = identitySourceValue(headers, settings.identityHeader);
      if (identity === undefined) throw new GatewayError("UNAUTHORIZED");
      const now = Date.now();
      let cached = cache.get(identity);
      if (!cached || cached.expiresAt <= now) {
        cache.delete(identity);
        const result = await run(event, methodArn);
        cached = { result, expiresAt: now + settings.cacheTtlSeconds * 1000 };
        if (settings.cacheTtlSeconds > 0) cache.set(identity, cached);
      }
      if (evaluatePolicy(cached.result, methodArn) !== "Allow") throw new GatewayError("ACCESS_DENIED");
      return cached.result;
    },
    flush: () => cache.clear(),
    invocations: () => runs,
  };
}

/** IAM policy evaluation for execute-api: an explicit Deny wins, then any Allow, else implicit deny. */
export function evaluatePolicy(result: APIGatewayAuthorizerResult, methodArn: string): "Allow" | "Deny" {
  let allowed = false;
  for (const statement of result.policyDocument.Statement) {
    const resources = "Resource" in statement ? [statement.Resource].flat() : [];
    if (!resources.some((resource) => arnMatches(String(resource), methodArn))) continue;
    if (statement.Effect === "Deny") return "Deny";
    if (statement.Effect === "Allow") allowed = true;
  }
  return allowed ? "Allow" : "Deny";
}

/** Resource patterns compiled once: a cached policy is evaluated again on every call. */
const compiledPatterns = new Map<string, RegExp>();
const MAX_COMPILED_PATTERNS = 1024;

function arnMatches(pattern: string, arn: string): boolean {
  let compiled = compiledPatterns.get(pattern);
  if (!compiled) {
    const regex = pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".");
    compiled = new RegExp(`^${regex}$`);
    if (compiledPatterns.size >= MAX_COMPILED_PATTERNS) compiledPatterns.clear();
    compiledPatterns.set(pattern, compiled);
  }
  return compiled.test(arn);
}

function isAuthorizerResult(value: unknown): value is APIGatewayAuthorizerResult {
  const v = value as APIGatewayAuthorizerResult | undefined;
  return typeof v?.principalId === "string" && Array.isArray(v.policyDocument?.Statement);
}

export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GatewayError("INTEGRATION_TIMEOUT")), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

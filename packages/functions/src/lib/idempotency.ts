/**
 * The `Idempotency-Key` request header (IETF httpapi draft) on the calls that create or charge: the same
 * key and request within 24 h replays the first answer (status, headers, body) and nothing runs or is
 * charged again; the same key with another request is 422; while the first is still running, 409 with
 * retry-after. Errors are not kept, so a failed call can be retried with its key. Keys are scoped to the
 * caller (a tenant, or an admin principal). Records: Powertools Idempotency, kept in DynamoDB through
 * Atrium's own client (./idempotency-store, the items Powertools' DynamoDB persistence layer writes).
 */
import type { DynamoClient } from "@atrium/core/dynamodb/client";
import { AtriumError } from "@atrium/core/errors";
import { isTenantId } from "@atrium/core/ids";
import { tenantKey } from "@atrium/core/keys";
import { IdempotencyTable } from "@atrium/core/tables";
import { cleanupMiddlewares } from "@aws-lambda-powertools/commons";
import {
  IdempotencyConfig,
  IdempotencyItemAlreadyExistsError,
  IdempotencyItemNotFoundError,
  IdempotencyRecordStatus,
  IdempotencyValidationError,
} from "@aws-lambda-powertools/idempotency";
import { MetricUnit } from "@aws-lambda-powertools/metrics";
import type { MiddlewareObj, Request } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import type { ApiContext } from "./api-responses";
import { documentClient, requireEnv } from "./clients";
import { fingerprint, IDEMPOTENCY_HEADER, idempotencyKeyOf } from "./idempotency-request";
import { DynamoIdempotencyStore } from "./idempotency-store";
import { idempotentRoutes } from "./idempotent-routes";
import { logger, metrics } from "./observability";
import { openReply, sealReply } from "./sealed-reply";
import { isStreamed } from "./stream-response";

type Event = APIGatewayProxyEvent;
type Result = APIGatewayProxyResult;

/** How long a key replays its first answer. */
export const REPLAY_SECONDS = 24 * 3600;
/** Partition of records made before the tenant exists (POST /admin/tenants). */
export const ADMIN_PARTITION = "ADMIN#";
/** DynamoDB's items stop at 400 KB; a reply that does not fit is answered but not kept. */
const MAX_SEALED_CHARS = 350_000;

const config = new IdempotencyConfig({
  eventKeyJmesPath: "idempotencyKey",
  payloadValidationJmesPath: "request",
  expiresAfterSeconds: REPLAY_SECONDS,
  hashFunction: "sha256",
});

/** One call that holds an in-progress record until it answers. */
interface Claim {
  store: DynamoIdempotencyStore;
  data: { idempotencyKey: string; request: string };
  secret: string;
  scope: string;
}

const CLAIM = "atrium.idempotency";

/** `tenantDynamo`: the tenant's own client (its IAM session) for tenant-scoped keys; admin chains have none. */
export function idempotency<C extends ApiContext>(
  options: { tenantDynamo?: (tenantId: string) => DynamoClient } = {},
): MiddlewareObj<Event, Result, Error, C> {
  return {
    before: async (request) => {
      const claim = claimFor(request.event, options.tenantDynamo);
      if (!claim) return;
      const sealed = await takeOrFind(claim, request.context);
      if (sealed === undefined) {
        (request.internal as Record<string, unknown>)[CLAIM] = claim;
        return;
      }
      metrics.addMetric("IdempotentReplays", MetricUnit.Count, 1);
      logger.info("idempotent replay");
      const reply = replayed(openReply(sealed, claim.secret, claim.scope), request);
      // An early answer skips every `after`: Powertools' own middlewares still flush and close.
      await cleanupMiddlewares(request);
      return reply;
    },
    after: async (request) => {
      const claim = release(request);
      if (!claim) return;
      const response = request.response;
      // A streamed answer is not kept: its key only holds off duplicates until its head is sent.
      if (!response || response.statusCode >= 400 || isStreamed(response)) return forget(claim);
      const headers = { ...response.headers, ...request.context.responseHeaders };
      const sealed = sealReply({ ...response, headers }, claim.secret, claim.scope);
      if (sealed.length > MAX_SEALED_CHARS) {
        logger.warn("reply too large to keep for idempotent replay", { chars: sealed.length });
        return forget(claim);
      }
      try {
        await claim.store.saveSuccess(claim.data, sealed);
      } catch (err) {
        // The call succeeded and is answered; only a retry with this key would run it again.
        logger.warn("idempotent reply not kept", { error: (err as Error).name });
        await forget(claim);
      }
    },
    onError: async (request) => {
      const claim = release(request);
      if (claim) await forget(claim);
    },
  };
}

/** The call's claim on its key, or undefined when the route or the call does not use one. */
function claimFor(
  event: Event,
  tenantDynamo: ((tenantId: string) => DynamoClient) | undefined,
): Claim | undefined {
  const scope = idempotentRoutes.get(`${event.httpMethod} ${event.resource}`);
  if (!scope) return undefined;
  const secret = idempotencyKeyOf(event);
  if (secret === undefined) return undefined;
  const caller = scope === "tenant" ? tenantCaller(event, tenantDynamo) : adminCaller(event);
  // Unscoped calls are refused by the steps that follow (no tenant, no admin identity, a bad id).
  if (!caller) return undefined;
  const who = `${caller.partition}\n${caller.who}`;
  return {
    store: persistenceFor(caller.partition, caller.client),
    data: { idempotencyKey: `${who}\n${secret}`, request: fingerprint(event, secret) },
    secret,
    scope: who,
  };
}

interface Caller {
  /** The record's partition: the tenant's own (`TENANT#<id>#`), so an erase removes it, or ADMIN#. */
  partition: string;
  who: string;
  client: DynamoClient;
}

function tenantCaller(
  event: Event,
  tenantDynamo: ((tenantId: string) => DynamoClient) | undefined,
): Caller | undefined {
  const tenantId = event.requestContext?.authorizer?.tenantId;
  if (!tenantDynamo || typeof tenantId !== "string" || !isTenantId(tenantId)) return undefined;
  // The tenant's own session: IAM lets it reach only its partition of the table (docs/adr/0006).
  return { partition: tenantKey(tenantId), who: "tenant", client: tenantDynamo(tenantId) };
}

function adminCaller(event: Event): Caller | undefined {
  const actor = event.requestContext?.identity?.userArn;
  const tenantId = event.pathParameters?.tenantId;
  if (!actor || (tenantId !== undefined && !isTenantId(tenantId))) return undefined;
  const partition = tenantId === undefined ? ADMIN_PARTITION : tenantKey(tenantId);
  return { partition, who: `admin ${actor}`, client: documentClient };
}

/** Takes the key for this call (undefined), or finds its kept reply (the sealed reply), or refuses. */
async function takeOrFind(claim: Claim, context: ApiContext): Promise<string | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      await claim.store.saveInProgress(claim.data, context.getRemainingTimeInMillis?.());
      return undefined;
    } catch (err) {
      if (!(err instanceof IdempotencyItemAlreadyExistsError)) throw unavailable(err);
      try {
        const record = err.existingRecord
          ? claim.store.processExistingRecord(err.existingRecord, claim.data)
          : await claim.store.getRecord(claim.data);
        if (record.getStatus() === IdempotencyRecordStatus.COMPLETED) return String(record.getResponse());
        throw inFlight();
      } catch (found) {
        if (found instanceof IdempotencyValidationError) throw reused();
        // The record went between the two reads (its call failed): take the key this time.
        if (found instanceof IdempotencyItemNotFoundError && attempt === 0) continue;
        if (found instanceof AtriumError) throw found;
        throw unavailable(found);
      }
    }
  }
}

function release(request: Request<Event, Result, Error, ApiContext>): Claim | undefined {
  const internal = request.internal as Record<string, unknown>;
  const claim = internal[CLAIM] as Claim | undefined;
  delete internal[CLAIM];
  return claim;
}

/** Drops the in-progress record, so the key can be used again; if that fails, it lapses with the call's time. */
async function forget(claim: Claim): Promise<void> {
  try {
    await claim.store.deleteRecord(claim.data);
  } catch (err) {
    logger.warn("idempotency record not released", { error: (err as Error).name });
  }
}

function replayed(reply: Result, request: Request<Event, Result, Error, ApiContext>): Result {
  const requestId = request.event.requestContext?.requestId ?? request.context.awsRequestId;
  const startedAt = request.context.timing?.startedAt ?? performance.now();
  return {
    ...reply,
    headers: {
      ...reply.headers,
      "idempotent-replayed": "true",
      "x-request-id": requestId,
      "x-atrium-overhead-ms": (performance.now() - startedAt).toFixed(1),
    },
  };
}

const layers = new Map<string, { client: DynamoClient; layer: DynamoIdempotencyStore }>();
const MAX_LAYERS = 500;

/** One persistence layer per partition (Powertools fixes a layer's partition key), cached in the container. */
function persistenceFor(partition: string, client: DynamoClient): DynamoIdempotencyStore {
  const cached = layers.get(partition);
  if (cached?.client === client) return cached.layer;
  const layer = new DynamoIdempotencyStore({
    client,
    tableName: requireEnv(IdempotencyTable.env),
    partition,
  });
  layer.configure({ config, keyPrefix: "IDEMPOTENCY" });
  if (layers.size >= MAX_LAYERS) layers.delete(layers.keys().next().value as string);
  layers.set(partition, { client, layer });
  return layer;
}

const inFlight = () => {
  const err = new AtriumError(
    409,
    "conflict_error",
    "idempotency_key_in_use",
    `A request with this ${IDEMPOTENCY_HEADER} is still being processed; retry it once that one has answered.`,
    IDEMPOTENCY_HEADER,
  );
  err.headers = { "retry-after": "1", "retry-after-ms": "1000" };
  return err;
};

const reused = () =>
  new AtriumError(
    422,
    "invalid_request_error",
    "idempotency_key_reused",
    `This ${IDEMPOTENCY_HEADER} was used for a different request in the last 24 hours; send a new key with a new request.`,
    IDEMPOTENCY_HEADER,
  );

function unavailable(err: unknown): AtriumError {
  logger.error("idempotency store unavailable", { error: (err as Error).name });
  const refused = new AtriumError(
    503,
    "api_error",
    "idempotency_unavailable",
    `The ${IDEMPOTENCY_HEADER} could not be checked just now, so the call was not made. Retry shortly.`,
  );
  refused.headers = { "retry-after": "1" };
  return refused;
}

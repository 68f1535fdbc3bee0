import { apiKeyOfRequest, hashApiKey } from "@atrium/core/api-key";
import {
  isKeyUsable,
  type KeyRecord,
  keyState,
  LAST_USED_RESOLUTION_MS,
  lastUsedIsStale,
} from "@atrium/core/key-state";
import { findKeyByHash, touchKey } from "@atrium/core/key-store";
import { getProfile } from "@atrium/core/profiles";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from "aws-lambda";
// Not lib/clients.ts: no stage config parse, no zod, no tenant admin code (docs/adr/0014-lambda-bundles.md).
import { tenantTable } from "./lib/document-client";
import { logger } from "./lib/observability";

/** API Gateway answers 401 (the UNAUTHORIZED gateway response) for exactly this error message. */
const unauthorized = () => new Error("Unauthorized");

/**
 * The result is cached by API Gateway per Authorization header, so the policy covers every tenant
 * route of the stage rather than only the method that happened to be called first.
 */
export function tenantRoutesArn(methodArn: string): string {
  const [apiArn, stage] = methodArn.split("/");
  return `${apiArn}/${stage}/*/v1/*`;
}

function policy(
  effect: "Allow" | "Deny",
  resource: string,
  context: Record<string, string>,
): APIGatewayAuthorizerResult {
  return {
    principalId: context.tenantId ?? "unknown",
    policyDocument: {
      Version: "2012-10-17",
      Statement: [{ Action: "execute-api:Invoke", Effect: effect, Resource: resource }],
    },
    context,
  };
}

/** Stamps the key's last use, at most once per LAST_USED_RESOLUTION_MS; a failure never refuses the call. */
async function recordUse(key: KeyRecord, hash: string, now: number): Promise<void> {
  if (!lastUsedIsStale(key, now)) return;
  try {
    await touchKey(tenantTable, hash, new Date(now), new Date(now - LAST_USED_RESOLUTION_MS));
  } catch (err) {
    logger.warn("last-used stamp not written", { keyId: key.keyId, error: (err as Error).name });
  }
}

export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>()
  // Never log the event: it carries the API key.
  .use(injectLambdaContext(logger, { resetKeys: true, logEvent: false }))
  .handler(async (event) => {
    // Exactly one Authorization value, or 401 before any lookup: one key, one tenant.
    const key = apiKeyOfRequest(event);
    if (!key) throw unauthorized();

    const hash = hashApiKey(key);
    const now = Date.now();
    const record = await findKeyByHash(tenantTable, hash);
    if (!record || !isKeyUsable(record, now)) {
      logger.info("key refused", {
        keyId: record?.keyId,
        reason: record ? keyState(record, now) : "unknown",
      });
      throw unauthorized();
    }
    // The profile is read fresh, not from a cache: after an admin flush, a suspension holds at once.
    const [profile] = await Promise.all([
      getProfile(tenantTable, record.tenantId),
      recordUse(record, hash, now),
    ]);
    const tenant = profile?.tenant;
    if (!tenant || tenant.status === "deleted") throw unauthorized();

    // A rotated key's end travels with the cached decision, so every call can check it (middleware).
    const context = {
      tenantId: tenant.id,
      tier: tenant.tier,
      keyId: record.keyId,
      ...(record.expiresAt ? { keyExpiresAt: record.expiresAt } : {}),
    };
    const effect = tenant.status === "active" ? "Allow" : "Deny";
    logger.info("key resolved", { ...context, effect });
    return policy(effect, tenantRoutesArn(event.methodArn), context);
  });

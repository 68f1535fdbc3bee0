import { bearerToken, hashApiKey, isWellFormedApiKey } from "@atrium/core/api-key";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import middy from "@middy/core";
import type { APIGatewayAuthorizerResult, APIGatewayRequestAuthorizerEvent } from "aws-lambda";
import { tenantStore } from "./lib/clients";
import { logger } from "./lib/observability";
import { loadTenant } from "./lib/tenant-cache";

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

export const handler = middy<APIGatewayRequestAuthorizerEvent, APIGatewayAuthorizerResult>()
  .use(injectLambdaContext(logger, { resetKeys: true }))
  .handler(async (event) => {
    const headers = event.headers ?? {};
    const authorization = Object.entries(headers).find(
      ([name]) => name.toLowerCase() === "authorization",
    )?.[1];
    const key = bearerToken(authorization);
    if (!key || !isWellFormedApiKey(key)) throw unauthorized();

    const record = await tenantStore.findKey(hashApiKey(key));
    if (record?.status !== "active") {
      logger.info("key refused", { keyId: record?.keyId, reason: record ? "revoked" : "unknown" });
      throw unauthorized();
    }
    const tenant = await loadTenant(record.tenantId);
    if (!tenant) throw unauthorized();

    const context = { tenantId: tenant.id, tier: tenant.tier, keyId: record.keyId };
    const effect = tenant.status === "active" ? "Allow" : "Deny";
    logger.info("key resolved", { ...context, effect });
    return policy(effect, tenantRoutesArn(event.methodArn), context);
  });

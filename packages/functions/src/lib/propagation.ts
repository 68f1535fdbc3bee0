/**
 * Makes an admin change take effect at once rather than when caches expire: API Gateway's authorizer
 * cache for the stage is flushed (FlushStageAuthorizersCache), and this container's tenant cache entry
 * dropped. Warm containers elsewhere still hold their tenant entry for at most tenantCacheTtlSeconds.
 */
import { ApiGatewayControl } from "./api-gateway";
import { config } from "./clients";
import { logger } from "./observability";
import { StackEnv } from "./stack-env";
import { forgetTenant } from "./tenant-cache";
import { apiGatewayTimeouts } from "./timeouts";

// The endpoint comes from AWS_ENDPOINT_URL_API_GATEWAY under `npm start`, as the SDKs read it.
const apiGateway = new ApiGatewayControl(apiGatewayTimeouts);

export interface Propagation {
  /** Whether API Gateway was told to forget every cached authorizer decision of the stage. */
  authorizerCacheFlushed: boolean;
  /** The longest any caller may still see the old state (0: the next call sees the change). */
  worstCaseSeconds: number;
}

/**
 * After a change the authorizer decides on (a key revoked or rotated, a tenant suspended, deleted or
 * erased): the authorizer reads keys and profiles fresh on every run, so once its cache is flushed the
 * next call is refused. A failed flush is reported, not thrown (the change is stored): then API Gateway's
 * cached Allow lasts at most authorizerCacheTtlSeconds.
 */
export async function propagateAccessChange(tenantId: string): Promise<Propagation> {
  forgetTenant(tenantId);
  const flushed = await flushAuthorizerCache();
  return {
    authorizerCacheFlushed: flushed,
    worstCaseSeconds: flushed ? 0 : config.authorizerCacheTtlSeconds,
  };
}

/**
 * After a change route handlers read from the tenant profile (tier, models, limits, regions, endpoints,
 * resume): this container forgets the tenant now, warm containers elsewhere within tenantCacheTtlSeconds.
 * `flush` also renews authorizer decisions that carry the old state (the tier, a cached Deny).
 */
export async function propagateProfileChange(tenantId: string, flush: boolean): Promise<Propagation> {
  forgetTenant(tenantId);
  const flushed = flush ? await flushAuthorizerCache() : false;
  return { authorizerCacheFlushed: flushed, worstCaseSeconds: config.tenantCacheTtlSeconds };
}

async function flushAuthorizerCache(): Promise<boolean> {
  const restApiId = process.env[StackEnv.restApiId];
  const stageName = process.env[StackEnv.apiStage];
  if (!restApiId || !stageName) {
    logger.warn("authorizer cache not flushed: no API id or stage in the environment", {
      missing: [StackEnv.restApiId, StackEnv.apiStage].filter((name) => !process.env[name]),
    });
    return false;
  }
  try {
    await apiGateway.flushStageAuthorizersCache(restApiId, stageName);
    return true;
  } catch (err) {
    logger.warn("authorizer cache flush failed", { restApiId, stageName, error: (err as Error).name });
    return false;
  }
}

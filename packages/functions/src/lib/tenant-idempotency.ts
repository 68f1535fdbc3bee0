import type { MiddlewareObj } from "@middy/core";
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from "aws-lambda";
import { idempotency } from "./idempotency";
import type { TenantContext } from "./middleware";
import { tenantClients } from "./tenant-clients";

/** Idempotency for the tenant routes that honour the key, kept in the tenant's partition through its own session. */
export function tenantIdempotency(): MiddlewareObj<
  APIGatewayProxyEvent,
  APIGatewayProxyResult,
  Error,
  TenantContext
> {
  return idempotency({ tenantDynamo: (tenantId) => tenantClients(tenantId).dynamo });
}

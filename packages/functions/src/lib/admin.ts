/** What every admin handler shares: checked path parameters, the caller's identity, the audit log. */
import { AuditLog } from "@atrium/core/audit";
import { AtriumError, invalidRequest, notFound } from "@atrium/core/errors";
import { isKeyId, isTenantId } from "@atrium/core/ids";
import { TenantTable } from "@atrium/core/tables";
import type { Tenant } from "@atrium/core/tenant";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { documentClient, requireEnv, tenantStore } from "./clients";
import { bodyBytes, parseJsonBody } from "./http";

export const auditLog = new AuditLog(documentClient, requireEnv(TenantTable.env));

export function tenantIdParam(event: APIGatewayProxyEvent): string {
  const tenantId = event.pathParameters?.tenantId ?? "";
  if (!isTenantId(tenantId)) {
    throw invalidRequest("invalid_tenant_id", `tenantId: '${clip(tenantId)}' is not a tenant id`, "tenantId");
  }
  return tenantId;
}

export function keyIdParam(event: APIGatewayProxyEvent): string {
  const keyId = event.pathParameters?.keyId ?? "";
  if (!isKeyId(keyId))
    throw invalidRequest("invalid_key_id", `keyId: '${clip(keyId)}' is not a key id`, "keyId");
  return keyId;
}

/** The tenant and the revision a conditional write must find unchanged; 404 when there is none. */
export async function requireTenant(tenantId: string): Promise<{ tenant: Tenant; version: number }> {
  const found = await tenantStore.getVersioned(tenantId);
  if (!found) throw notFound("tenant_not_found", `No tenant ${tenantId}`, "tenantId");
  return found;
}

/**
 * Who made the call, for the audit trail: the IAM principal API Gateway verified (SigV4), or under
 * `npm start` the gateway emulator's named fake of it. No identity, no admin action.
 */
export function actorOf(event: APIGatewayProxyEvent): string {
  const actor = event.requestContext?.identity?.userArn;
  if (!actor) {
    throw new AtriumError(403, "permission_error", "no_caller_identity", "The caller's identity is unknown.");
  }
  return actor.slice(0, 2048);
}

/** `?name=value` of the query string. */
export const queryParam = (event: APIGatewayProxyEvent, name: string): string | undefined =>
  event.queryStringParameters?.[name] ?? undefined;

/** Echoed input is cut short, so a 400 cannot be made to carry a large payload back. */
const clip = (text: string) => (text.length > 64 ? `${text.slice(0, 64)}…` : text);

/** Calls that take no input refuse a body rather than ignore it: a script sending one expects it read. */
export function noBody(event: APIGatewayProxyEvent): void {
  const text = bodyBytes(event).toString("utf8").trim();
  if (text !== "" && text !== "{}") {
    throw invalidRequest("unexpected_body", "This call takes no request body.");
  }
}

/** A JSON body that may be absent (then `{}`). */
export const optionalJsonBody = (event: APIGatewayProxyEvent): unknown =>
  bodyBytes(event).toString("utf8").trim() === "" ? {} : parseJsonBody(event);

/** What every admin handler shares: the tenant table, checked path parameters, the caller's identity. */
import { AtriumError, invalidRequest } from "@atrium/core/errors";
import { isKeyId, isTenantId } from "@atrium/core/ids";
import type { Table } from "@atrium/core/transaction";
import type { APIGatewayProxyEvent } from "aws-lambda";
import { tenantTable } from "./clients";
import { bodyBytes } from "./http";

/** The tenant table the admin use-cases (packages/core/src/admin) read and write. */
export const adminTable: Table = tenantTable;

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

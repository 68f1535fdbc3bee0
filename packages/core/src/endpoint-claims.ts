/**
 * Dedicated-endpoint claims (`ENDPOINT#<name>`): one tenant per dedicated endpoint. A claim is written
 * and released only in the same transaction as the profile's `endpoints` entry, so the profile lists
 * exactly the claims its tenant holds.
 */
import { conflict } from "./errors";
import { endpointKey } from "./keys";
import { RETURN_OLD, type Table, type Write } from "./transaction";

const ENDPOINT_SK = "ENDPOINT";

export interface EndpointClaim {
  tenantId: string;
  model: string;
}

export async function endpointClaim(table: Table, endpointName: string): Promise<EndpointClaim | undefined> {
  const { Item } = await table.db.get({
    TableName: table.name,
    Key: { pk: endpointKey(endpointName), sk: ENDPOINT_SK },
    ConsistentRead: true,
  });
  return Item ? { tenantId: String(Item.tenantId), model: String(Item.model) } : undefined;
}

/** Claims an endpoint for a tenant's model: refused (409) when another tenant or model holds it. */
export function claimPut(table: Table, tenantId: string, model: string, endpointName: string): Write {
  return {
    action: {
      Put: {
        TableName: table.name,
        Item: { pk: endpointKey(endpointName), sk: ENDPOINT_SK, type: "endpointClaim", tenantId, model },
        ConditionExpression: "attribute_not_exists(#pk) OR (#tenantId = :tenantId AND #model = :model)",
        ExpressionAttributeNames: { "#pk": "pk", "#tenantId": "tenantId", "#model": "model" },
        ExpressionAttributeValues: { ":tenantId": tenantId, ":model": model },
        ...RETURN_OLD,
      },
    },
    refused: () =>
      conflict(
        "endpoint_already_dedicated",
        `endpointName: ${endpointName} is already dedicated to another tenant or model`,
        "endpointName",
      ),
  };
}

/** Releases a tenant's claim; a claim that is already gone is fine, another tenant's is never touched. */
export function claimRelease(table: Table, tenantId: string, endpointName: string): Write {
  return {
    action: {
      Delete: {
        TableName: table.name,
        Key: { pk: endpointKey(endpointName), sk: ENDPOINT_SK },
        ConditionExpression: "attribute_not_exists(#pk) OR #tenantId = :tenantId",
        ExpressionAttributeNames: { "#pk": "pk", "#tenantId": "tenantId" },
        ExpressionAttributeValues: { ":tenantId": tenantId },
      },
    },
    refused: () =>
      conflict(
        "endpoint_claimed_elsewhere",
        `endpointName: ${endpointName} is held by another tenant; nothing was changed`,
        "endpointName",
      ),
  };
}

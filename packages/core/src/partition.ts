import type { DynamoClient } from "./dynamodb/client";

/**
 * Deletes every item of one partition (`pk`), page by page, except those `keep` spares; returns how
 * many went. Read consistently, so an item written just before is not missed. Item by item, so an
 * erase that stops half-way can be run again from where it stopped.
 */
export async function deletePartition(
  db: DynamoClient,
  tableName: string,
  pk: string,
  keep: (item: Record<string, unknown>) => boolean = () => false,
): Promise<number> {
  let deleted = 0;
  const pages = db.queryPages({
    TableName: tableName,
    KeyConditionExpression: "#pk = :pk",
    ExpressionAttributeValues: { ":pk": pk },
    ExpressionAttributeNames: { "#pk": "pk" },
    ConsistentRead: true,
  });
  for await (const page of pages) {
    for (const item of page.Items ?? []) {
      if (keep(item)) continue;
      await db.delete({ TableName: tableName, Key: { pk, sk: item.sk } });
      deleted += 1;
    }
  }
  return deleted;
}

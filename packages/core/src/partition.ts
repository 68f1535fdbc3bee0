import { DeleteCommand, type DynamoDBDocumentClient, paginateQuery } from "@aws-sdk/lib-dynamodb";

/**
 * Deletes every item of one partition (`pk`), page by page, except those `keep` spares; returns how
 * many went. Items are deleted one by one: dynalite has no transactions and erase must be resumable.
 */
export async function deletePartition(
  db: DynamoDBDocumentClient,
  tableName: string,
  pk: string,
  keep: (item: Record<string, unknown>) => boolean = () => false,
): Promise<number> {
  let deleted = 0;
  const pages = paginateQuery(
    { client: db },
    {
      TableName: tableName,
      KeyConditionExpression: "#pk = :pk",
      ExpressionAttributeValues: { ":pk": pk },
      ExpressionAttributeNames: { "#pk": "pk" },
      ConsistentRead: true,
    },
  );
  for await (const page of pages) {
    for (const item of page.Items ?? []) {
      if (keep(item)) continue;
      await db.send(new DeleteCommand({ TableName: tableName, Key: { pk, sk: item.sk } }));
      deleted += 1;
    }
  }
  return deleted;
}

import {
  EndpointTable,
  IdempotencyTable,
  LimiterTable,
  type TableShape,
  TenantTable,
  UsageTable,
} from "@atrium/core/tables";
import { RemovalPolicy } from "aws-cdk-lib";
import { TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { type StackContext, Table } from "sst/constructs";
import { loadStageConfig } from "./config";
import { suppressPlatformFindings } from "./nag";

export function Data({ stack, app }: StackContext) {
  const { protect } = loadStageConfig(app.stage);
  suppressPlatformFindings(stack);

  /** One on-demand table from its shared shape (packages/core/src/tables.ts). */
  const table = (id: string, shape: TableShape) => {
    const { partitionKey, sortKey, indexes, timeToLiveAttribute } = shape;
    const keys = [
      partitionKey,
      ...(sortKey ? [sortKey] : []),
      ...Object.values(indexes).flatMap((i) => [i.partitionKey, i.sortKey]),
    ];
    return new Table(stack, id, {
      fields: Object.fromEntries(keys.map((name) => [name, "string" as const])),
      primaryIndex: sortKey ? { partitionKey, sortKey } : { partitionKey },
      globalIndexes: Object.fromEntries(
        Object.entries(indexes).map(([name, index]) => [
          name,
          { partitionKey: index.partitionKey, sortKey: index.sortKey },
        ]),
      ),
      ...(timeToLiveAttribute ? { timeToLiveAttribute } : {}),
      cdk: {
        table: {
          // SST sets the deprecated `pointInTimeRecovery` flag, which CDK refuses next to the specification.
          pointInTimeRecovery: undefined,
          pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
          // AWS-managed KMS key: IAM stays the one access-control plane for tenant isolation (docs/adr/0006).
          encryption: TableEncryption.AWS_MANAGED,
          // Protected stages keep their data through `sst remove`; the others leave nothing behind.
          deletionProtection: protect,
          removalPolicy: protect ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
        },
      },
    });
  };

  const tenants = table("Tenants", TenantTable);
  const limiter = table("Limiter", LimiterTable);
  // Replies kept for Idempotency-Key replays, sealed; they expire through TTL after 24 h.
  const idempotency = table("Idempotency", IdempotencyTable);
  // The usage ledger (docs/adr/0010): tenant, day and model counters, expired by TTL after the retention.
  const usage = table("Usage", UsageTable);
  // Endpoints' shared state (docs/adr/0012): whether each is contended and which tenants use it.
  const endpoints = table("Endpoints", EndpointTable);
  return { tenants, limiter, idempotency, usage, endpoints };
}

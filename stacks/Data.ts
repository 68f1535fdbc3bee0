import { TenantTable } from "@atrium/core/tables";
import { type StackContext, Table } from "sst/constructs";

const { partitionKey, sortKey, indexes } = TenantTable;
const keyAttributes = [
  partitionKey,
  sortKey,
  ...Object.values(indexes).flatMap((i) => [i.partitionKey, i.sortKey]),
];

export function Data({ stack }: StackContext) {
  const tenants = new Table(stack, "Tenants", {
    fields: Object.fromEntries(keyAttributes.map((name) => [name, "string" as const])),
    primaryIndex: { partitionKey, sortKey },
    globalIndexes: Object.fromEntries(
      Object.entries(indexes).map(([name, index]) => [
        name,
        { partitionKey: index.partitionKey, sortKey: index.sortKey },
      ]),
    ),
    cdk: {
      table: {
        // SST sets the deprecated `pointInTimeRecovery` flag, which CDK refuses next to the specification.
        pointInTimeRecovery: undefined,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      },
    },
  });
  return { tenants };
}

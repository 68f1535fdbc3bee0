import { readFileSync } from "node:fs";
import path from "node:path";
import { dedicatedEndpointPrefix, StageConfig } from "@atrium/core/config";
import { TENANT_ID_PATTERN } from "@atrium/core/ids";
import { tenantKey } from "@atrium/core/keys";
import {
  EndpointTable,
  IdempotencyTable,
  LimiterTable,
  type TableShape,
  TenantTable,
  UsageTable,
} from "@atrium/core/tables";
import {
  type ApiRoute,
  authorizer,
  binaryMediaTypes,
  type GatewayResponseType,
  gatewayResponseBody,
  gatewayResponses,
  routes,
} from "@atrium/functions/api";
import { idempotentRoutes } from "@atrium/functions/lib/idempotent-routes";
import { StackEnv, TENANT_TAG } from "@atrium/functions/lib/stack-env";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { erasingRoutes, reportingRoutes, routeKey } from "../../stacks/Api";
import { AUTHORIZER_FILE, forbiddenModules } from "../../stacks/bundle-limits";
import { runtimeConfig } from "../../stacks/config";
import { VARIANT } from "../../stacks/Inference";
import { reportSchedules, scheduledReportsHandler } from "../../stacks/Reporting";
import {
  actionsOf,
  allStatements,
  asList,
  functionFor,
  iamLike,
  methodsByRoute,
  type Props,
  render,
  resourceEntries,
  resources,
  roleOf,
  type Statement,
  statementsFor,
  statementsOfRole,
  synthForTest,
  type TestSynth,
} from "./support";

// Actions that have no resource to scope to: telemetry, and ECR's registry-wide login token.
const resourcelessActions = new Set([
  "xray:PutTraceSegments",
  "xray:PutTelemetryRecords",
  "cloudwatch:PutMetricData",
  "cloudwatch:GetMetricData",
  "ecr:GetAuthorizationToken",
]);
const writeActions = [
  "dynamodb:PutItem",
  "dynamodb:UpdateItem",
  "dynamodb:DeleteItem",
  "dynamodb:BatchWriteItem",
];
const SESSION_TENANT = `\${aws:PrincipalTag/${TENANT_TAG}}`;
const tenantIds = fc.stringMatching(TENANT_ID_PATTERN);

const isTenantRoute = (r: ApiRoute) => r.auth === "tenant";

/**
 * Every synthesis assertion for one stage; each stage's file synthesises once, in its own worker.
 * With `bundle`, every function is bundled as `sst deploy` bundles it, and the bundles are checked too.
 */
export function describeStage(stage: string, { bundle }: { bundle: boolean }) {
  describe(`stage ${stage}`, () => {
    let s: TestSynth;
    beforeAll(async () => {
      s = await synthForTest(stage, bundle);
    }, 180_000);
    afterAll(() => s?.cleanup());

    const tenantRoleId = () => {
      const [[id]] = resources(s.api, "AWS::IAM::Role").filter(([id]) =>
        id.startsWith("TenantAccessRole"),
      ) as [[string, Props]];
      return id;
    };
    const arn = (region: string, name: string) =>
      `arn:<AWS::Partition>:sagemaker:${region}:<AWS::AccountId>:endpoint/${name.toLowerCase()}`;

    it("takes the app name and region from sst.config.ts and config/<stage>.json, for every stack", () => {
      expect(s.project).toEqual({ name: "atrium", region: s.config.region });
      for (const stack of Object.values(s.stacks)) {
        expect(stack.region, stack.stackName).toBe(s.config.region);
        expect(stack.stackName).toMatch(new RegExp(`^${stage}-atrium-`));
      }
    });

    if (bundle) {
      it("bundles each app function into its code asset: an ES module that exports its handler", () => {
        const bundled: string[] = [];
        for (const template of s.templates) {
          for (const [id, fn] of resources(template, "AWS::Lambda::Function")) {
            const [file, exported] = (fn.Handler as string).split(".") as [string, string];
            // SST's own functions (index.handler) come with their code; the app's are built from packages/.
            if (!file.startsWith("packages/")) continue;
            const asset = path.join(s.outdir, `asset.${fn.Code.S3Key.replace(/\.zip$/, "")}`);
            const code = readFileSync(path.join(asset, `${file}.mjs`), "utf8");
            expect(code, id).toMatch(new RegExp(`export\\s*\\{[^}]*\\bas ${exported}\\b`));
            bundled.push(fn.Handler);
          }
        }
        expect(bundled.sort()).toEqual(
          [authorizer.handler, scheduledReportsHandler, ...routes.map((r) => r.handler)].sort(),
        );
      });

      it("keeps out of each bundle what its function does not run (docs/adr/0014-lambda-bundles.md)", () => {
        const files = [authorizer.handler, scheduledReportsHandler, ...routes.map((r) => r.handler)].map(
          (h) => h.replace(/\.[^./]+$/, ""),
        );
        for (const file of new Set(files)) {
          const metafile = s.metafiles[file];
          // The entry point is in its own metafile, so an empty or mismatched one cannot pass.
          expect(Object.keys(metafile?.inputs ?? {}), file).toContain(`${file}.ts`);
          expect(forbiddenModules(file, metafile as NonNullable<typeof metafile>), file).toEqual([]);
        }
        // DynamoDB through Atrium's own client (docs/adr/0016), not the SDK's, in every bundle.
        const authorizerInputs = Object.keys(s.metafiles[AUTHORIZER_FILE]?.inputs ?? {});
        expect(authorizerInputs).toContain("packages/core/src/dynamodb/client.ts");
        for (const file of new Set(files)) {
          const inputs = Object.keys(s.metafiles[file]?.inputs ?? {});
          expect(
            inputs.filter((i) => /dynamodb/.test(i) && i.includes("@aws-sdk")),
            file,
          ).toEqual([]);
        }
        expect(
          authorizerInputs.filter((i) => /limiter|admission|sagemaker|client-sts|reports/.test(i)),
        ).toEqual([]);
        // Model calls go through Atrium's own SageMaker Runtime client (docs/adr/0015), not the SDK's.
        const chatInputs = Object.keys(s.metafiles["packages/functions/src/chat"]?.inputs ?? {});
        expect(chatInputs).toContain("packages/functions/src/lib/sagemaker-runtime.ts");
        expect(chatInputs.filter((i) => i.includes("client-sagemaker-runtime"))).toEqual([]);
      });

      it("bundles Powertools Idempotency only into the files of the idempotent routes", () => {
        const fileOf = (handler: string) => handler.replace(/\.[^./]+$/, "");
        const idempotentFiles = new Set(
          routes.filter((r) => idempotentRoutes.has(routeKey(r))).map((r) => fileOf(r.handler)),
        );
        const files = new Set(
          [authorizer.handler, scheduledReportsHandler, ...routes.map((r) => r.handler)].map(fileOf),
        );
        const holding = [...files].filter((file) =>
          Object.keys(s.metafiles[file]?.inputs ?? {}).some((i) =>
            i.includes("node_modules/@aws-lambda-powertools/idempotency/"),
          ),
        );
        expect(idempotentFiles.size).toBeGreaterThan(0);
        expect(holding.sort()).toEqual([...idempotentFiles].sort());
      });
    }

    it("has no unsuppressed cdk-nag (AwsSolutions) finding in any stack", () => {
      expect(Object.keys(s.nagFindings).sort()).toEqual(
        Object.values(s.stacks)
          .map((x) => x.stackName)
          .sort(),
      );
      for (const [stack, findings] of Object.entries(s.nagFindings)) expect(findings, stack).toEqual([]);
    });

    it("gives every cdk-nag suppression a written reason", () => {
      const suppressions: Props[] = [];
      for (const template of s.templates) {
        const json = template.toJSON();
        suppressions.push(...(json.Metadata?.cdk_nag?.rules_to_suppress ?? []));
        for (const resource of Object.values(json.Resources) as Props[]) {
          suppressions.push(...(resource.Metadata?.cdk_nag?.rules_to_suppress ?? []));
        }
      }
      expect(suppressions.length).toBeGreaterThan(0);
      for (const rule of suppressions) {
        expect(rule.id).toMatch(/^AwsSolutions-/);
        // cdk-nag stores the reason as written; a sentence, not a placeholder.
        expect(rule.reason.length, rule.id).toBeGreaterThanOrEqual(60);
      }
    });

    describe("Data", () => {
      const tableCases: [string, TableShape][] = [
        ["TenantsTable", TenantTable],
        ["LimiterTable", LimiterTable],
        ["IdempotencyTable", IdempotencyTable],
        ["UsageTable", UsageTable],
        ["EndpointsTable", EndpointTable],
      ];
      it.each(tableCases)("creates %s from its shape (packages/core/src/tables.ts)", (prefix, shape) => {
        const { partitionKey, sortKey, indexes, timeToLiveAttribute } = shape;
        const [[, table]] = resources(s.data, "AWS::DynamoDB::Table").filter(([id]) =>
          id.startsWith(prefix),
        ) as [[string, Props]];
        expect(table.KeySchema).toEqual([
          { AttributeName: partitionKey, KeyType: "HASH" },
          ...(sortKey ? [{ AttributeName: sortKey, KeyType: "RANGE" }] : []),
        ]);
        const gsis = Object.entries(indexes).map(([name, index]) => ({
          IndexName: name,
          KeySchema: [
            { AttributeName: index.partitionKey, KeyType: "HASH" },
            { AttributeName: index.sortKey, KeyType: "RANGE" },
          ],
          Projection: { ProjectionType: "ALL" },
        }));
        expect(table.GlobalSecondaryIndexes ?? []).toEqual(gsis);
        const keys = [
          partitionKey,
          ...(sortKey ? [sortKey] : []),
          ...Object.values(indexes).flatMap((i) => [i.partitionKey, i.sortKey]),
        ];
        expect(table.AttributeDefinitions).toEqual(
          keys.map((k) => ({ AttributeName: k, AttributeType: "S" })),
        );
        expect(table.TimeToLiveSpecification).toEqual(
          timeToLiveAttribute ? { AttributeName: timeToLiveAttribute, Enabled: true } : undefined,
        );
        expect(table.BillingMode).toBe("PAY_PER_REQUEST");
      });

      it("encrypts every table with KMS, keeps point-in-time recovery, and protects them on protected stages", () => {
        const tables = resourceEntries(s.data, "AWS::DynamoDB::Table");
        expect(tables.map(([id]) => id.replace(/Table.*$/, "")).sort()).toEqual(
          tableCases.map(([prefix]) => prefix.replace(/Table$/, "")).sort(),
        );
        for (const [id, table] of tables) {
          const p = table.Properties;
          // SSEEnabled without a key: KMS with the AWS-managed key aws/dynamodb.
          expect(p.SSESpecification, id).toEqual({ SSEEnabled: true });
          expect(p.PointInTimeRecoverySpecification, id).toEqual({ PointInTimeRecoveryEnabled: true });
          expect(p.DeletionProtectionEnabled, id).toBe(s.config.protect);
          expect(table.DeletionPolicy, id).toBe(s.config.protect ? "Retain" : "Delete");
          expect(table.UpdateReplacePolicy, id).toBe(s.config.protect ? "Retain" : "Delete");
        }
      });
    });

    describe("Api", () => {
      it("deploys exactly one method per route, authorised as the route table says", () => {
        const methods = methodsByRoute(s.api);
        expect([...methods.keys()].sort()).toEqual(routes.map(routeKey).sort());
        const [[authorizerId]] = resources(s.api, "AWS::ApiGateway::Authorizer") as [[string, Props]];
        for (const route of routes) {
          const method = methods.get(routeKey(route)) as Props;
          const [fnId] = functionFor(s.api, route.handler);
          expect(JSON.stringify(method.Integration.Uri), routeKey(route)).toContain(`"${fnId}"`);
          if (isTenantRoute(route)) {
            expect(method.AuthorizationType, routeKey(route)).toBe("CUSTOM");
            expect(method.AuthorizerId).toEqual({ Ref: authorizerId });
          } else {
            expect(method.AuthorizationType, routeKey(route)).toBe("AWS_IAM");
            expect(method.AuthorizerId).toBeUndefined();
          }
        }
      });

      it("keys and caches the REQUEST authorizer on the Authorization header for the configured TTL", () => {
        s.api.resourceCountIs("AWS::ApiGateway::Authorizer", 1);
        const [[, auth]] = resources(s.api, "AWS::ApiGateway::Authorizer") as [[string, Props]];
        expect(auth.Type).toBe("REQUEST");
        expect(auth.IdentitySource).toBe("method.request.header.Authorization");
        expect(auth.AuthorizerResultTtlInSeconds).toBe(s.config.authorizerCacheTtlSeconds);
        expect(auth.AuthorizerResultTtlInSeconds).toBeGreaterThan(0);
        const [fnId] = functionFor(s.api, authorizer.handler);
        expect(JSON.stringify(auth.AuthorizerUri)).toContain(`"${fnId}"`);
      });

      it("streams the model routes: STREAM transfer mode on Lambda's response-streaming invocation URI", () => {
        const methods = methodsByRoute(s.api);
        expect(routes.filter((r) => r.stream).map(routeKey)).toEqual([
          "POST /v1/chat/completions",
          "POST /v1/models/{model}/invocations",
          "POST /v1/models/{model}/invocations-response-stream",
        ]);
        for (const route of routes) {
          const integration = (methods.get(routeKey(route)) as Props).Integration;
          const [fnId] = functionFor(s.api, route.handler);
          expect(integration.Type, routeKey(route)).toBe("AWS_PROXY");
          if (route.stream) {
            expect(integration.ResponseTransferMode).toBe("STREAM");
            expect(render(integration.Uri)).toBe(
              `arn:<AWS::Partition>:apigateway:${s.config.region}:lambda:path/2021-11-15/functions/<GetAtt:${fnId}.Arn>/response-streaming-invocations`,
            );
          } else {
            expect(integration.ResponseTransferMode, routeKey(route)).toBeUndefined();
            expect(render(integration.Uri), routeKey(route)).toMatch(
              new RegExp(`:lambda:path/2015-03-31/functions/<GetAtt:${fnId}\\.Arn>/invocations$`),
            );
          }
        }
      });

      it("declares the binary media types on a regional REST API", () => {
        s.api.resourceCountIs("AWS::ApiGateway::RestApi", 1);
        s.api.hasResourceProperties("AWS::ApiGateway::RestApi", {
          BinaryMediaTypes: [...binaryMediaTypes],
          EndpointConfiguration: { Types: ["REGIONAL"] },
        });
      });

      it("customises every gateway response with its status, OpenAI-shaped body and request id", () => {
        const deployed = new Map(
          resources(s.api, "AWS::ApiGateway::GatewayResponse").map(([, p]) => [p.ResponseType, p]),
        );
        expect([...deployed.keys()].sort()).toEqual(Object.keys(gatewayResponses).sort());
        for (const [type, response] of Object.entries(gatewayResponses)) {
          const p = deployed.get(type) as Props;
          const keepsOwnStatus = (["DEFAULT_4XX", "DEFAULT_5XX"] as GatewayResponseType[]).includes(
            type as GatewayResponseType,
          );
          expect(p.StatusCode, type).toBe(keepsOwnStatus ? undefined : String(response.status));
          expect(p.ResponseTemplates, type).toEqual({ "application/json": gatewayResponseBody(response) });
          expect(p.ResponseParameters, type).toEqual({
            "gatewayresponse.header.x-request-id": "context.requestId",
          });
        }
        // API Gateway's default for a failed authorizer is 500; a DynamoDB outage must read as retryable.
        expect((deployed.get("AUTHORIZER_FAILURE") as Props).StatusCode).toBe("503");
      });

      it("writes JSON access logs with the authorizer's tenant id and streaming times to a log group kept as long as the stage's data", () => {
        const [[, stageProps]] = resources(s.api, "AWS::ApiGateway::Stage") as [[string, Props]];
        expect(stageProps.StageName).toBe(stage);
        const format = JSON.parse(stageProps.AccessLogSetting.Format);
        expect(format.tenantId).toBe("$context.authorizer.tenantId");
        expect(format.requestId).toBe("$context.requestId");
        expect(format.status).toBe("$context.status");
        // A streamed call's time to first token, as API Gateway measures it.
        expect(format).toMatchObject({
          responseTransferMode: "$context.integration.responseTransferMode",
          timeToAllHeaders: "$context.integration.timeToAllHeaders",
          timeToFirstContent: "$context.integration.timeToFirstContent",
        });
        const [[logGroupId, logGroup]] = resourceEntries(s.api, "AWS::Logs::LogGroup") as [[string, Props]];
        expect(stageProps.AccessLogSetting.DestinationArn).toEqual({ "Fn::GetAtt": [logGroupId, "Arn"] });
        expect(logGroup.Properties.RetentionInDays).toBe(s.config.protect ? 365 : 30);
        expect(logGroup.DeletionPolicy).toBe(s.config.protect ? "Retain" : "Delete");
      });

      it("throttles the stage as configured and logs errors, never bodies, for every method", () => {
        const [[, stageProps]] = resources(s.api, "AWS::ApiGateway::Stage") as [[string, Props]];
        expect(stageProps.MethodSettings).toEqual([
          {
            HttpMethod: "*",
            ResourcePath: "/*",
            ThrottlingRateLimit: s.config.throttling.rateLimit,
            ThrottlingBurstLimit: s.config.throttling.burstLimit,
            LoggingLevel: "ERROR",
            DataTraceEnabled: false,
          },
        ]);
        expect(stageProps.TracingEnabled).toBe(true);
        // Execution logging needs the account's API Gateway logging role; it outlives the stage.
        const [[, account]] = resourceEntries(s.api, "AWS::ApiGateway::Account") as [[string, Props]];
        const roleId = account.Properties.CloudWatchRoleArn["Fn::GetAtt"][0];
        expect(s.api.toJSON().Resources[roleId].DeletionPolicy).toBe("Retain");
      });

      it("runs every function on nodejs22.x, and the app's functions on arm64 with tracing and their own timeout", () => {
        for (const template of s.templates) {
          for (const [id, fn] of resources(template, "AWS::Lambda::Function")) {
            expect(fn.Runtime, id).toBe("nodejs22.x");
          }
        }
        for (const handler of [authorizer.handler, ...routes.map((r) => r.handler)]) {
          const [, fn] = functionFor(s.api, handler);
          expect(fn.Architectures, handler).toEqual(["arm64"]);
          expect(fn.TracingConfig, handler).toEqual({ Mode: "Active" });
        }
        // Under the integration's timeout (29 s, 15 minutes when it streams), so nothing is charged
        // after its 504 (docs/adr/0007-timeouts.md); a streamed route's is Lambda's longest, 900 s,
        // but raw invocations', whose one body streams only to settle after it, a buffered call's 27 s.
        expect(functionFor(s.api, authorizer.handler)[1].Timeout).toBe(authorizer.timeoutSeconds);
        const methods = methodsByRoute(s.api);
        for (const route of routes) {
          const [, fn] = functionFor(s.api, route.handler);
          const integration = (methods.get(routeKey(route)) as Props).Integration;
          expect(fn.Timeout, routeKey(route)).toBe(route.timeoutSeconds);
          if (route.stream) {
            expect(integration.TimeoutInMillis, routeKey(route)).toBe(900_000);
            const oneBody = routeKey(route) === "POST /v1/models/{model}/invocations";
            expect(fn.Timeout, routeKey(route)).toBe(oneBody ? 27 : 900);
          } else {
            expect(integration.TimeoutInMillis ?? 29_000, routeKey(route)).toBe(29_000);
            expect(fn.Timeout, routeKey(route)).toBeLessThan(29);
          }
        }
      });

      it("gives every function the tables, the stage config without deploy recipes, and Powertools settings", () => {
        const expected = runtimeConfig(s.config);
        expect(JSON.stringify(expected)).not.toContain('"create"');
        for (const handler of [authorizer.handler, ...routes.map((r) => r.handler)]) {
          const [, fn] = functionFor(s.api, handler);
          const env = fn.Environment.Variables;
          expect(render(env[TenantTable.env]), handler).toMatch(/^<Import:.*TenantsTable/);
          expect(render(env[LimiterTable.env]), handler).toMatch(/^<Import:.*LimiterTable/);
          expect(render(env[IdempotencyTable.env]), handler).toMatch(/^<Import:.*IdempotencyTable/);
          expect(render(env[UsageTable.env]), handler).toMatch(/^<Import:.*UsageTable/);
          const config = JSON.parse(env.ATRIUM_STAGE_CONFIG);
          expect(config, handler).toEqual(expected);
          expect(StageConfig.parse(config), handler).toEqual(expected);
          expect(env.POWERTOOLS_SERVICE_NAME).toBe("atrium");
          expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe("Atrium");
          // Lambda refuses environments over 4 KB; references resolve to names and ARNs of < 200 characters.
          const size = Object.entries(env).reduce(
            (sum, [k, v]) => sum + k.length + (typeof v === "string" ? v.length : 200),
            0,
          );
          expect(size, handler).toBeLessThan(4096);
        }
      });

      it("tells the /v1 functions the tenant role, and the admin functions the REST API and stage to flush", () => {
        const roleRef = { "Fn::GetAtt": [tenantRoleId(), "Arn"] };
        const [[restApiId]] = resources(s.api, "AWS::ApiGateway::RestApi") as [[string, Props]];
        for (const route of routes) {
          const env = functionFor(s.api, route.handler)[1].Environment.Variables;
          if (isTenantRoute(route)) {
            expect(env[StackEnv.tenantRoleArn], routeKey(route)).toEqual(roleRef);
            expect(env[StackEnv.restApiId], routeKey(route)).toBeUndefined();
          } else {
            expect(env[StackEnv.tenantRoleArn], routeKey(route)).toBeUndefined();
            expect(env[StackEnv.restApiId], routeKey(route)).toEqual({ Ref: restApiId });
            expect(env[StackEnv.apiStage], routeKey(route)).toBe(stage);
            expect(env[StackEnv.dedicatedEndpointPrefix], routeKey(route)).toBe(`atrium-${stage}-`);
          }
        }
        const env = functionFor(s.api, authorizer.handler)[1].Environment.Variables;
        expect(env[StackEnv.tenantRoleArn]).toBeUndefined();
      });

      it("deploys after the Data and Inference stacks", () => {
        const dependencies = s.stacks.api.dependencies.map((d) => d.stackName).sort();
        expect(dependencies).toEqual([s.stacks.data.stackName, s.stacks.inference.stackName].sort());
      });

      it("outputs the API URL and the tenant access role", () => {
        s.api.hasOutput("ApiUrl", {});
        s.api.hasOutput("TenantAccessRoleArn", { Value: { "Fn::GetAtt": [tenantRoleId(), "Arn"] } });
      });
    });

    describe("least privilege", () => {
      it("never grants a data action on Resource '*'", () => {
        for (const template of s.templates) {
          for (const statement of allStatements(template)) {
            if (!asList(statement.Resource).includes("*")) continue;
            for (const action of asList(statement.Action))
              expect(resourcelessActions, action).toContain(action);
          }
        }
      });

      it("lets the authorizer only GetItem key items and tenant profiles, and UpdateItem key items (last use)", () => {
        const statements = statementsFor(s.api, functionFor(s.api, authorizer.handler)[1]).filter(
          (st) => !asList(st.Action).every((a) => a.startsWith("xray:")),
        );
        expect(statements).toEqual([
          {
            Action: "dynamodb:GetItem",
            Effect: "Allow",
            Resource: expect.objectContaining({
              "Fn::ImportValue": expect.stringMatching(/TenantsTable.*Arn/),
            }),
            Condition: {
              "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["KEY#*", "TENANT#*"] },
              Null: { "dynamodb:LeadingKeys": "false" },
            },
          },
          {
            Action: "dynamodb:UpdateItem",
            Effect: "Allow",
            Resource: expect.objectContaining({
              "Fn::ImportValue": expect.stringMatching(/TenantsTable.*Arn/),
            }),
            Condition: {
              "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["KEY#*"] },
              Null: { "dynamodb:LeadingKeys": "false" },
            },
          },
        ]);
      });

      it("lets /v1 functions read tenant profiles, keep endpoints' fair-share state and assume the tenant role, and nothing else", () => {
        for (const route of routes.filter(isTenantRoute)) {
          const statements = statementsFor(s.api, functionFor(s.api, route.handler)[1]);
          const actions = actionsOf(statements);
          expect(
            actions.filter((a) => a.startsWith("sagemaker:")),
            routeKey(route),
          ).toEqual([]);
          const dynamo = statements.filter((st) => actionsOf([st]).some((a) => a.startsWith("dynamodb:")));
          expect(dynamo, routeKey(route)).toEqual([
            expect.objectContaining({
              Action: "dynamodb:GetItem",
              Resource: { "Fn::ImportValue": expect.stringMatching(/GetAttTenantsTable/) },
              Condition: expect.objectContaining({
                "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*"] },
              }),
            }),
            // Their only write: an endpoint's contention mark and active tenants (docs/adr/0012).
            expect.objectContaining({
              Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
              Resource: { "Fn::ImportValue": expect.stringMatching(/GetAttEndpointsTable/) },
              Condition: expect.objectContaining({
                "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["ENDPOINT#*"] },
              }),
            }),
          ]);
          expect(
            dynamo.filter((st) => actionsOf([st]).some((a) => writeActions.includes(a))),
            routeKey(route),
          ).toHaveLength(1);
          const sts = statements.filter((st) => actionsOf([st]).some((a) => a.startsWith("sts:")));
          expect(sts, routeKey(route)).toEqual([
            {
              Action: ["sts:AssumeRole", "sts:TagSession"],
              Effect: "Allow",
              Resource: { "Fn::GetAtt": [tenantRoleId(), "Arn"] },
            },
          ]);
        }
      });

      it("lets admin functions manage tenant items (no scans), erase limiter and usage items, flush this stage's authorizer cache", () => {
        for (const key of [...erasingRoutes, ...reportingRoutes]) expect(routes.map(routeKey)).toContain(key);
        const [[restApiId]] = resources(s.api, "AWS::ApiGateway::RestApi") as [[string, Props]];
        for (const route of routes.filter((r) => !isTenantRoute(r))) {
          const statements = statementsFor(s.api, functionFor(s.api, route.handler)[1]);
          const actions = actionsOf(statements);
          expect(actions, routeKey(route)).toEqual(
            expect.arrayContaining(["dynamodb:GetItem", "dynamodb:PutItem"]),
          );
          expect(
            actions.filter((a) => /^(sagemaker|sts):|dynamodb:Scan/.test(a)),
            routeKey(route),
          ).toEqual([]);
          // Reports read CloudWatch (latency, reconciliation); no other admin route does.
          expect(actions.includes("cloudwatch:GetMetricData"), routeKey(route)).toBe(
            reportingRoutes.has(routeKey(route)),
          );
          for (const st of statements.filter((x) => actionsOf([x]).some((a) => a.startsWith("dynamodb:")))) {
            for (const r of asList(st.Resource).map(render)) expect(r, routeKey(route)).not.toContain("*");
          }
          // Only erasure and reports reach the limiter and usage tables: erasure to query and delete
          // tenants' items, reports to query the ledger and read limiter items.
          const tenantItems = expect.objectContaining({
            "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*"] },
          });
          const reportReads = { LimiterTable: "dynamodb:GetItem", UsageTable: "dynamodb:Query" };
          for (const table of ["LimiterTable", "UsageTable"] as const) {
            const reaching = statements.filter((st) => render(st.Resource).includes(table));
            const erasing = erasingRoutes.has(routeKey(route));
            const reporting = reportingRoutes.has(routeKey(route));
            expect(reaching, `${routeKey(route)} ${table}`).toEqual([
              ...(erasing
                ? [
                    expect.objectContaining({
                      Action: ["dynamodb:Query", "dynamodb:DeleteItem"],
                      Condition: tenantItems,
                    }),
                  ]
                : []),
              ...(reporting
                ? [expect.objectContaining({ Action: reportReads[table], Condition: tenantItems })]
                : []),
            ]);
          }
          // The erase's statement covers every other table with tenant partitions, and nothing more.
          if (erasingRoutes.has(routeKey(route))) {
            const erase = statements.find((st) => render(st.Resource).includes("LimiterTable")) as Statement;
            expect(asList(erase.Resource).map(render).sort(), routeKey(route)).toEqual([
              expect.stringMatching(/^<Import:.*IdempotencyTable.*Arn/),
              expect.stringMatching(/^<Import:.*LimiterTable.*Arn/),
              expect.stringMatching(/^<Import:.*UsageTable.*Arn/),
            ]);
          }
          // Idempotent creates keep their replies (ADMIN# or the tenant's partition); erasure deletes the tenant's.
          const replies = statements.filter((st) => render(st.Resource).includes("IdempotencyTable"));
          expect(replies, routeKey(route)).toEqual([
            ...(erasingRoutes.has(routeKey(route))
              ? [
                  expect.objectContaining({
                    Action: ["dynamodb:Query", "dynamodb:DeleteItem"],
                    Resource: expect.arrayContaining([expect.anything(), expect.anything()]),
                  }),
                ]
              : []),
            ...(idempotentRoutes.get(routeKey(route)) === "admin"
              ? [
                  expect.objectContaining({
                    Action: [
                      "dynamodb:GetItem",
                      "dynamodb:PutItem",
                      "dynamodb:UpdateItem",
                      "dynamodb:DeleteItem",
                    ],
                    Condition: expect.objectContaining({
                      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*", "ADMIN#"] },
                    }),
                  }),
                ]
              : []),
          ]);
          const flush = statements.filter((st) => actionsOf([st]).includes("apigateway:DELETE"));
          expect(
            flush.map((st) => render(st.Resource)),
            routeKey(route),
          ).toEqual([
            `arn:<AWS::Partition>:apigateway:${s.config.region}::/restapis/<Ref:${restApiId}>/stages/${stage}/cache/authorizers`,
          ]);
        }
      });
    });

    describe("tenant isolation in IAM", () => {
      const tenantPolicy = () => statementsOfRole(s.api, tenantRoleId());

      it("trusts exactly the /v1 functions' roles, and only for sessions tagged with a TenantId", () => {
        const role = s.api.toJSON().Resources[tenantRoleId()].Properties;
        const trust: Statement[] = role.AssumeRolePolicyDocument.Statement;
        const expectedRoles = routes
          .filter(isTenantRoute)
          .map((r) => roleOf(functionFor(s.api, r.handler)[1]))
          .sort();
        expect(trust.map((st) => st.Principal?.AWS["Fn::GetAtt"][0]).sort()).toEqual(expectedRoles);
        for (const st of trust) {
          expect(st.Effect).toBe("Allow");
          expect(st.Action).toEqual(["sts:AssumeRole", "sts:TagSession"]);
          expect(st.Condition).toEqual({
            Null: { [`aws:RequestTag/${TENANT_TAG}`]: "false" },
            "ForAllValues:StringEquals": { "aws:TagKeys": [TENANT_TAG] },
          });
        }
        expect(role.MaxSessionDuration).toBe(3600);
      });

      it("holds DynamoDB to the session tenant's items, with the delimiter after the id", () => {
        const dynamo = tenantPolicy().filter((st) => actionsOf([st]).some((a) => a.startsWith("dynamodb:")));
        expect(dynamo.map((st) => render(st.Resource)).sort()).toEqual([
          expect.stringMatching(/^<Import:.*IdempotencyTable.*Arn/),
          expect.stringMatching(/^<Import:.*LimiterTable.*Arn/),
          expect.stringMatching(/^<Import:.*TenantsTable.*Arn/),
          expect.stringMatching(/^<Import:.*UsageTable.*Arn/),
        ]);
        for (const st of dynamo) {
          // Only idempotency records (the tenant's own, kept 24 h) are put and deleted as the tenant.
          const replies = render(st.Resource).includes("IdempotencyTable");
          expect(
            actionsOf([st]).filter(
              (a) =>
                writeActions.includes(a) &&
                a !== "dynamodb:UpdateItem" &&
                !(replies && a !== "dynamodb:BatchWriteItem"),
            ),
          ).toEqual([]);
          expect(st.Condition).toEqual({
            "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`TENANT#${SESSION_TENANT}#*`] },
            Null: { "dynamodb:LeadingKeys": "false" },
          });
        }
        const pattern: string = (dynamo[0] as Statement).Condition?.["ForAllValues:StringLike"]?.[
          "dynamodb:LeadingKeys"
        ]?.[0];
        // `t1` never reaches `t10`'s items, for any two tenant ids.
        expect(iamLike(pattern.replace(SESSION_TENANT, "t1"), tenantKey("t10"))).toBe(false);
        fc.assert(
          fc.property(tenantIds, tenantIds, fc.string(), (a, b, rest) => {
            const allowed = pattern.replace(SESSION_TENANT, a);
            return iamLike(allowed, `${tenantKey(b)}${rest}`) === (a === b);
          }),
        );
      });

      it("lets a tenant only add to and query its own usage ledger items: no get, put, delete or scan", () => {
        const usage = tenantPolicy().filter((st) => render(st.Resource).includes("UsageTable"));
        expect(usage).toEqual([
          {
            Sid: "OwnUsageLedger",
            Effect: "Allow",
            Action: ["dynamodb:Query", "dynamodb:UpdateItem"],
            Resource: expect.objectContaining({
              "Fn::ImportValue": expect.stringMatching(/UsageTable.*Arn/),
            }),
            Condition: {
              "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`TENANT#${SESSION_TENANT}#*`] },
              Null: { "dynamodb:LeadingKeys": "false" },
            },
          },
        ]);
      });

      it("invokes only this stage's endpoints: the configured ones and the dedicated-name prefix, never endpoint/*", () => {
        const invoke = tenantPolicy().filter((st) => actionsOf([st]).includes("sagemaker:InvokeEndpoint"));
        const configured = [
          ...s.config.sharedEndpoints.map((e) => arn(e.region ?? s.config.region, e.endpointName)),
          ...s.config.dedicatedEndpoints.map((e) => arn(e.region ?? s.config.region, e.endpointName)),
        ];
        const regions = new Set([
          s.config.region,
          ...s.config.modelRegions,
          ...[...s.config.sharedEndpoints, ...s.config.dedicatedEndpoints].map(
            (e) => e.region ?? s.config.region,
          ),
        ]);
        const patterns = [...regions].map((r) => arn(r, `${dedicatedEndpointPrefix(stage)}*`));
        const [plain, adapters] = ["Null", "StringLike"].map((kind) =>
          invoke.find((st) => st.Condition?.[kind]?.["sagemaker:TargetModel"] !== undefined),
        ) as [Statement, Statement];
        for (const st of [plain, adapters]) {
          expect(asList(st.Resource).map(render).sort()).toEqual([...configured, ...patterns].sort());
        }
        for (const st of invoke) {
          for (const r of asList(st.Resource).map(render)) {
            expect(r).not.toMatch(/endpoint\/\*$/);
            if (r.endsWith("*")) expect(r).toMatch(new RegExp(`:endpoint/atrium-${stage}-\\*$`));
          }
        }
        expect(plain.Condition).toEqual({ Null: { "sagemaker:TargetModel": "true" } });
      });

      it("lets a tenant load only its own adapters (`<tenantId>/...`) on multi-model endpoints", () => {
        const adapters = tenantPolicy().find(
          (st) => st.Condition?.StringLike?.["sagemaker:TargetModel"] !== undefined,
        ) as Statement;
        const pattern: string = adapters.Condition?.StringLike["sagemaker:TargetModel"];
        expect(pattern).toBe(`${SESSION_TENANT}/*`);
        expect(iamLike(pattern.replace(SESSION_TENANT, "t1"), "t10/adapter.tar.gz")).toBe(false);
        expect(iamLike(pattern.replace(SESSION_TENANT, "t1"), "t1/adapter.tar.gz")).toBe(true);
        fc.assert(
          fc.property(tenantIds, tenantIds, fc.string(), (a, b, rest) => {
            return iamLike(pattern.replace(SESSION_TENANT, a), `${b}/${rest}`) === (a === b);
          }),
        );
        // Catalogue artifacts of shared endpoints are allowed by exact name, on their endpoint only.
        const catalogue = tenantPolicy().filter(
          (st) => st.Condition?.StringEquals?.["sagemaker:TargetModel"],
        );
        expect(
          catalogue.map((st) => [render(st.Resource), st.Condition?.StringEquals["sagemaker:TargetModel"]]),
        ).toEqual(
          s.config.sharedEndpoints
            .filter((e) => e.targetModel)
            .map((e) => [arn(e.region ?? s.config.region, e.endpointName), e.targetModel]),
        );
      });
    });

    describe("Inference", () => {
      const configured = () => [
        ...s.config.sharedEndpoints.map((e) => ({ ...e, tenantId: undefined })),
        ...s.config.dedicatedEndpoints,
      ];

      it("creates model, endpoint config, endpoint and invocation autoscaling for each endpoint with `create`", () => {
        const created = configured().filter((e) => e.create);
        expect(created.length).toBeGreaterThan(0);
        for (const type of [
          "AWS::SageMaker::Model",
          "AWS::SageMaker::EndpointConfig",
          "AWS::SageMaker::Endpoint",
          "AWS::ApplicationAutoScaling::ScalableTarget",
          "AWS::ApplicationAutoScaling::ScalingPolicy",
        ]) {
          s.inference.resourceCountIs(type, created.length);
        }
        const json = s.inference.toJSON().Resources;
        for (const e of created) {
          const c = e.create as NonNullable<typeof e.create>;
          const [[endpointId, endpoint]] = resources(s.inference, "AWS::SageMaker::Endpoint").filter(
            ([, p]) => p.EndpointName === e.endpointName,
          ) as [[string, Props]];
          const config = json[endpoint.EndpointConfigName["Fn::GetAtt"][0]].Properties;
          const [variant] = config.ProductionVariants;
          expect(variant).toMatchObject({
            VariantName: VARIANT,
            InstanceType: c.instanceType,
            InitialInstanceCount: c.initialInstanceCount,
          });
          const model = json[variant.ModelName["Fn::GetAtt"][0]].Properties;
          expect(model.PrimaryContainer).toEqual({ Image: c.image, ModelDataUrl: c.modelDataUrl });
          expect(model.EnableNetworkIsolation).toBe(true);
          const [targetId, target] = resources(
            s.inference,
            "AWS::ApplicationAutoScaling::ScalableTarget",
          ).find(([, p]) => JSON.stringify(p.ResourceId).includes(`"${endpointId}"`)) as [string, Props];
          expect(target).toMatchObject({
            ServiceNamespace: "sagemaker",
            ScalableDimension: "sagemaker:variant:DesiredInstanceCount",
            MinCapacity: c.minInstances,
            MaxCapacity: c.maxInstances,
          });
          expect(render(target.ResourceId)).toBe(
            `endpoint/<GetAtt:${endpointId}.EndpointName>/variant/${VARIANT}`,
          );
          const [, policy] = resources(s.inference, "AWS::ApplicationAutoScaling::ScalingPolicy").find(
            ([, p]) => p.ScalingTargetId.Ref === targetId,
          ) as [string, Props];
          expect(policy.PolicyType).toBe("TargetTrackingScaling");
          expect(policy.TargetTrackingScalingPolicyConfiguration).toMatchObject({
            PredefinedMetricSpecification: { PredefinedMetricType: "SageMakerVariantInvocationsPerInstance" },
            TargetValue: c.invocationsPerInstanceTarget,
          });
          const tags = Object.fromEntries(endpoint.Tags.map((t: Props) => [t.Key, t.Value]));
          expect(tags["atrium:tenant-id"]).toBe(e.tenantId);
        }
      });

      it("imports endpoints without `create` by name only", () => {
        const names = resources(s.inference, "AWS::SageMaker::Endpoint").map(([, p]) => p.EndpointName);
        const imported = configured().filter((e) => !e.create);
        expect(imported.length).toBeGreaterThan(0);
        for (const e of imported) expect(names).not.toContain(e.endpointName);
      });

      it("scopes each execution role to its image's repository, its model data object and its log group", () => {
        const json = s.inference.toJSON().Resources;
        for (const [, model] of resources(s.inference, "AWS::SageMaker::Model")) {
          const roleId = model.ExecutionRoleArn["Fn::GetAtt"][0];
          expect(json[roleId].Properties.AssumeRolePolicyDocument.Statement).toEqual([
            { Action: "sts:AssumeRole", Effect: "Allow", Principal: { Service: "sagemaker.amazonaws.com" } },
          ]);
          const image: string = model.PrimaryContainer.Image;
          const [, account, region, repository] =
            /^(\d+)\.dkr\.ecr\.([^.]+)\.amazonaws\.com\/([^:@]+)/.exec(image) ?? [];
          const byAction = new Map(
            statementsOfRole(s.inference, roleId).flatMap((st) =>
              actionsOf([st]).map((a) => [a, asList(st.Resource).map(render)] as const),
            ),
          );
          expect(byAction.get("ecr:BatchGetImage")).toEqual([
            `arn:<AWS::Partition>:ecr:${region}:${account}:repository/${repository}`,
          ]);
          const modelData: string | undefined = model.PrimaryContainer.ModelDataUrl;
          expect(byAction.get("s3:GetObject")).toEqual(
            modelData ? [`arn:<AWS::Partition>:s3:::${modelData.slice("s3://".length)}`] : undefined,
          );
          for (const [action, targets] of byAction) {
            if (action.startsWith("logs:")) {
              for (const t of targets) expect(t).toMatch(/:log-group:\/aws\/sagemaker\/Endpoints\/atrium-/);
            } else if (!resourcelessActions.has(action)) {
              for (const t of targets) expect(t, action).not.toContain("*");
            }
          }
        }
      });
    });

    describe("Reporting", () => {
      it("keeps reports in a private, KMS-encrypted, TLS-only bucket that lets them go with the ledger", () => {
        const [, bucket] = resources(s.reporting, "AWS::S3::Bucket")[0] ?? [];
        expect(bucket?.PublicAccessBlockConfiguration).toEqual({
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        });
        const encryption = bucket?.BucketEncryption.ServerSideEncryptionConfiguration[0];
        expect(encryption.ServerSideEncryptionByDefault.SSEAlgorithm).toBe("aws:kms");
        const [rule] = bucket?.LifecycleConfiguration.Rules ?? [];
        expect(rule.ExpirationInDays).toBe(s.config.usageRetentionDays);
        s.reporting.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
        const [, policy] = resources(s.reporting, "AWS::S3::BucketPolicy")[0] ?? [];
        expect(JSON.stringify(policy?.PolicyDocument)).toContain('"aws:SecureTransport":"false"');
      });

      it("has the budget-alert topic, encrypted, and a top-talkers rule keyed by tenant on the access log", () => {
        const [, topic] = resources(s.reporting, "AWS::SNS::Topic")[0] ?? [];
        expect(topic?.KmsMasterKeyId).toBeDefined();
        const [, rule] = resources(s.reporting, "AWS::CloudWatch::InsightRule")[0] ?? [];
        expect(rule?.RuleState).toBe("ENABLED");
        const body = JSON.parse(render(rule?.RuleBody));
        expect(body.Contribution.Keys).toEqual(["$.tenantId"]);
        expect(body.LogFormat).toBe("JSON");
        // The API stage's access log group, exported by the Api stack.
        const [, apiStage] = resources(s.api, "AWS::ApiGateway::Stage")[0] ?? [];
        const [logGroupId] = apiStage?.AccessLogSetting.DestinationArn["Fn::GetAtt"] ?? [];
        expect(body.LogGroupNames).toEqual([expect.stringContaining(`:ExportsOutputRef${logGroupId}`)]);
      });

      const scheduled = () => functionFor(s.reporting, scheduledReportsHandler);
      const logicalId = (template: typeof s.reporting, type: string) => {
        const [[id]] = resources(template, type) as [[string, Props]];
        return id;
      };

      it("runs the scheduled reports daily at 01:00 UTC and on the 1st at 02:00, told the kind and scheduled time", () => {
        const [fnId] = scheduled();
        const rules = resources(s.reporting, "AWS::Events::Rule");
        expect(rules.map(([, rule]) => rule.ScheduleExpression).sort()).toEqual([
          "cron(0 1 * * ? *)",
          "cron(0 2 1 * ? *)",
        ]);
        expect(reportSchedules).toEqual({ daily: "cron(0 1 * * ? *)", monthly: "cron(0 2 1 * ? *)" });
        for (const [, rule] of rules) {
          const kind = rule.ScheduleExpression === reportSchedules.daily ? "daily" : "monthly";
          expect(rule.State).toBe("ENABLED");
          const [target] = rule.Targets;
          expect(rule.Targets).toHaveLength(1);
          expect(render(target.Arn)).toBe(`<GetAtt:${fnId}.Arn>`);
          expect(target.InputTransformer.InputPathsMap).toEqual({ time: "$.time" });
          expect(target.InputTransformer.InputTemplate).toBe(`{"kind":"${kind}","time":<time>}`);
        }
      });

      it("gives the scheduled function the bucket, its key, the topic, the tables and the stage config", () => {
        const [, fn] = scheduled();
        const env = fn.Environment.Variables;
        expect(render(env.ATRIUM_REPORTS_BUCKET)).toBe(`<Ref:${logicalId(s.reporting, "AWS::S3::Bucket")}>`);
        expect(render(env.ATRIUM_REPORTS_KEY)).toBe(
          `<GetAtt:${logicalId(s.reporting, "AWS::KMS::Key")}.Arn>`,
        );
        expect(render(env.ATRIUM_BUDGET_ALERTS_TOPIC)).toBe(
          `<Ref:${logicalId(s.reporting, "AWS::SNS::Topic")}>`,
        );
        expect(render(env[TenantTable.env])).toMatch(/^<Import:.*TenantsTable/);
        expect(render(env[LimiterTable.env])).toMatch(/^<Import:.*LimiterTable/);
        expect(render(env[UsageTable.env])).toMatch(/^<Import:.*UsageTable/);
        expect(JSON.parse(env.ATRIUM_STAGE_CONFIG)).toEqual(
          JSON.parse(JSON.stringify(runtimeConfig(s.config))),
        );
        expect(fn.Timeout).toBe(300);
      });

      it("lets the scheduled function read what a report reads, write report objects, use the key and publish alerts: nothing more", () => {
        const [, fn] = scheduled();
        const bucketId = logicalId(s.reporting, "AWS::S3::Bucket");
        const statements = statementsFor(s.reporting, fn).map((st) => ({
          actions: asList(st.Action).sort(),
          resources: asList(st.Resource).map(render),
          condition: st.Condition,
        }));
        const tenantItems = {
          "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANT#*"] },
          Null: { "dynamodb:LeadingKeys": "false" },
        };
        const resourceless = statements.filter((st) => st.actions.every((a) => resourcelessActions.has(a)));
        expect(statements.filter((st) => !resourceless.includes(st))).toEqual([
          {
            actions: ["dynamodb:Query"],
            resources: [expect.stringMatching(/^<Import:.*TenantsTable.*Arn.*>\/index\/byTenant$/)],
            condition: {
              "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["TENANTS"] },
              Null: { "dynamodb:LeadingKeys": "false" },
            },
          },
          {
            actions: ["dynamodb:Query"],
            resources: [expect.stringMatching(/^<Import:.*UsageTable.*Arn/)],
            condition: tenantItems,
          },
          {
            actions: ["dynamodb:GetItem"],
            resources: [expect.stringMatching(/^<Import:.*LimiterTable.*Arn/)],
            condition: tenantItems,
          },
          {
            actions: ["s3:PutObject"],
            resources: [`<GetAtt:${bucketId}.Arn>/daily/*`, `<GetAtt:${bucketId}.Arn>/monthly/*`],
            condition: undefined,
          },
          {
            actions: ["sns:Publish"],
            resources: [`<Ref:${logicalId(s.reporting, "AWS::SNS::Topic")}>`],
            condition: undefined,
          },
          {
            actions: ["kms:Decrypt", "kms:GenerateDataKey"],
            resources: [`<GetAtt:${logicalId(s.reporting, "AWS::KMS::Key")}.Arn>`],
            condition: undefined,
          },
        ]);
        expect(resourceless.flatMap((st) => st.actions).sort()).toEqual([
          "cloudwatch:GetMetricData",
          "xray:PutTelemetryRecords",
          "xray:PutTraceSegments",
        ]);
      });

      it("has a dashboard of top tenants by the per-tenant metrics and shared endpoints' utilisation", () => {
        const [, dashboard] = resources(s.reporting, "AWS::CloudWatch::Dashboard")[0] ?? [];
        const body = JSON.stringify(dashboard?.DashboardBody);
        for (const metric of ["PromptTokens", "CompletionTokens", "RateLimited", "CallErrors"]) {
          expect(body).toContain(
            `SELECT SUM(${metric}) FROM SCHEMA(Atrium, service, tenantId) GROUP BY tenantId`,
          );
        }
        for (const endpoint of s.config.sharedEndpoints) expect(body).toContain(endpoint.endpointName);
        expect(body).toContain("GPUUtilization");
      });
    });
  });
}

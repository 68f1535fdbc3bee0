import { dedicatedEndpointPrefix, STAGE_CONFIG_ENV } from "@atrium/core/config";
import { EndpointTable, IdempotencyTable, LimiterTable, TenantTable, UsageTable } from "@atrium/core/tables";
import {
  type ApiRoute,
  authorizer,
  binaryMediaTypes,
  type GatewayResponse,
  type GatewayResponseType,
  gatewayResponseBody,
  gatewayResponses,
  type RouteAuth,
  routes,
} from "@atrium/functions/api";
import { idempotentRoutes } from "@atrium/functions/lib/idempotent-routes";
import { StackEnv, TENANT_TAG } from "@atrium/functions/lib/stack-env";
import { STREAMED_INTEGRATION_TIMEOUT_MS } from "@atrium/functions/lib/timeouts";
import { Duration, RemovalPolicy } from "aws-cdk-lib";
import {
  type CfnMethod,
  EndpointType,
  IdentitySource,
  MethodLoggingLevel,
  ResponseType,
  type RestApi,
} from "aws-cdk-lib/aws-apigateway";
import { ArnPrincipal, CompositePrincipal, PolicyStatement, Role } from "aws-cdk-lib/aws-iam";
import { NagSuppressions } from "cdk-nag";
import {
  ApiGatewayV1Api,
  type ApiGatewayV1ApiFunctionRouteProps,
  Function as Fn,
  getStack,
  type StackContext,
  use,
} from "sst/constructs";
import { loadStageConfig, runtimeConfig } from "./config";
import { Data } from "./Data";
import { Inference } from "./Inference";
import { suppressPlatformFindings } from "./nag";

const AUTHORIZER = "apiKey";
const authorizerFor: Record<RouteAuth, typeof AUTHORIZER | "iam"> = { tenant: AUTHORIZER, admin: "iam" };

export const routeKey = (route: Pick<ApiRoute, "method" | "path">) => `${route.method} ${route.path}`;

/** The catch-all responses cover many statuses (403 WAF, 415, ...), so they keep the one API Gateway chose. */
const keepsOwnStatus = new Set<GatewayResponseType>(["DEFAULT_4XX", "DEFAULT_5XX"]);

/** Admin routes that also reach the limiter, idempotency and usage tables: erasing a tenant (GDPR) deletes its items there. */
export const erasingRoutes: ReadonlySet<string> = new Set(["DELETE /admin/tenants/{tenantId}"]);

/** Admin routes that read every tenant's usage ledger and limiter items: reports (docs/reports.md). */
export const reportingRoutes: ReadonlySet<string> = new Set(["GET /admin/reports"]);

/** IAM policy variable: the tenant id an STS session was tagged with. */
const SESSION_TENANT = `\${aws:PrincipalTag/${TENANT_TAG}}`;

/** One access-log line per request, JSON; `tenantId` is what the authorizer resolved the key to. */
export const accessLogFields = {
  requestId: "$context.requestId",
  extendedRequestId: "$context.extendedRequestId",
  requestTime: "$context.requestTimeEpoch",
  httpMethod: "$context.httpMethod",
  resourcePath: "$context.resourcePath",
  status: "$context.status",
  responseLength: "$context.responseLength",
  responseLatency: "$context.responseLatency",
  integrationLatency: "$context.integration.latency",
  // Streamed routes: the transfer mode (STREAM), and the integration's time to its headers and first body byte.
  responseTransferMode: "$context.integration.responseTransferMode",
  timeToAllHeaders: "$context.integration.timeToAllHeaders",
  timeToFirstContent: "$context.integration.timeToFirstContent",
  tenantId: "$context.authorizer.tenantId",
  tier: "$context.authorizer.tier",
  keyId: "$context.authorizer.keyId",
  // Admin calls are signed: the IAM caller is the audit trail.
  caller: "$context.identity.userArn",
  sourceIp: "$context.identity.sourceIp",
  userAgent: "$context.identity.userAgent",
  errorType: "$context.error.responseType",
  errorMessage: "$context.error.message",
  authorizerError: "$context.authorizer.error",
  xrayTraceId: "$context.xrayTraceId",
};

/** Only items whose partition key begins with one of `prefixes` (IAM wildcards, `*` and `?`). */
/**
 * What a report reads of every tenant (reports route, scheduled reports): each tenant's ledger by
 * query, its limiter items for the month's total, and its metrics (GetMetricData has no resource
 * types or condition keys, so `*`).
 */
export const tenantUsageReads = (usageTableArn: string, limiterTableArn: string) => [
  new PolicyStatement({
    actions: ["dynamodb:Query"],
    resources: [usageTableArn],
    conditions: leadingKeys("TENANT#*"),
  }),
  new PolicyStatement({
    actions: ["dynamodb:GetItem"],
    resources: [limiterTableArn],
    conditions: leadingKeys("TENANT#*"),
  }),
  new PolicyStatement({ actions: ["cloudwatch:GetMetricData"], resources: ["*"] }),
];

export const leadingKeys = (...prefixes: string[]) => ({
  "ForAllValues:StringLike": { "dynamodb:LeadingKeys": prefixes },
  // ForAllValues holds vacuously for a request without keys; this makes the keys mandatory.
  Null: { "dynamodb:LeadingKeys": "false" },
});

export function Api({ stack, app }: StackContext) {
  const { tenants, limiter, idempotency, usage, endpoints } = use(Data);
  const inference = use(Inference);
  // Endpoints first: the API should not take calls for models that are still being created.
  stack.addDependency(getStack(Inference));
  const config = loadStageConfig(app.stage);
  suppressPlatformFindings(stack);

  // Stack-level, so the authorizer gets the same environment as the route functions.
  stack.addDefaultFunctionEnv({
    [TenantTable.env]: tenants.tableName,
    [LimiterTable.env]: limiter.tableName,
    [IdempotencyTable.env]: idempotency.tableName,
    [UsageTable.env]: usage.tableName,
    [EndpointTable.env]: endpoints.tableName,
    [STAGE_CONFIG_ENV]: JSON.stringify(runtimeConfig(config)),
    POWERTOOLS_SERVICE_NAME: "atrium",
    POWERTOOLS_METRICS_NAMESPACE: "Atrium",
  });

  const tenantIndexes = Object.keys(TenantTable.indexes).map((name) => `${tenants.tableArn}/index/${name}`);
  const routeAccess: Record<RouteAuth, PolicyStatement> = {
    // Tenant routes read tenant profiles only; their data calls run as the tenant (below).
    tenant: new PolicyStatement({
      actions: ["dynamodb:GetItem"],
      resources: [tenants.tableArn],
      conditions: leadingKeys("TENANT#*"),
    }),
    // Admin routes manage tenants, keys and endpoint claims: item reads and writes (in transactions), no scans.
    admin: new PolicyStatement({
      actions: [
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
      ],
      resources: [tenants.tableArn, ...tenantIndexes],
    }),
  };

  const eraseTenantPartitions = new PolicyStatement({
    actions: ["dynamodb:Query", "dynamodb:DeleteItem"],
    resources: [limiter.tableArn, idempotency.tableArn, usage.tableArn],
    conditions: leadingKeys("TENANT#*"),
  });
  // Fair share (docs/adr/0012): tenant calls read an endpoint's state and, while contended, mark it
  // and register; an erase removes the tenant from each endpoint's active tenants.
  const endpointState = (actions: string[]) =>
    new PolicyStatement({ actions, resources: [endpoints.tableArn], conditions: leadingKeys("ENDPOINT#*") });
  const fairShareAccess = endpointState(["dynamodb:GetItem", "dynamodb:UpdateItem"]);
  const forgetOnEndpoints = endpointState(["dynamodb:UpdateItem"]);
  const readTenantUsage = tenantUsageReads(usage.tableArn, limiter.tableArn);
  // Powertools' persistence layer: one conditional put, an update, a delete, a consistent get.
  const idempotencyRecordActions = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
  ];
  const keepAdminReplies = new PolicyStatement({
    actions: idempotencyRecordActions,
    resources: [idempotency.tableArn],
    conditions: leadingKeys("TENANT#*", "ADMIN#"),
  });

  const authorizerFn = new Fn(stack, "Authorizer", {
    handler: authorizer.handler,
    // API Gateway waits on the authorizer before the route even starts, so it must answer fast or fail.
    timeout: authorizer.timeoutSeconds,
    // It fetches a key item and a tenant profile by primary key, and stamps a key's last use.
    permissions: [
      new PolicyStatement({
        actions: ["dynamodb:GetItem"],
        resources: [tenants.tableArn],
        conditions: leadingKeys("KEY#*", "TENANT#*"),
      }),
      new PolicyStatement({
        actions: ["dynamodb:UpdateItem"],
        resources: [tenants.tableArn],
        conditions: leadingKeys("KEY#*"),
      }),
    ],
  });

  const api = new ApiGatewayV1Api(stack, "Api", {
    // Server-to-server API: no CORS preflight methods, so the route table is the whole surface.
    cors: false,
    accessLog: {
      format: JSON.stringify(accessLogFields),
      retention: config.protect ? "one_year" : "one_month",
    },
    authorizers: {
      [AUTHORIZER]: {
        type: "lambda_request",
        function: authorizerFn,
        identitySources: [IdentitySource.header(authorizer.identityHeader)],
        resultsCacheTtl: `${config.authorizerCacheTtlSeconds} seconds`,
      },
    },
    defaults: { authorizer: AUTHORIZER },
    routes: Object.fromEntries(
      routes.map((route): [string, ApiGatewayV1ApiFunctionRouteProps<typeof AUTHORIZER>] => [
        routeKey(route),
        {
          authorizer: authorizerFor[route.auth],
          function: {
            handler: route.handler,
            // Under the integration's timeout, so nothing is charged after its 504 (docs/adr/0007-timeouts.md).
            timeout: route.timeoutSeconds,
            permissions: [
              routeAccess[route.auth],
              ...(route.auth === "tenant" ? [fairShareAccess] : []),
              ...(erasingRoutes.has(routeKey(route)) ? [eraseTenantPartitions, forgetOnEndpoints] : []),
              ...(reportingRoutes.has(routeKey(route)) ? readTenantUsage : []),
              // Tenant routes keep theirs as the tenant (the role below); admin routes as themselves.
              ...(idempotentRoutes.get(routeKey(route)) === "admin" ? [keepAdminReplies] : []),
            ],
          },
        },
      ]),
    ),
    cdk: {
      restApi: {
        binaryMediaTypes: [...binaryMediaTypes],
        // Tenants with data-residency rules: requests terminate in the stage's region, not at a CloudFront edge.
        endpointConfiguration: { types: [EndpointType.REGIONAL] },
        // Execution logs need the account's API Gateway logging role; kept on removal, as other APIs may use it.
        cloudWatchRole: true,
        cloudWatchRoleRemovalPolicy: RemovalPolicy.RETAIN,
        deployOptions: {
          tracingEnabled: true,
          throttlingRateLimit: config.throttling.rateLimit,
          throttlingBurstLimit: config.throttling.burstLimit,
          // Errors only, and never request or response bodies: prompts stay out of the logs (HIPAA).
          loggingLevel: MethodLoggingLevel.ERROR,
          dataTraceEnabled: false,
        },
      },
    },
  });
  const restApi = api.cdk.restApi;
  api.cdk.accessLogGroup?.applyRemovalPolicy(config.protect ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY);
  const functionOf = (route: ApiRoute) => {
    const fn = api.getFunction(routeKey(route));
    if (!fn) throw new Error(`No function for ${routeKey(route)}`);
    return fn;
  };

  for (const route of routes) {
    if (!route.stream) continue;
    const key = routeKey(route);
    const method = restApi.methods.find(
      (m) => m.httpMethod === route.method && m.resource.path === route.path,
    );
    if (!method) throw new Error(`Streamed route ${key} has no method`);
    const cfnMethod = method.node.defaultChild as CfnMethod;
    // aws-cdk-lib 2.224 knows the property only at the L1 level; the URI is Lambda's InvokeWithResponseStream.
    cfnMethod.addPropertyOverride("Integration.ResponseTransferMode", "STREAM");
    // A streamed response may last 15 minutes; the function's own timeout ends it first (ADR 0007).
    cfnMethod.addPropertyOverride("Integration.TimeoutInMillis", STREAMED_INTEGRATION_TIMEOUT_MS);
    cfnMethod.addPropertyOverride(
      "Integration.Uri",
      `arn:${stack.partition}:apigateway:${stack.region}:lambda:path/2021-11-15/functions/${functionOf(route).functionArn}/response-streaming-invocations`,
    );
    // Overrides are invisible to the deployment's hash; without this, an existing stage would not redeploy.
    restApi.latestDeployment?.addToLogicalId({ streamed: key });
  }

  // Tenant isolation in IAM (docs/adr/0006): /v1 functions call DynamoDB and SageMaker as an STS
  // session of this role tagged with the caller's tenant id; the policy follows the tag.
  const tenantFns = routes.filter((r) => r.auth === "tenant").map(functionOf);
  const tenantRole = new Role(stack, "TenantAccessRole", {
    description:
      "Assumed per tenant with a TenantId session tag; reaches only that tenant's items and models",
    maxSessionDuration: Duration.hours(1),
    assumedBy: new CompositePrincipal(
      ...tenantFns.map((fn) => {
        if (!fn.role) throw new Error(`${fn.node.id} has no role`);
        return new ArnPrincipal(fn.role.roleArn);
      }),
    )
      .withSessionTags()
      .withConditions({
        Null: { [`aws:RequestTag/${TENANT_TAG}`]: "false" },
        "ForAllValues:StringEquals": { "aws:TagKeys": [TENANT_TAG] },
      }),
  });
  // The delimiter after the id: `TENANT#t1#*` never matches `TENANT#t10#` (docs/data-model.md).
  const ownItems = leadingKeys(`TENANT#${SESSION_TENANT}#*`);
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "OwnTenantProfile",
      actions: ["dynamodb:GetItem"],
      resources: [tenants.tableArn],
      conditions: ownItems,
    }),
  );
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "OwnLimiterItems",
      actions: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
      resources: [limiter.tableArn],
      conditions: ownItems,
    }),
  );
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "OwnIdempotencyRecords",
      actions: idempotencyRecordActions,
      resources: [idempotency.tableArn],
      conditions: ownItems,
    }),
  );
  // The ledger: ADDs to the day's item after each settle, and queries of a range of days (GET /v1/usage).
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "OwnUsageLedger",
      actions: ["dynamodb:Query", "dynamodb:UpdateItem"],
      resources: [usage.tableArn],
      conditions: ownItems,
    }),
  );
  const stageEndpoints = [...inference.endpoints.map((e) => e.arn), ...inference.dedicatedPatternArns];
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "StageEndpoints",
      actions: ["sagemaker:InvokeEndpoint"],
      resources: stageEndpoints,
      conditions: { Null: { "sagemaker:TargetModel": "true" } },
    }),
  );
  // Per-tenant adapters on multi-model endpoints are named `<tenantId>/...`; the `/` is the delimiter.
  tenantRole.addToPolicy(
    new PolicyStatement({
      sid: "OwnAdapters",
      actions: ["sagemaker:InvokeEndpoint"],
      resources: stageEndpoints,
      conditions: { StringLike: { "sagemaker:TargetModel": `${SESSION_TENANT}/*` } },
    }),
  );
  for (const [i, endpoint] of inference.endpoints.entries()) {
    if (!endpoint.targetModel) continue;
    // A shared catalogue artifact that every tenant of the stage may load.
    tenantRole.addToPolicy(
      new PolicyStatement({
        sid: `CatalogueArtifact${i}`,
        actions: ["sagemaker:InvokeEndpoint"],
        resources: [endpoint.arn],
        conditions: { StringEquals: { "sagemaker:TargetModel": endpoint.targetModel } },
      }),
    );
  }
  const assumeTenantRole = new PolicyStatement({
    actions: ["sts:AssumeRole", "sts:TagSession"],
    resources: [tenantRole.roleArn],
  });
  for (const fn of tenantFns) {
    fn.attachPermissions([assumeTenantRole]);
    fn.addEnvironment(StackEnv.tenantRoleArn, tenantRole.roleArn);
  }

  // Admin functions flush the stage's authorizer cache when a key is revoked or a tenant suspended.
  // The stage name is the literal SST gives the deployment stage: a reference to the stage would be a cycle.
  const authorizerCache = `arn:${stack.partition}:apigateway:${stack.region}::/restapis/${restApi.restApiId}/stages/${app.stage}/cache/authorizers`;
  for (const fn of routes.filter((r) => r.auth === "admin").map(functionOf)) {
    fn.attachPermissions([
      new PolicyStatement({ actions: ["apigateway:DELETE"], resources: [authorizerCache] }),
    ]);
    fn.addEnvironment(StackEnv.restApiId, restApi.restApiId);
    fn.addEnvironment(StackEnv.apiStage, app.stage);
    fn.addEnvironment(StackEnv.dedicatedEndpointPrefix, dedicatedEndpointPrefix(app.stage));
  }

  const responses = Object.entries(gatewayResponses) as [GatewayResponseType, GatewayResponse][];
  for (const [type, response] of responses) {
    restApi.addGatewayResponse(`GatewayResponse${type}`, {
      type: ResponseType.of(type),
      ...(keepsOwnStatus.has(type) ? {} : { statusCode: String(response.status) }),
      responseHeaders: { "x-request-id": "context.requestId" },
      templates: { "application/json": gatewayResponseBody(response) },
    });
  }

  suppressApiFindings(stack, restApi, tenantRole, [authorizerFn, ...routes.map(functionOf)]);
  stack.addOutputs({ ApiUrl: api.url, TenantAccessRoleArn: tenantRole.roleArn });
  return { api, tenantRole };
}

/** cdk-nag findings that are decisions, each with its reason. */
function suppressApiFindings(stack: StackContext["stack"], restApi: RestApi, tenantRole: Role, fns: Fn[]) {
  NagSuppressions.addResourceSuppressions(
    restApi,
    [
      {
        id: "AwsSolutions-COG4",
        reason:
          "Tenants authenticate with API keys through the Lambda REQUEST authorizer (OpenAI clients send a bearer key, not a Cognito token); admin routes use IAM (SigV4).",
      },
      {
        id: "AwsSolutions-APIG2",
        reason:
          "Handlers validate every body and parameter (zod) and answer OpenAI-shaped errors naming the field; API Gateway models would be a second schema that drifts from the route table (ADR 0002) and answers another error shape.",
      },
      {
        id: "AwsSolutions-APIG3",
        reason:
          "No WAF: every /v1 call needs a valid tenant key (refused before any work), stage throttling and per-tenant limits bound abuse, and the AWS managed rule sets block legitimate prompt bodies over 8 KB.",
      },
      {
        id: "AwsSolutions-IAM4",
        reason:
          "AmazonAPIGatewayPushToCloudWatchLogs is the service policy API Gateway needs to write execution and access logs for the account.",
        appliesTo: [
          "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
        ],
      },
    ],
    true,
  );
  for (const fn of fns) {
    NagSuppressions.addResourceSuppressions(
      fn,
      [
        {
          id: "AwsSolutions-IAM5",
          reason:
            "X-Ray's PutTraceSegments and PutTelemetryRecords, and CloudWatch's GetMetricData (reports), have no resource-level permissions.",
          appliesTo: ["Resource::*"],
        },
      ],
      true,
    );
  }
  NagSuppressions.addResourceSuppressions(
    tenantRole,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "Dedicated endpoints registered at runtime are named atrium-<stage>-… (docs/adr/0006); the pattern covers this stage's only, in its model regions.",
        appliesTo: [
          {
            regex: `/^Resource::arn:<AWS::Partition>:sagemaker:[a-z0-9-]+:<AWS::AccountId>:endpoint\\/atrium-${stack.stage.toLowerCase()}-\\*$/`,
          },
        ],
      },
    ],
    true,
  );
}

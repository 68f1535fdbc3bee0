import { STAGE_CONFIG_ENV } from "@atrium/core/config";
import { TenantTable } from "@atrium/core/tables";
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
import { EndpointType, IdentitySource, ResponseType } from "aws-cdk-lib/aws-apigateway";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import {
  ApiGatewayV1Api,
  type ApiGatewayV1ApiFunctionRouteProps,
  Function as Fn,
  type StackContext,
  use,
} from "sst/constructs";
import { loadStageConfig } from "./config";
import { Data } from "./Data";

const AUTHORIZER = "apiKey";
const authorizerFor: Record<RouteAuth, typeof AUTHORIZER | "iam"> = { tenant: AUTHORIZER, admin: "iam" };

/** Routes that call models; only these may invoke SageMaker endpoints. */
const invokesModels = (route: ApiRoute) => route.path.startsWith("/v1/");

/** The catch-all responses cover many statuses (403 WAF, 415, ...), so they keep the one API Gateway chose. */
const keepsOwnStatus = new Set<GatewayResponseType>(["DEFAULT_4XX", "DEFAULT_5XX"]);

export function Api({ stack, app }: StackContext) {
  const { tenants } = use(Data);
  const config = loadStageConfig(app.stage);

  // Stack-level, so the authorizer gets the same environment as the route functions.
  stack.addDefaultFunctionEnv({
    [TenantTable.env]: tenants.tableName,
    [STAGE_CONFIG_ENV]: JSON.stringify(config),
    POWERTOOLS_SERVICE_NAME: "atrium",
    POWERTOOLS_METRICS_NAMESPACE: "Atrium",
  });

  const lookUp = ["dynamodb:GetItem", "dynamodb:Query"];
  const write = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"];
  const tableAndIndexes = [tenants.tableArn, `${tenants.tableArn}/index/*`];
  // Tenant routes only look tenants up; writes are the admin routes' job.
  const tenantAccess: Record<RouteAuth, PolicyStatement> = {
    tenant: new PolicyStatement({ actions: lookUp, resources: tableAndIndexes }),
    admin: new PolicyStatement({ actions: [...lookUp, ...write], resources: tableAndIndexes }),
  };
  // Calls go to the stage region unless a shared endpoint names another (same rule as resolveRoute).
  const modelRegions = [
    ...new Set([config.region, ...config.sharedEndpoints.map((e) => e.region ?? config.region)]),
  ];
  const invokeEndpoints = new PolicyStatement({
    actions: ["sagemaker:InvokeEndpoint"],
    resources: modelRegions.map((r) => `arn:${stack.partition}:sagemaker:${r}:${stack.account}:endpoint/*`),
  });

  const authorizerFn = new Fn(stack, "Authorizer", {
    handler: authorizer.handler,
    // API Gateway waits on the authorizer before the route even starts, so it must answer fast or fail.
    timeout: "10 seconds",
    // It only ever fetches the key and tenant items by primary key.
    permissions: [new PolicyStatement({ actions: ["dynamodb:GetItem"], resources: [tenants.tableArn] })],
  });

  const api = new ApiGatewayV1Api(stack, "Api", {
    // Server-to-server API: no CORS preflight methods, so the route table is the whole surface.
    cors: false,
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
        `${route.method} ${route.path}`,
        {
          authorizer: authorizerFor[route.auth],
          function: {
            handler: route.handler,
            permissions: [tenantAccess[route.auth], ...(invokesModels(route) ? [invokeEndpoints] : [])],
          },
        },
      ]),
    ),
    cdk: {
      restApi: {
        binaryMediaTypes: [...binaryMediaTypes],
        // Tenants with data-residency rules: requests terminate in the stage's region, not at a CloudFront edge.
        endpointConfiguration: { types: [EndpointType.REGIONAL] },
        deployOptions: { tracingEnabled: true },
      },
    },
  });

  const responses = Object.entries(gatewayResponses) as [GatewayResponseType, GatewayResponse][];
  for (const [type, response] of responses) {
    api.cdk.restApi.addGatewayResponse(`GatewayResponse${type}`, {
      type: ResponseType.of(type),
      ...(keepsOwnStatus.has(type) ? {} : { statusCode: String(response.status) }),
      responseHeaders: { "x-request-id": "context.requestId" },
      templates: { "application/json": gatewayResponseBody(response) },
    });
  }

  stack.addOutputs({ ApiUrl: api.url });
  return { api };
}

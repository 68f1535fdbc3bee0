// @vitest-environment node
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { StageConfig } from "@atrium/core/config";
import { TenantTable } from "@atrium/core/tables";
import {
  type ApiRoute,
  authorizer,
  binaryMediaTypes,
  type GatewayResponseType,
  gatewayResponseBody,
  gatewayResponses,
  routes,
} from "@atrium/functions/api";
import { Template } from "aws-cdk-lib/assertions";
import { App, getStack } from "sst/constructs";
import { initProject, useProject } from "sst/project.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sstConfig, { functionDefaults } from "../../sst.config";
import { Api } from "../../stacks/Api";
import { loadStageConfig } from "../../stacks/config";
import { Data } from "../../stacks/Data";

interface Synth {
  config: StageConfig;
  project: { name: string; region?: string };
  account: string;
  api: Template;
  data: Template;
  outdir: string;
}

/** One offline synth of both stacks for a stage; bundling every handler makes this the slow part. */
async function synth(stage: string): Promise<Synth> {
  // SST skips its AWS bootstrap lookups only under NODE_ENV=test; vitest sets it, this makes it certain.
  process.env.NODE_ENV = "test";
  await initProject({ stage });
  const { name, region } = useProject().config;
  const app = new App({ mode: "deploy", stage });
  app.setDefaultFunctionProps(functionDefaults);
  app.stack(Data).stack(Api);
  await app.finish();
  return {
    config: loadStageConfig(stage),
    project: { name, region },
    account: getStack(Api).account,
    api: Template.fromStack(getStack(Api)),
    data: Template.fromStack(getStack(Data)),
    outdir: app.outdir,
  };
}

interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}
// biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties are untyped JSON.
type Props = Record<string, any>;

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
const actionsOf = (statements: Statement[]) => statements.flatMap((s) => asList(s.Action));
const routeKey = (r: { method: string; path: string }) => `${r.method} ${r.path}`;
const invokesModels = (r: ApiRoute) => r.path.startsWith("/v1/");

function resources(template: Template, type: string): [string, Props][] {
  return Object.entries(template.findResources(type)).map(([id, r]) => [id, r.Properties ?? {}]);
}

/** The one function whose deployed handler is `handler` (SST keeps the handler string's path and export). */
function functionFor(template: Template, handler: string): [string, Props] {
  const found = resources(template, "AWS::Lambda::Function").filter(([, p]) => p.Handler === handler);
  expect(found, `function for ${handler}`).toHaveLength(1);
  return found[0] as [string, Props];
}

/** Every statement attached to a function's role. */
function statementsFor(template: Template, fn: Props): Statement[] {
  const role = fn.Role["Fn::GetAtt"][0];
  return resources(template, "AWS::IAM::Policy")
    .filter(([, p]) => p.Roles.some((r: Props) => r.Ref === role))
    .flatMap(([, p]) => p.PolicyDocument.Statement as Statement[]);
}

/** Every policy statement in a template: managed-by-CDK policies and inline role policies. */
function allStatements(template: Template): Statement[] {
  return [
    ...resources(template, "AWS::IAM::Policy").flatMap(([, p]) => p.PolicyDocument.Statement),
    ...resources(template, "AWS::IAM::Role").flatMap(([, p]) =>
      (p.Policies ?? []).flatMap((policy: Props) => policy.PolicyDocument.Statement),
    ),
  ];
}

/** `METHOD /path` of each API Gateway method, rebuilt from the Resource parent chain. */
function methodsByRoute(template: Template): Map<string, Props> {
  const apiResources = template.findResources("AWS::ApiGateway::Resource");
  const pathOf = (id: string): string => {
    const { PathPart, ParentId } = apiResources[id]?.Properties ?? {};
    return `${ParentId.Ref ? pathOf(ParentId.Ref) : ""}/${PathPart}`;
  };
  return new Map(
    resources(template, "AWS::ApiGateway::Method").map(([, p]) => [
      routeKey({ method: p.HttpMethod, path: pathOf(p.ResourceId.Ref) }),
      p,
    ]),
  );
}

// Actions that only emit telemetry and have no resource to scope to.
const telemetryActions = new Set(["xray:PutTraceSegments", "xray:PutTelemetryRecords"]);
const writeActions = ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"];

const outdirs: string[] = [];
afterAll(() => {
  for (const dir of outdirs) rmSync(dir, { recursive: true, force: true });
});

describe.each(["dev", "prod"])("stage %s", (stage) => {
  let s: Synth;
  beforeAll(async () => {
    s = await synth(stage);
    outdirs.push(s.outdir);
  }, 180_000);

  it("takes the app name and region from sst.config.ts and config/<stage>.json", () => {
    expect(s.project).toEqual({ name: "atrium", region: s.config.region });
  });

  it("creates the tenant table from TenantTable with point-in-time recovery", () => {
    const { partitionKey, sortKey, indexes } = TenantTable;
    s.data.resourceCountIs("AWS::DynamoDB::Table", 1);
    const [[, table]] = resources(s.data, "AWS::DynamoDB::Table") as [[string, Props]];
    expect(table.KeySchema).toEqual([
      { AttributeName: partitionKey, KeyType: "HASH" },
      { AttributeName: sortKey, KeyType: "RANGE" },
    ]);
    expect(table.GlobalSecondaryIndexes).toEqual(
      Object.entries(indexes).map(([name, index]) => ({
        IndexName: name,
        KeySchema: [
          { AttributeName: index.partitionKey, KeyType: "HASH" },
          { AttributeName: index.sortKey, KeyType: "RANGE" },
        ],
        Projection: { ProjectionType: "ALL" },
      })),
    );
    const keys = [
      partitionKey,
      sortKey,
      ...Object.values(indexes).flatMap((i) => [i.partitionKey, i.sortKey]),
    ];
    expect(table.AttributeDefinitions).toEqual(
      expect.arrayContaining(keys.map((k) => ({ AttributeName: k, AttributeType: "S" }))),
    );
    expect(table.AttributeDefinitions).toHaveLength(keys.length);
    expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.BillingMode).toBe("PAY_PER_REQUEST");
  });

  it("deploys exactly one method per route, authorised as the route table says", () => {
    const methods = methodsByRoute(s.api);
    expect([...methods.keys()].sort()).toEqual(routes.map(routeKey).sort());
    const [[authorizerId]] = resources(s.api, "AWS::ApiGateway::Authorizer") as [[string, Props]];
    for (const route of routes) {
      const method = methods.get(routeKey(route)) as Props;
      const [fnId] = functionFor(s.api, route.handler);
      expect(JSON.stringify(method.Integration.Uri), routeKey(route)).toContain(`"${fnId}"`);
      if (route.auth === "tenant") {
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
    const [fnId] = functionFor(s.api, authorizer.handler);
    expect(JSON.stringify(auth.AuthorizerUri)).toContain(`"${fnId}"`);
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
  });

  it("runs every function on nodejs22.x, and the app's functions on arm64 with tracing and <= 30 s", () => {
    for (const template of [s.data, s.api]) {
      for (const [id, fn] of resources(template, "AWS::Lambda::Function")) {
        expect(fn.Runtime, id).toBe("nodejs22.x");
      }
    }
    for (const handler of [authorizer.handler, ...routes.map((r) => r.handler)]) {
      const [, fn] = functionFor(s.api, handler);
      expect(fn.Architectures, handler).toEqual(["arm64"]);
      expect(fn.TracingConfig, handler).toEqual({ Mode: "Active" });
      expect(fn.Timeout, handler).toBeLessThanOrEqual(30);
    }
  });

  it("gives the functions the table name, the validated stage config and the Powertools settings", () => {
    for (const handler of [authorizer.handler, ...routes.map((r) => r.handler)]) {
      const [, fn] = functionFor(s.api, handler);
      const env = fn.Environment.Variables;
      expect(env[TenantTable.env], handler).toHaveProperty("Fn::ImportValue");
      expect(JSON.parse(env.ATRIUM_STAGE_CONFIG), handler).toEqual(s.config);
      expect(env.POWERTOOLS_SERVICE_NAME).toBe("atrium");
      expect(env.POWERTOOLS_METRICS_NAMESPACE).toBe("Atrium");
    }
  });

  it("never grants a data action on Resource '*'", () => {
    for (const template of [s.data, s.api]) {
      for (const statement of allStatements(template)) {
        if (!asList(statement.Resource).includes("*")) continue;
        for (const action of asList(statement.Action)) expect(telemetryActions, action).toContain(action);
      }
    }
  });

  it("grants InvokeEndpoint, scoped to the account and region, to the /v1 functions only", () => {
    for (const route of routes) {
      const statements = statementsFor(s.api, functionFor(s.api, route.handler)[1]);
      const invoke = statements.filter((st) => asList(st.Action).includes("sagemaker:InvokeEndpoint"));
      if (!invokesModels(route)) {
        expect(invoke, routeKey(route)).toEqual([]);
        continue;
      }
      expect(invoke, routeKey(route)).toHaveLength(1);
      const targets = asList((invoke[0] as Statement).Resource).map((r) => JSON.stringify(r));
      for (const target of targets) {
        expect(target).toContain(`:sagemaker:${s.config.region}:${s.account}:endpoint/*"`);
      }
    }
    const authorizerStatements = statementsFor(s.api, functionFor(s.api, authorizer.handler)[1]);
    expect(actionsOf(authorizerStatements).filter((a) => a.startsWith("sagemaker:"))).toEqual([]);
  });

  it("lets the authorizer only read, tenant routes only look up and admin routes write the table", () => {
    const dynamo = (handler: string) =>
      actionsOf(statementsFor(s.api, functionFor(s.api, handler)[1])).filter((a) =>
        a.startsWith("dynamodb:"),
      );
    expect(dynamo(authorizer.handler)).toEqual(["dynamodb:GetItem"]);
    for (const route of routes) {
      const actions = dynamo(route.handler);
      expect(actions, routeKey(route)).toContain("dynamodb:GetItem");
      if (route.auth === "admin")
        expect(actions, routeKey(route)).toEqual(expect.arrayContaining(writeActions));
      else
        expect(
          actions.filter((a) => writeActions.includes(a)),
          routeKey(route),
        ).toEqual([]);
    }
  });

  it("outputs the API URL", () => {
    s.api.hasOutput("ApiUrl", {});
  });
});

describe("stage config loading", () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "atrium-config-"));
    mkdirSync(path.join(root, "config"));
    const dev = JSON.parse(readFileSync("config/dev.json", "utf8"));
    const broken = { ...dev, tiers: { ...dev.tiers, free: { ...dev.tiers.free, tenancy: "shared" } } };
    writeFileSync(path.join(root, "config", "broken.json"), JSON.stringify(broken));
    writeFileSync(path.join(root, "config", "garbled.json"), "{ region: ");
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("rejects an unknown tenancy, naming the file and the field", () => {
    const file = path.join(root, "config", "broken.json");
    expect(() => loadStageConfig("broken", root)).toThrow(file);
    expect(() => loadStageConfig("broken", root)).toThrow(/tiers\.free\.tenancy/);
  });

  it("names the file when it is missing or not JSON", () => {
    expect(() => loadStageConfig("nope", root)).toThrow(
      `${path.join(root, "config", "nope.json")} does not exist`,
    );
    expect(() => loadStageConfig("garbled", root)).toThrow(path.join(root, "config", "garbled.json"));
  });

  it("stops sst.config.ts before any synth when the stage has no config", () => {
    expect(() => sstConfig.config({ stage: "no-such-stage" })).toThrow(/config\/no-such-stage\.json/);
  });
});

import type { Tenant } from "@atrium/core/tenant";
import { type Command, effectLine, jsonOption, type Propagation, requireOptions } from "../command";
import { callAdmin, resolveConnection } from "../connection";
import { cell, table } from "../format";

const endpointsPath = (tenantId: string) => `/admin/tenants/${encodeURIComponent(tenantId)}/endpoints`;

interface EndpointView {
  model: string;
  endpointName: string;
  region: string;
  targetModel?: string;
  inferenceComponentName?: string;
}

export const endpointCommands: Record<string, Command> = {
  "endpoints add": {
    summary: "dedicate a SageMaker endpoint to one model of a bridge or silo tenant",
    usage:
      "atrium endpoints add TENANT_ID --model MODEL --endpoint ENDPOINT_NAME [--region REGION] [--target-model NAME] [--inference-component NAME] [--json]",
    positionals: ["TENANT_ID"],
    options: {
      model: { type: "string", description: "the model name tenants call" },
      endpoint: { type: "string", description: "the SageMaker endpoint name" },
      region: { type: "string", description: "the endpoint's region (default: the stage's)" },
      "target-model": { type: "string", description: "TargetModel on a multi-model endpoint" },
      "inference-component": { type: "string", description: "InferenceComponentName on the endpoint" },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId] = positionals as [string];
      requireOptions(values, "model", "endpoint");
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ tenant: Tenant; propagation: Propagation }>(
        connection,
        "POST",
        endpointsPath(tenantId),
        {
          model: values.model,
          endpointName: values.endpoint,
          ...(values.region ? { region: values.region } : {}),
          ...(values["target-model"] ? { targetModel: values["target-model"] } : {}),
          ...(values["inference-component"] ? { inferenceComponentName: values["inference-component"] } : {}),
        },
      );
      return {
        json: result,
        human: `Tenant ${tenantId}: model ${values.model} now goes to dedicated endpoint ${values.endpoint}. ${effectLine(result.propagation)}`,
      };
    },
  },

  "endpoints list": {
    summary: "list a tenant's dedicated endpoints, by model",
    usage: "atrium endpoints list TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ tier: string; tenancy?: string; endpoints: EndpointView[] }>(
        connection,
        "GET",
        endpointsPath(tenantId),
      );
      const rows = result.endpoints.map((e) => [
        e.model,
        e.endpointName,
        e.region,
        cell(e.targetModel ?? e.inferenceComponentName),
      ]);
      const empty = `No dedicated endpoints (tier ${result.tier}, ${result.tenancy ?? "unknown"} tenancy).`;
      return { json: result, human: table(["MODEL", "ENDPOINT", "REGION", "TARGET"], rows, empty) };
    },
  },

  "endpoints remove": {
    summary: "stop routing a tenant's model to its dedicated endpoint and release the endpoint",
    usage: "atrium endpoints remove TENANT_ID --model MODEL [--json]",
    positionals: ["TENANT_ID"],
    options: {
      model: { type: "string", description: "the model whose dedicated endpoint goes" },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId] = positionals as [string];
      requireOptions(values, "model");
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ removed: { endpointName: string }; propagation: Propagation }>(
        connection,
        "DELETE",
        `${endpointsPath(tenantId)}/${encodeURIComponent(String(values.model))}`,
      );
      return {
        json: result,
        human: `Tenant ${tenantId}: model ${values.model} no longer goes to ${result.removed.endpointName}. ${effectLine(result.propagation)}`,
      };
    },
  },
};

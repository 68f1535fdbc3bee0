import type { Tenant } from "@atrium/core/tenant";
import {
  type CliEnv,
  type Command,
  countOption,
  effectLine,
  jsonOption,
  type OptionSpec,
  type Propagation,
  pageQuery,
  requireOptions,
} from "../command";
import { CliError, callAdmin, resolveConnection } from "../connection";
import { cell, table, time } from "../format";

/** The limit flags and the `limits` field each one sets. */
const LIMIT_FLAGS = {
  rpm: "requestsPerMinute",
  tpm: "tokensPerMinute",
  concurrency: "concurrency",
  "monthly-tokens": "monthlyTokens",
  burst: "burst",
} as const;

function limitOptions(clearable: boolean): Record<string, OptionSpec> {
  const also = clearable ? "; 'default' removes the override" : "";
  return {
    rpm: { type: "string", description: `requests per minute (overrides the tier's)${also}` },
    tpm: { type: "string", description: `tokens per minute${also}` },
    concurrency: { type: "string", description: `calls in flight at once${also}` },
    "monthly-tokens": { type: "string", description: `tokens per UTC calendar month${also}` },
    burst: { type: "string", description: `requests admitted at once from idle${also}` },
  };
}

/** The `limits` object the flags ask for, or undefined when none is given. */
function limitsFrom(
  values: Record<string, unknown>,
  clearable: boolean,
): Record<string, number | null> | undefined {
  const limits: Record<string, number | null> = {};
  for (const [flag, field] of Object.entries(LIMIT_FLAGS)) {
    const value = countOption(values, flag, clearable);
    if (value !== undefined) limits[field] = value;
  }
  return Object.keys(limits).length > 0 ? limits : undefined;
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

const list = (values: Record<string, unknown>, name: string) => values[name] as string[] | undefined;

function describe(tenant: Tenant): string {
  const rows: [string, unknown][] = [
    ["id", tenant.id],
    ["name", tenant.name],
    ["tier", tenant.tier],
    ["status", tenant.status],
    ["compliance", tenant.compliance],
    ["regions", tenant.regions ?? "any"],
    ["models", tenant.models ?? "any the tier allows"],
    ["limits", tenant.limits ?? "the tier's"],
    ["endpoints", Object.entries(tenant.endpoints).map(([model, e]) => `${model}=${e.endpointName}`)],
    ["created", time(tenant.createdAt)],
  ];
  return rows.map(([label, value]) => `${label.padEnd(12)}${cell(value)}`).join("\n");
}

async function statusChange(path: "suspend" | "resume", positionals: string[], env: CliEnv) {
  const [tenantId] = positionals as [string];
  const connection = await resolveConnection(env);
  const result = await callAdmin<{ tenant: Tenant; propagation: Propagation }>(
    connection,
    "POST",
    `/admin/tenants/${encodeURIComponent(tenantId)}/${path}`,
  );
  const verb = path === "suspend" ? "suspended: its keys are refused (403)" : "resumed";
  return { json: result, human: `Tenant ${tenantId} ${verb}. ${effectLine(result.propagation)}` };
}

export const tenantCommands: Record<string, Command> = {
  "tenants create": {
    summary: "create a tenant and its first API key (the key is shown once)",
    usage:
      "atrium tenants create --name NAME --tier TIER [--compliance hipaa|gdpr|soc2]... [--region REGION]... [--model MODEL]... [--rpm N] [--tpm N] [--concurrency N] [--monthly-tokens N] [--burst N] [--json]",
    options: {
      name: { type: "string", description: "display name, 1-100 characters" },
      tier: {
        type: "string",
        description: "a tier of the stage's catalogue (e.g. free, pro, business, enterprise)",
      },
      compliance: { type: "string", multiple: true, description: "compliance posture; repeat for several" },
      region: {
        type: "string",
        multiple: true,
        description: "allowed region for GDPR residency; repeat for several",
      },
      model: { type: "string", multiple: true, description: "allow only these models; repeat for several" },
      ...limitOptions(false),
      json: jsonOption,
    },
    async run(values, _positionals, env) {
      requireOptions(values, "name", "tier");
      const compliance = list(values, "compliance");
      const regions = list(values, "region");
      const models = list(values, "model");
      const limits = limitsFrom(values, false);
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ tenant: Tenant; apiKey: string; key: { keyId: string } }>(
        connection,
        "POST",
        "/admin/tenants",
        {
          name: values.name,
          tier: values.tier,
          ...(compliance ? { compliance } : {}),
          ...(regions ? { regions } : {}),
          ...(models ? { models } : {}),
          ...(limits ? { limits } : {}),
        },
      );
      const { tenant } = result;
      const postures = [
        ...tenant.compliance,
        ...(tenant.regions ? [`regions ${tenant.regions.join(",")}`] : []),
      ];
      return {
        json: result,
        human: [
          `Created tenant ${tenant.id} "${tenant.name}" (tier ${tenant.tier}${postures.length > 0 ? `; ${postures.join(", ")}` : ""}).`,
          `API key ${result.key.keyId} (shown once, store it now):`,
          `  ${result.apiKey}`,
        ].join("\n"),
      };
    },
  },

  "tenants list": {
    summary: "list tenants, a page at a time",
    usage: "atrium tenants list [--limit N] [--cursor CURSOR] [--json]",
    options: {
      limit: { type: "string", description: "tenants per page, 1-1000 (default 100)" },
      cursor: { type: "string", description: "the page after the one that printed this cursor" },
      json: jsonOption,
    },
    async run(values, _positionals, env) {
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ tenants: Tenant[]; nextCursor?: string }>(
        connection,
        "GET",
        `/admin/tenants${pageQuery(values)}`,
      );
      const rows = [...result.tenants]
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt))
        .map((t) => [t.id, t.name, t.tier, t.status, cell(t.compliance), cell(t.regions), time(t.createdAt)]);
      const more = result.nextCursor ? `\n\nMore: atrium tenants list --cursor ${result.nextCursor}` : "";
      return {
        json: result,
        human: `${table(["ID", "NAME", "TIER", "STATUS", "COMPLIANCE", "REGIONS", "CREATED"], rows, "No tenants.")}${more}`,
      };
    },
  },

  "tenants get": {
    summary: "show one tenant: tier, status, postures, models, limits, endpoints",
    usage: "atrium tenants get TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const result = await callAdmin<{ tenant: Tenant }>(
        connection,
        "GET",
        `/admin/tenants/${encodeURIComponent(tenantId)}`,
      );
      return { json: result, human: describe(result.tenant) };
    },
  },

  "tenants update": {
    summary: "change a tenant's tier, limits, allowed models, compliance, regions or name",
    usage:
      "atrium tenants update TENANT_ID [--tier TIER] [--name NAME] [--compliance C]... [--clear-compliance] [--region R]... [--clear-regions] [--model M]... [--clear-models] [--rpm N|default] [--tpm N|default] [--concurrency N|default] [--monthly-tokens N|default] [--burst N|default] [--clear-limits] [--limiter-shards N|default] [--json]",
    positionals: ["TENANT_ID"],
    options: {
      tier: { type: "string", description: "move to this tier of the catalogue" },
      name: { type: "string", description: "new display name" },
      compliance: { type: "string", multiple: true, description: "the complete set of postures; repeat" },
      "clear-compliance": { type: "boolean", description: "no compliance posture" },
      region: { type: "string", multiple: true, description: "the complete set of allowed regions; repeat" },
      "clear-regions": { type: "boolean", description: "allow every region" },
      model: { type: "string", multiple: true, description: "the complete allow-list of models; repeat" },
      "clear-models": { type: "boolean", description: "allow every model the tier allows" },
      ...limitOptions(true),
      "clear-limits": { type: "boolean", description: "drop every limit override (the tier's limits apply)" },
      "limiter-shards": {
        type: "string",
        description: "split a hot tenant's limiter over N items (2-64); 'default' returns to one",
      },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId] = positionals as [string];
      const shards = countOption(values, "limiter-shards", true);
      const exclusive = (flag: string, clear: string) => {
        if (values[flag] !== undefined && values[clear])
          throw new CliError(`--${flag} and --${clear} contradict`, 2);
      };
      exclusive("compliance", "clear-compliance");
      exclusive("region", "clear-regions");
      exclusive("model", "clear-models");
      const limits = limitsFrom(values, true);
      if (limits && values["clear-limits"])
        throw new CliError("limit flags and --clear-limits contradict", 2);
      const body = {
        ...(values.tier !== undefined ? { tier: values.tier } : {}),
        ...(values.name !== undefined ? { name: values.name } : {}),
        ...(values.compliance ? { compliance: values.compliance } : {}),
        ...(values["clear-compliance"] ? { compliance: [] } : {}),
        ...(values.region ? { regions: values.region } : {}),
        ...(values["clear-regions"] ? { regions: null } : {}),
        ...(values.model ? { models: values.model } : {}),
        ...(values["clear-models"] ? { models: null } : {}),
        ...(limits ? { limits } : {}),
        ...(values["clear-limits"] ? { limits: null } : {}),
        ...(shards !== undefined ? { limiterShards: shards } : {}),
      };
      if (Object.keys(body).length === 0)
        throw new CliError("nothing to update: give at least one option", 2);
      const connection = await resolveConnection(env);
      const result = await callAdmin<{
        tenant: Tenant;
        changes: Record<string, { from?: unknown; to?: unknown }>;
        propagation?: Propagation;
      }>(connection, "PATCH", `/admin/tenants/${encodeURIComponent(tenantId)}`, body);
      const changed = Object.entries(result.changes).map(
        ([field, { from, to }]) => `  ${field}: ${cell(from)} -> ${cell(to)}`,
      );
      const human =
        changed.length === 0
          ? `Tenant ${tenantId}: nothing changed.`
          : [`Tenant ${tenantId} updated:`, ...changed, effectLine(result.propagation)].join("\n");
      return { json: result, human };
    },
  },

  "tenants suspend": {
    summary: "suspend a tenant: every key is refused (403) from the next call",
    usage: "atrium tenants suspend TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    run(_values, positionals, env) {
      return statusChange("suspend", positionals, env);
    },
  },

  "tenants resume": {
    summary: "resume a suspended tenant",
    usage: "atrium tenants resume TENANT_ID [--json]",
    positionals: ["TENANT_ID"],
    options: { json: jsonOption },
    run(_values, positionals, env) {
      return statusChange("resume", positionals, env);
    },
  },

  "tenants delete": {
    summary: "delete a tenant (keys revoked, endpoints released); --erase removes all its data",
    usage: "atrium tenants delete TENANT_ID [--erase] [--json]",
    positionals: ["TENANT_ID"],
    options: {
      erase: {
        type: "boolean",
        description: "GDPR erase: remove every item of the tenant in every table (irreversible)",
      },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [tenantId] = positionals as [string];
      const connection = await resolveConnection(env);
      const path = `/admin/tenants/${encodeURIComponent(tenantId)}${values.erase ? "?erase=true" : ""}`;
      const result = await callAdmin<{
        itemsDeleted?: number;
        changes?: { keysRevoked?: { to: string[] } };
        propagation: Propagation;
      }>(connection, "DELETE", path);
      const human = values.erase
        ? `Tenant ${tenantId} erased: ${plural(result.itemsDeleted ?? 0, "item")} deleted; only the audit record of the erase remains.`
        : `Tenant ${tenantId} deleted: ${plural(result.changes?.keysRevoked?.to.length ?? 0, "key")} revoked, endpoints released; its data is kept until 'atrium tenants delete ${tenantId} --erase'.`;
      return { json: result, human: `${human} ${effectLine(result.propagation)}` };
    },
  },
};

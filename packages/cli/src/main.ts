/** `atrium`: the admin CLI. Talks to the admin API of the local platform or of a deployed stage. */
import { parseArgs } from "node:util";
import { CliError, callAdmin, resolveConnection } from "./connection";

interface TenantView {
  id: string;
  name: string;
  tier: string;
  status: string;
  compliance: string[];
  regions?: string[];
  endpoints: Record<string, { endpointName: string }>;
}

interface Command {
  summary: string;
  usage: string;
  options: Record<string, { type: "string" | "boolean"; multiple?: boolean; description: string }>;
  positionals?: string[];
  run(values: Record<string, unknown>, positionals: string[]): Promise<{ json: unknown; human: string }>;
}

const json = { type: "boolean", description: "print the result as JSON (for scripts)" } as const;

const commands: Record<string, Command> = {
  "tenants create": {
    summary: "create a tenant and its first API key (the key is shown once)",
    usage:
      "atrium tenants create --name NAME --tier TIER [--compliance hipaa|gdpr|soc2]... [--region REGION]... [--json]",
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
      json,
    },
    async run(values) {
      require(values, "name", "tier");
      const compliance = values.compliance as string[] | undefined;
      const regions = values.region as string[] | undefined;
      const connection = await resolveConnection();
      const result = await callAdmin<{ tenant: TenantView; apiKey: string; key: { keyId: string } }>(
        connection,
        "POST",
        "/admin/tenants",
        {
          name: values.name,
          tier: values.tier,
          ...(compliance ? { compliance } : {}),
          ...(regions ? { regions } : {}),
        },
      );
      const { tenant } = result;
      return {
        json: result,
        human: [
          `Created tenant ${tenant.id} "${tenant.name}" (tier ${tenant.tier}${describeCompliance(tenant)}).`,
          `API key ${result.key.keyId} (shown once, store it now):`,
          `  ${result.apiKey}`,
        ].join("\n"),
      };
    },
  },
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
      json,
    },
    async run(values, positionals) {
      const tenantId = positionals[0];
      if (!tenantId) throw new CliError("missing TENANT_ID", 2);
      require(values, "model", "endpoint");
      const connection = await resolveConnection();
      const result = await callAdmin<{ tenant: TenantView }>(
        connection,
        "POST",
        `/admin/tenants/${encodeURIComponent(tenantId)}/endpoints`,
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
        human: `Tenant ${tenantId}: model ${values.model} now goes to dedicated endpoint ${values.endpoint}.`,
      };
    },
  },
};

function describeCompliance(tenant: TenantView): string {
  const parts = [...tenant.compliance, ...(tenant.regions ? [`regions ${tenant.regions.join(",")}`] : [])];
  return parts.length > 0 ? `; ${parts.join(", ")}` : "";
}

function require(values: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter((name) => values[name] === undefined || values[name] === "");
  if (missing.length > 0) throw new CliError(`missing ${missing.map((n) => `--${n}`).join(", ")}`, 2);
}

function helpFor(name: string, command: Command): string {
  const lines = Object.entries(command.options).map(
    ([option, spec]) => `  --${option.padEnd(22)}${spec.description}${spec.multiple ? " (repeatable)" : ""}`,
  );
  return `atrium ${name}: ${command.summary}\n\nUsage: ${command.usage}\n\nOptions:\n${lines.join("\n")}\n  --${"help".padEnd(22)}show this help\n`;
}

function overview(): string {
  const lines = Object.entries(commands).map(
    ([name, command]) => `  atrium ${name.padEnd(18)}${command.summary}`,
  );
  return `atrium: administer an Atrium platform

Commands:
${lines.join("\n")}

It talks to the local platform started by 'npm start' (.atrium/local.json), or to
ATRIUM_URL with ATRIUM_ADMIN_TOKEN. Add --help to any command for its options.
`;
}

async function main(argv: string[]): Promise<number> {
  const [group, verb, ...rest] = argv;
  if (!group || group === "--help" || group === "-h" || group === "help") {
    process.stdout.write(overview());
    return group ? 0 : 2;
  }
  const name = `${group} ${verb ?? ""}`.trim();
  const command = commands[name];
  if (!command) {
    const verbs = Object.keys(commands).filter((n) => n.startsWith(`${group} `));
    const hint = verbs.length > 0 ? `: try ${verbs.map((v) => `'atrium ${v}'`).join(", ")}` : "";
    process.stderr.write(`atrium: unknown command '${name}'${hint}\n\n${overview()}`);
    return 2;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(helpFor(name, command));
    return 0;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
  } catch (err) {
    process.stderr.write(`atrium ${name}: ${(err as Error).message}\n\n${helpFor(name, command)}`);
    return 2;
  }
  const expected = command.positionals?.length ?? 0;
  if (parsed.positionals.length > expected) {
    process.stderr.write(`atrium ${name}: unexpected argument '${parsed.positionals[expected]}'\n`);
    return 2;
  }
  try {
    const result = await command.run(parsed.values, parsed.positionals);
    process.stdout.write(`${parsed.values.json ? JSON.stringify(result.json, null, 2) : result.human}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    const usage = err.exitCode === 2 ? `\n\n${helpFor(name, command)}` : "\n";
    process.stderr.write(`atrium ${name}: ${err.message}${usage}`);
    return err.exitCode;
  }
}

process.exitCode = await main(process.argv.slice(2));

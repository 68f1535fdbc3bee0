/**
 * `atrium`: the admin CLI. Talks to the admin API of the local platform or of a deployed stage.
 * `main` runs one command against the given io, so tests can call it in-process; bin/atrium.js wires it to the process.
 */
import { parseArgs } from "node:util";
import type { CliEnv, Command } from "./command";
import { auditCommands } from "./commands/audit";
import { endpointCommands } from "./commands/endpoints";
import { keyCommands } from "./commands/keys";
import { localFaultCommands } from "./commands/local-faults";
import { reportCommands } from "./commands/report";
import { tenantCommands } from "./commands/tenants";
import { CliError } from "./connection";

const commands: Record<string, Command> = {
  ...tenantCommands,
  ...keyCommands,
  ...endpointCommands,
  ...auditCommands,
  ...reportCommands,
  ...localFaultCommands,
};

/** Where one run reads its settings (ATRIUM_*, AWS_REGION) and writes its output. */
export interface CliIo {
  env: CliEnv;
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Exit codes: what scripts can rely on. */
const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

function helpFor(name: string, command: Command): string {
  const lines = Object.entries(command.options).map(
    ([option, spec]) => `  --${option.padEnd(22)}${spec.description}${spec.multiple ? " (repeatable)" : ""}`,
  );
  return `atrium ${name}: ${command.summary}\n\nUsage: ${command.usage}\n\nOptions:\n${lines.join("\n")}\n  --${"help".padEnd(22)}show this help\n\nExit status: 0 done, 1 refused by the platform or unreachable, 2 usage error.\n`;
}

function overview(): string {
  const lines = Object.entries(commands).map(
    ([name, command]) => `  atrium ${name.padEnd(20)}${command.summary}`,
  );
  return `atrium: administer an Atrium platform

Commands:
${lines.join("\n")}

It talks to the local platform started by 'npm start' (.atrium/local.json), or to a deployed
stage at ATRIUM_URL, signing calls with SigV4 from your AWS credentials (or sending
ATRIUM_ADMIN_TOKEN when set). Add --help to any command for its options; --json for scripts.
Exit status: 0 done, 1 refused by the platform or unreachable, 2 usage error.
`;
}

/** `local fault set ...`, `tenants create ...` or `audit TENANT_ID ...`: the longest command name the arguments start with. */
function findCommand(argv: string[]): { name: string; rest: string[] } | undefined {
  for (let words = Math.min(3, argv.length); words >= 1; words--) {
    const name = argv.slice(0, words).join(" ");
    // Own names only: `atrium constructor` is an unknown command, not Object.prototype's.
    if (Object.hasOwn(commands, name)) return { name, rest: argv.slice(words) };
  }
  return undefined;
}

/** Runs `atrium ARGV...` and returns its exit code; errors other than CliError are bugs and are thrown. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const [group, verb] = argv;
  if (!group || group === "--help" || group === "-h" || group === "help") {
    io.stdout(overview());
    return group ? EXIT.ok : EXIT.usage;
  }
  const found = findCommand(argv);
  if (!found) {
    const name = `${group} ${verb ?? ""}`.trim();
    const verbs = Object.keys(commands).filter((n) => n.startsWith(`${group} `));
    const hint = verbs.length > 0 ? `: try ${verbs.map((v) => `'atrium ${v}'`).join(", ")}` : "";
    io.stderr(`atrium: unknown command '${name}'${hint}\n\n${overview()}`);
    return EXIT.usage;
  }
  const { name, rest } = found;
  const command = commands[name] as Command;
  if (rest.includes("--help") || rest.includes("-h")) {
    io.stdout(helpFor(name, command));
    return EXIT.ok;
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
  } catch (err) {
    io.stderr(`atrium ${name}: ${(err as Error).message}\n\n${helpFor(name, command)}`);
    return EXIT.usage;
  }
  const expected = command.positionals ?? [];
  const usageError = (message: string) => {
    io.stderr(`atrium ${name}: ${message}\n\n${helpFor(name, command)}`);
    return EXIT.usage;
  };
  if (parsed.positionals.length < expected.length) {
    return usageError(`missing ${expected.slice(parsed.positionals.length).join(" ")}`);
  }
  const allowed = expected.length + (command.optionalPositionals?.length ?? 0);
  if (parsed.positionals.length > allowed) {
    return usageError(`unexpected argument '${parsed.positionals[allowed]}'`);
  }
  try {
    const result = await command.run(parsed.values, parsed.positionals, io.env, io);
    if (result.exact) io.stdout(result.human);
    else io.stdout(`${parsed.values.json ? JSON.stringify(result.json, null, 2) : result.human}\n`);
    return EXIT.ok;
  } catch (err) {
    if (!(err instanceof CliError)) throw err;
    if (err.exitCode === EXIT.usage) return usageError(err.message);
    io.stderr(`atrium ${name}: ${err.message}\n`);
    return EXIT.refused;
  }
}

/** What a CLI verb is, and the small checks every verb shares. */
import { CliError } from "./connection";

export type CliEnv = Record<string, string | undefined>;

export interface OptionSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  description: string;
}

export interface Output {
  json: unknown;
  human: string;
  /** `human` is a file's exact text (a CSV, a JSON document): printed as it is, no newline added. */
  exact?: boolean;
}

export interface Command {
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** Names of the positional arguments, all required (main checks their count before `run`). */
  positionals?: string[];
  /** Names of positional arguments that may follow the required ones. */
  optionalPositionals?: string[];
  /** `env` is the run's environment, where the connection is read from (see resolveConnection). */
  run(
    values: Record<string, unknown>,
    positionals: string[],
    env: CliEnv,
    /** Where a long command says how it is getting on (stdout is its result). */
    io?: { stderr(text: string): void },
  ): Promise<Output>;
}

export const jsonOption: OptionSpec = {
  type: "boolean",
  description: "print the result as JSON (for scripts)",
};

export function requireOptions(values: Record<string, unknown>, ...names: string[]): void {
  const missing = names.filter((name) => values[name] === undefined || values[name] === "");
  if (missing.length > 0) throw new CliError(`missing ${missing.map((n) => `--${n}`).join(", ")}`, 2);
}

/** A whole positive number option, or `default` (returned as null) where clearing is allowed. */
export function countOption(
  values: Record<string, unknown>,
  name: string,
  allowDefault = false,
): number | null | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  if (allowDefault && raw === "default") return null;
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || Number(raw) < 1) {
    const also = allowDefault ? " or 'default'" : "";
    throw new CliError(`--${name}: a whole number of at least 1${also}, not '${String(raw)}'`, 2);
  }
  return Number(raw);
}

/** The query string of a paged listing (`?limit=&cursor=`) from --limit and --cursor; "" for neither. */
export function pageQuery(values: Record<string, unknown>): string {
  const limit = countOption(values, "limit");
  const query = new URLSearchParams({
    ...(limit ? { limit: String(limit) } : {}),
    ...(values.cursor ? { cursor: String(values.cursor) } : {}),
  }).toString();
  return query ? `?${query}` : "";
}

/** What an admin change's response says about when it holds everywhere. */
export interface Propagation {
  authorizerCacheFlushed: boolean;
  worstCaseSeconds: number;
}

export function effectLine(propagation: Propagation | undefined): string {
  if (!propagation) return "";
  if (propagation.worstCaseSeconds === 0) return "In effect from the next call.";
  return `In effect from the next call here; on every warm Lambda within ${propagation.worstCaseSeconds} s.`;
}

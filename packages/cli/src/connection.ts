import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";

export interface Connection {
  url: string;
  adminToken: string;
  source: string;
}

/** ATRIUM_URL + ATRIUM_ADMIN_TOKEN when set; otherwise the local platform's `.atrium/local.json`. */
export async function resolveConnection(env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  if (env.ATRIUM_URL) {
    if (!env.ATRIUM_ADMIN_TOKEN) {
      throw new CliError("ATRIUM_URL is set but ATRIUM_ADMIN_TOKEN is not: set both to reach that platform.");
    }
    return {
      url: env.ATRIUM_URL.replace(/\/+$/, ""),
      adminToken: env.ATRIUM_ADMIN_TOKEN,
      source: "ATRIUM_URL",
    };
  }
  const file = join(resolve(env.ATRIUM_DATA_DIR ?? ".atrium"), "local.json");
  let info: { gatewayUrl?: string; adminToken?: string };
  try {
    info = JSON.parse(await readFile(file, "utf8"));
  } catch {
    throw new CliError(
      `No local platform found (${file} is missing). Start one with 'npm start', or set ATRIUM_URL.`,
    );
  }
  if (!info.gatewayUrl || !info.adminToken) throw new CliError(`${file} has no gatewayUrl or adminToken.`);
  return { url: info.gatewayUrl, adminToken: info.adminToken, source: file };
}

/** An error the CLI prints as one line and exits non-zero for, with no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

export interface ApiError {
  error?: { message?: string; code?: string };
}

/** One admin API call; API errors become CliErrors carrying the server's message and code. */
export async function callAdmin<T>(
  connection: Connection,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${connection.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${connection.adminToken}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new CliError(
      `Cannot reach the Atrium API at ${connection.url} (from ${connection.source}). Is 'npm start' running?`,
    );
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const err = (parsed as ApiError | undefined)?.error;
    const code = err?.code ? ` (${err.code})` : "";
    throw new CliError(`${err?.message ?? `HTTP ${response.status}`}${code}`);
  }
  return parsed as T;
}

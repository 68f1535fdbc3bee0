import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { regionFromUrl, type SigV4Auth, signedHeaders, sigV4Auth } from "./sigv4";

/** A bearer admin token (the local platform's fake of IAM, or a stage that issues one), or SigV4. */
export type AdminAuth = { kind: "token"; token: string } | SigV4Auth;

export interface Connection {
  url: string;
  auth: AdminAuth;
  source: string;
}

/**
 * ATRIUM_URL: a deployed stage, signed with SigV4 from the default AWS credential chain (or sent
 * ATRIUM_ADMIN_TOKEN when that is set). Otherwise the local platform's `.atrium/local.json`.
 */
export async function resolveConnection(env: NodeJS.ProcessEnv = process.env): Promise<Connection> {
  if (env.ATRIUM_URL) {
    let url: string;
    try {
      url = new URL(env.ATRIUM_URL).href.replace(/\/+$/, "");
    } catch {
      throw new CliError(`ATRIUM_URL is not a URL: '${env.ATRIUM_URL}'`, 2);
    }
    if (env.ATRIUM_ADMIN_TOKEN) {
      return { url, auth: { kind: "token", token: env.ATRIUM_ADMIN_TOKEN }, source: "ATRIUM_URL" };
    }
    const region = env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? regionFromUrl(url);
    if (!region) {
      throw new CliError(
        `Cannot tell the region of ${url} to sign for: set AWS_REGION (or ATRIUM_ADMIN_TOKEN to send a token).`,
        2,
      );
    }
    return { url, auth: sigV4Auth(region), source: "ATRIUM_URL" };
  }
  const { file, info } = await readLocalPlatform(env);
  if (!info.gatewayUrl || !info.adminToken) throw new CliError(`${file} has no gatewayUrl or adminToken.`);
  return { url: info.gatewayUrl, auth: { kind: "token", token: info.adminToken }, source: file };
}

/** What `.atrium/local.json` tells the CLI (a subset of the platform's LocalInfo). */
export interface LocalPlatformFile {
  gatewayUrl?: string;
  sagemakerUrl?: string;
  adminToken?: string;
  sharedEndpoints?: string[];
}

/** The running local platform's `local.json` (ATRIUM_DATA_DIR, default .atrium). */
export async function readLocalPlatform(
  env: NodeJS.ProcessEnv,
): Promise<{ file: string; info: LocalPlatformFile }> {
  const file = join(resolve(env.ATRIUM_DATA_DIR ?? ".atrium"), "local.json");
  try {
    return { file, info: JSON.parse(await readFile(file, "utf8")) as LocalPlatformFile };
  } catch {
    throw new CliError(
      `No local platform found (${file} is missing). Start one with 'npm start', or set ATRIUM_URL.`,
    );
  }
}

/** An error the CLI prints as one line and exits non-zero for (1 refused, 2 usage), with no stack trace. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

export interface ApiError {
  error?: { message?: string; code?: string };
}

/** Attempts of one call that carries an Idempotency-Key: the server answers it once however often it arrives. */
const IDEMPOTENT_ATTEMPTS = 3;

/**
 * One admin API call; API errors become CliErrors carrying the server's message and code. Every POST
 * (tenants create, keys create and rotate, ...) carries a fresh Idempotency-Key, so when the connection
 * fails or the first attempt is still running, the call is sent again and is still made only once.
 */
export async function callAdmin<T>(
  connection: Connection,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const url = new URL(`${connection.url}${path}`);
  const text = body === undefined ? undefined : JSON.stringify(body);
  const headers: Record<string, string> = text === undefined ? {} : { "content-type": "application/json" };
  const idempotent = method === "POST";
  if (idempotent) headers["idempotency-key"] = randomUUID();
  if (connection.auth.kind === "token") {
    headers.authorization = `Bearer ${connection.auth.token}`;
  } else {
    try {
      Object.assign(headers, await signedHeaders(connection.auth, method, url, headers, text));
    } catch (err) {
      throw new CliError(
        `No AWS credentials to sign the call with (${(err as Error).message}). Configure the AWS CLI's credentials, or set ATRIUM_ADMIN_TOKEN.`,
      );
    }
  }
  for (let attempt = 1; ; attempt++) {
    const last = !idempotent || attempt === IDEMPOTENT_ATTEMPTS;
    let response: Response;
    try {
      response = await fetch(url, { method, headers, ...(text === undefined ? {} : { body: text }) });
    } catch {
      if (!last) continue;
      throw new CliError(
        `Cannot reach the Atrium API at ${connection.url} (from ${connection.source}). Is 'npm start' running?`,
      );
    }
    const raw = await response.text();
    let parsed: unknown;
    try {
      parsed = raw ? JSON.parse(raw) : undefined;
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed as T;
    const err = (parsed as ApiError | undefined)?.error;
    if (!last && err?.code === "idempotency_key_in_use") {
      await sleep(1000 * Math.min(5, Number(response.headers.get("retry-after")) || 1));
      continue;
    }
    const code = err?.code ? ` (${err.code})` : "";
    throw new CliError(`${err?.message ?? `HTTP ${response.status}`}${code}`);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

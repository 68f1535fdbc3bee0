/**
 * `atrium local fault ...`: sets, lists and clears the conditions of the local platform's emulated
 * SageMaker endpoints (latency, errors, a breaking stream, reduced capacity), through the
 * emulator's admin-token route. A deployed stage's endpoints are real, so it refuses ATRIUM_URL.
 */
import { AtriumError } from "@atrium/core/errors";
import {
  type EndpointConditions,
  type EndpointFaultState,
  INJECTABLE_ERRORS,
  parseConditions,
  STREAM_ERRORS,
} from "@atrium/local/sagemaker-faults";
import { type CliEnv, type Command, jsonOption } from "../command";
import { CliError, type Connection, callAdmin, readLocalPlatform } from "../connection";
import { table } from "../format";

/** Each flag of `set` and the condition it gives. */
const CONDITION_FLAGS = {
  "latency-ms": "latencyMs",
  "jitter-ms": "jitterMs",
  "error-rate": "errorRate",
  error: "error",
  "model-status": "originalStatusCode",
  "stream-error": "streamError",
  "after-parts": "afterParts",
  capacity: "capacity",
} as const satisfies Record<string, keyof EndpointConditions>;

const NUMBER_FLAGS = new Set<string>([
  "latency-ms",
  "jitter-ms",
  "error-rate",
  "model-status",
  "after-parts",
  "capacity",
]);

const faultsPath = (endpointName?: string) =>
  endpointName === undefined ? "/_atrium/faults" : `/_atrium/faults/${encodeURIComponent(endpointName)}`;

/** The local SageMaker emulator's address and the admin token, from `.atrium/local.json`. */
async function localEmulator(env: CliEnv): Promise<{ connection: Connection; sharedEndpoints: string[] }> {
  if (env.ATRIUM_URL) {
    throw new CliError(
      `'atrium local fault' works only against the local platform ('npm start'); ATRIUM_URL (${env.ATRIUM_URL}) is a deployed stage, whose SageMaker endpoints are real. Unset ATRIUM_URL to use the local one.`,
      2,
    );
  }
  const { file, info } = await readLocalPlatform(env);
  if (!info.sagemakerUrl || !info.adminToken) {
    throw new CliError(`${file} has no sagemakerUrl or adminToken: restart 'npm start'.`);
  }
  return {
    connection: { url: info.sagemakerUrl, auth: { kind: "token", token: info.adminToken }, source: file },
    sharedEndpoints: info.sharedEndpoints ?? [],
  };
}

/** The conditions the flags ask for, checked by the emulator's own rules; a usage error names the flag. */
function conditionsFrom(values: Record<string, unknown>): EndpointConditions {
  const given: Record<string, unknown> = {};
  for (const [flag, field] of Object.entries(CONDITION_FLAGS)) {
    const raw = values[flag];
    if (raw === undefined) continue;
    const number = Number(raw);
    if (NUMBER_FLAGS.has(flag) && (String(raw).trim() === "" || !Number.isFinite(number))) {
      throw new CliError(`--${flag}: a number, not '${String(raw)}'`, 2);
    }
    given[field] = NUMBER_FLAGS.has(flag) ? number : raw;
  }
  if (Object.keys(given).length === 0) {
    throw new CliError("give at least one condition; 'atrium local fault clear' removes them", 2);
  }
  try {
    return parseConditions(given);
  } catch (err) {
    if (!(err instanceof AtriumError)) throw err;
    const flag = Object.entries(CONDITION_FLAGS).find(([, field]) => field === err.param)?.[0];
    throw new CliError(flag ? err.message.replace(err.param as string, `--${flag}`) : err.message, 2);
  }
}

/** `200±50 ms`, `30% ThrottlingException`, ... : one endpoint's conditions in a few words each. */
function describeConditions(c: EndpointConditions): {
  latency: string;
  errors: string;
  stream: string;
  capacity: string;
} {
  const status = c.originalStatusCode === undefined ? "" : ` ${c.originalStatusCode}`;
  return {
    latency: c.latencyMs === undefined ? "-" : `${c.latencyMs}${c.jitterMs ? `±${c.jitterMs}` : ""} ms`,
    errors:
      c.error === undefined ? "-" : `${Math.round((c.errorRate ?? 1) * 1000) / 10}% ${c.error}${status}`,
    stream: c.streamError === undefined ? "-" : `${c.streamError} after ${c.afterParts ?? 0} parts`,
    capacity: c.capacity === undefined ? "-" : String(c.capacity),
  };
}

function summary(state: EndpointFaultState): string {
  const d = describeConditions(state.conditions);
  const parts = [
    d.latency !== "-" ? `latency ${d.latency}` : "",
    d.errors !== "-" ? `${d.errors} of calls` : "",
    d.stream !== "-" ? `streams end with ${d.stream}` : "",
    d.capacity !== "-" ? `at most ${d.capacity} calls in flight` : "",
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(", ") : "no conditions";
}

export const localFaultCommands: Record<string, Command> = {
  "local fault set": {
    summary: "set a local endpoint's injected latency, errors, stream failure and capacity",
    usage:
      "atrium local fault set ENDPOINT_NAME [--latency-ms N [--jitter-ms N]] [--error-rate F] [--error NAME [--model-status N]] [--stream-error NAME [--after-parts N]] [--capacity N] [--json]",
    positionals: ["ENDPOINT_NAME"],
    options: {
      "latency-ms": { type: "string", description: "added before each call reaches the model" },
      "jitter-ms": { type: "string", description: "the latency varies within ± this" },
      "error-rate": {
        type: "string",
        description: "share of calls (0 to 1) answered with --error (default 1 with --error)",
      },
      error: {
        type: "string",
        description: `the error: ${INJECTABLE_ERRORS.join(", ")} (default ThrottlingException)`,
      },
      "model-status": {
        type: "string",
        description: "with --error ModelError: the status the model answered (400-599)",
      },
      "stream-error": {
        type: "string",
        description: `streamed calls end with ${STREAM_ERRORS.join(" or ")}`,
      },
      "after-parts": {
        type: "string",
        description: "with --stream-error: payload parts sent first (default 0)",
      },
      capacity: { type: "string", description: "calls in flight at most; one more gets ThrottlingException" },
      json: jsonOption,
    },
    async run(values, positionals, env) {
      const [endpointName] = positionals as [string];
      const conditions = conditionsFrom(values);
      const { connection } = await localEmulator(env);
      const state = await callAdmin<EndpointFaultState>(
        connection,
        "PUT",
        faultsPath(endpointName),
        conditions,
      );
      return {
        json: state,
        human: `Endpoint ${endpointName}: ${summary(state)} (replacing what was set before). In effect from the next call.`,
      };
    },
  },

  "local fault list": {
    summary: "list local endpoints' conditions and calls in flight",
    usage: "atrium local fault list [ENDPOINT_NAME] [--json]",
    optionalPositionals: ["ENDPOINT_NAME"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [endpointName] = positionals;
      const { connection, sharedEndpoints } = await localEmulator(env);
      const states =
        endpointName === undefined
          ? (await callAdmin<{ endpoints: EndpointFaultState[] }>(connection, "GET", faultsPath())).endpoints
          : [await callAdmin<EndpointFaultState>(connection, "GET", faultsPath(endpointName))];
      const rows = states.map((s) => {
        const d = describeConditions(s.conditions);
        return [s.endpointName, String(s.inFlight), d.capacity, d.latency, d.errors, d.stream];
      });
      const empty = `No endpoint has conditions or calls in flight. Shared endpoints: ${sharedEndpoints.join(", ") || "none"}.`;
      return {
        json: endpointName === undefined ? { endpoints: states } : states[0],
        human: table(["ENDPOINT", "IN FLIGHT", "CAPACITY", "LATENCY", "ERRORS", "STREAM"], rows, empty),
      };
    },
  },

  "local fault clear": {
    summary: "clear one local endpoint's conditions, or every endpoint's",
    usage: "atrium local fault clear [ENDPOINT_NAME] [--json]",
    optionalPositionals: ["ENDPOINT_NAME"],
    options: { json: jsonOption },
    async run(_values, positionals, env) {
      const [endpointName] = positionals;
      const { connection } = await localEmulator(env);
      const result = await callAdmin<{ cleared: string[] }>(connection, "DELETE", faultsPath(endpointName));
      const human =
        endpointName !== undefined
          ? `Endpoint ${endpointName}: no conditions; its calls go to the model as they come.`
          : result.cleared.length === 0
            ? "No endpoint had conditions."
            : `Cleared the conditions of ${result.cleared.join(", ")}.`;
      return { json: result, human };
    },
  },
};

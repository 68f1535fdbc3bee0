/**
 * The local SageMaker emulator's fault controls (not a SageMaker API): a person sets, reads and
 * clears an endpoint's conditions while the platform runs, with the local admin token.
 *
 *   GET    /_atrium/faults                   every endpoint with conditions or calls in flight
 *   GET    /_atrium/faults/{endpointName}    one endpoint's conditions and calls in flight
 *   PUT    /_atrium/faults/{endpointName}    replaces its conditions (a JSON EndpointConditions)
 *   DELETE /_atrium/faults[/{endpointName}]  clears one endpoint's conditions, or every endpoint's
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { AtriumError, errorBody, invalidRequest, notFound } from "@atrium/core/errors";
import { collectHeaders } from "./gateway-event";
import { isAdminToken } from "./gateway-iam";
import { readBody, safeDecode } from "./http-server";
import { type EndpointFaults, parseConditions } from "./sagemaker-faults";

export const FAULTS_PATH = /^\/_atrium\/faults(?:\/([^/]+))?\/?$/;
const MAX_CONDITIONS_BYTES = 16 * 1024;

export interface FaultControlOptions {
  /** The local admin token (the platform's fake of IAM); a call without it is refused. */
  adminToken: string;
  faults: EndpointFaults;
  endpointExists: (endpointName: string) => Promise<boolean>;
}

/** Answers one control call; `endpointSegment` is the path's endpoint name, still encoded. */
export async function handleFaultControl(
  req: IncomingMessage,
  res: ServerResponse,
  endpointSegment: string | undefined,
  options: FaultControlOptions,
): Promise<void> {
  const body = await readBody(req, MAX_CONDITIONS_BYTES);
  try {
    checkAdminToken(req, options.adminToken);
    const endpointName = endpointSegment === undefined ? undefined : safeDecode(endpointSegment);
    if (endpointName !== undefined && !(await options.endpointExists(endpointName))) {
      throw notFound(
        "unknown_endpoint",
        `No endpoint named '${endpointName}' on this platform (a shared endpoint of the stage config, or one dedicated to a tenant).`,
        "endpointName",
      );
    }
    const { faults } = options;
    switch (`${req.method} ${endpointName === undefined ? "all" : "one"}`) {
      case "GET all":
        return sendJson(res, 200, { endpoints: faults.list() });
      case "GET one":
        return sendJson(res, 200, faults.state(endpointName as string));
      case "PUT one": {
        faults.set(endpointName as string, parseConditions(parseJson(body)));
        return sendJson(res, 200, faults.state(endpointName as string));
      }
      case "DELETE all":
      case "DELETE one":
        return sendJson(res, 200, { cleared: faults.clear(endpointName) });
      default:
        throw new AtriumError(
          405,
          "invalid_request_error",
          "method_not_allowed",
          `${req.method} is not a fault control: use GET or DELETE on /_atrium/faults, GET, PUT or DELETE on /_atrium/faults/{endpointName}.`,
        );
    }
  } catch (err) {
    if (!(err instanceof AtriumError)) throw err;
    sendJson(res, err.status, errorBody(err));
  }
}

function checkAdminToken(req: IncomingMessage, adminToken: string): void {
  const authorization = collectHeaders(req).byName.get("authorization");
  if (!authorization || authorization.length === 0) {
    throw new AtriumError(
      401,
      "authentication_error",
      "missing_admin_credentials",
      "The fault controls need the local admin token: 'Authorization: Bearer <adminToken>' from .atrium/local.json.",
    );
  }
  if (!isAdminToken(authorization, adminToken)) {
    throw new AtriumError(
      403,
      "permission_error",
      "invalid_admin_credentials",
      "The admin token is not valid.",
    );
  }
}

function parseJson(body: Buffer | undefined): unknown {
  if (body === undefined) {
    throw invalidRequest("invalid_fault", `The conditions must fit in ${MAX_CONDITIONS_BYTES} bytes.`);
  }
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw invalidRequest("invalid_fault", "The conditions must be a JSON object.");
  }
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "content-type": "application/json", "content-length": body.length });
  res.end(body);
}

import { DynamoClient } from "@atrium/core/dynamodb/client";
import { isTenantId } from "@atrium/core/ids";
import { config, documentClient, ledgerClient } from "./clients";
import { SageMakerRuntime } from "./sagemaker-runtime";
import { StackEnv, TENANT_TAG } from "./stack-env";
import { type SessionCredentials, StsClient } from "./sts";
import { dynamoTimeouts, ledgerTimeouts, sagemakerTimeouts, stsTimeouts } from "./timeouts";

/** The AWS clients one tenant's call may use. */
export interface TenantClients {
  dynamo: DynamoClient;
  /** For the usage ledger's writes, which are never retried (docs/adr/0010). */
  ledger: DynamoClient;
  sagemaker: SageMakerRuntime;
}

/** Role chaining (Lambda role → tenant role) caps a session at one hour. */
const SESSION_SECONDS = 3600;
/** Renew a tenant's session this long before it expires, so no call signs with credentials about to lapse. */
export const REFRESH_BEFORE_EXPIRY_MS = 5 * 60_000;
/** Tenants whose clients a warm container keeps; the least recently used is dropped beyond this. */
const MAX_TENANTS = 500;

type CredentialProvider = () => Promise<SessionCredentials>;

// Only the /v1 functions call models, so the container's SageMaker client lives here, not in ./clients.
// Its endpoint comes from AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME under `npm start`, as the SDKs read it.
const containerClients: TenantClients = {
  dynamo: documentClient,
  ledger: ledgerClient,
  sagemaker: new SageMakerRuntime(sagemakerTimeouts),
};
const cache = new Map<string, { roleArn: string; clients: TenantClients }>();
/** AssumeRole with the function's own credentials: built on the first tenant session, then shared. */
let sts: StsClient | undefined;

/**
 * Clients whose every request runs as `tenantId`: an STS session of the stage's tenant access role
 * tagged `TenantId=<id>`, so IAM limits it to that tenant's items and models (docs/adr/0006). One
 * session per tenant, shared by both clients, cached in the container and renewed before it expires.
 * Without ATRIUM_TENANT_ROLE_ARN (the local platform, which has no STS) the container's own clients.
 */
export function tenantClients(tenantId: string): TenantClients {
  // The id becomes an IAM policy variable's value: it must never carry a wildcard or the key delimiter.
  if (!isTenantId(tenantId)) throw new Error(`Not a tenant id: ${JSON.stringify(tenantId)}`);
  const roleArn = process.env[StackEnv.tenantRoleArn];
  if (!roleArn) return containerClients;

  const cached = cache.get(tenantId);
  if (cached?.roleArn === roleArn) {
    // Re-inserted so the Map's order is least recently used first.
    cache.delete(tenantId);
    cache.set(tenantId, cached);
    return cached.clients;
  }
  sts ??= new StsClient(stsTimeouts);
  const client = sts;
  const credentials = sharedSession(() =>
    client.assumeRole({
      roleArn,
      // Shows the tenant in CloudTrail next to every call made with the session.
      roleSessionName: `atrium-${tenantId}`,
      durationSeconds: SESSION_SECONDS,
      tags: [{ key: TENANT_TAG, value: tenantId }],
    }),
  );
  const clients: TenantClients = {
    dynamo: new DynamoClient({ ...dynamoTimeouts(config.dynamodbRequestTimeoutMs), credentials }),
    ledger: new DynamoClient({ ...ledgerTimeouts(config.dynamodbRequestTimeoutMs), credentials }),
    sagemaker: new SageMakerRuntime({ ...sagemakerTimeouts, credentials }),
  };
  cache.set(tenantId, { roleArn, clients });
  if (cache.size > MAX_TENANTS) {
    const oldest = cache.keys().next().value;
    if (oldest !== undefined) cache.delete(oldest);
  }
  return clients;
}

/** One session at a time for a provider: concurrent callers share it, and it is renewed before expiry. */
function sharedSession(provider: CredentialProvider): CredentialProvider {
  let session: { credentials: Promise<SessionCredentials>; renewAt: number } | undefined;
  return () => {
    if (!session || Date.now() >= session.renewAt) {
      // Until STS answers, callers wait on this session rather than starting another.
      const current = { credentials: provider(), renewAt: Number.POSITIVE_INFINITY };
      session = current;
      current.credentials.then(
        ({ expiration }) => {
          current.renewAt = expiration.getTime() - REFRESH_BEFORE_EXPIRY_MS;
        },
        () => {
          // A failed AssumeRole is retried by the next call instead of being remembered.
          if (session === current) session = undefined;
        },
      );
    }
    return session.credentials;
  };
}

/**
 * SigV4 signing of admin calls to a deployed stage, whose /admin routes API Gateway authorises with
 * IAM. Credentials come from the default AWS chain (env, SSO, profiles, IMDS), as the AWS CLI's do.
 */
import { Sha256 } from "@aws-crypto/sha256-js";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { HttpRequest } from "@smithy/protocol-http";
import { SignatureV4 } from "@smithy/signature-v4";

/** API Gateway's signing name for calls to a deployed API. */
export const SIGNING_SERVICE = "execute-api";

export interface SigV4Auth {
  kind: "sigv4";
  region: string;
  credentials: ReturnType<typeof fromNodeProviderChain>;
}

/** `https://<api>.execute-api.<region>.amazonaws.com/<stage>` → the region; undefined for other hosts. */
export function regionFromUrl(url: string): string | undefined {
  const host = new URL(url).hostname;
  return /^[a-z0-9]+\.execute-api(?:-fips)?\.([a-z]{2}(?:-[a-z]+)+-\d)\.amazonaws\.com(?:\.cn)?$/.exec(
    host,
  )?.[1];
}

export function sigV4Auth(region: string): SigV4Auth {
  return { kind: "sigv4", region, credentials: fromNodeProviderChain() };
}

/** The headers to send so API Gateway's IAM authoriser accepts the call (Authorization, X-Amz-Date, ...). */
export async function signedHeaders(
  auth: SigV4Auth,
  method: string,
  url: URL,
  headers: Record<string, string>,
  body: string | undefined,
): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    service: SIGNING_SERVICE,
    region: auth.region,
    credentials: auth.credentials,
    sha256: Sha256,
  });
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of url.searchParams) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...[seen].flat(), value];
  }
  const request = new HttpRequest({
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    // Already percent-encoded once by URL; the signer encodes each segment again, as SigV4 wants for API Gateway.
    path: url.pathname,
    query,
    headers: { ...headers, host: url.host },
    ...(body === undefined ? {} : { body }),
  });
  const signed = await signer.sign(request);
  // fetch sets Host itself, from the same URL.
  const { host: _host, ...rest } = signed.headers;
  return rest;
}

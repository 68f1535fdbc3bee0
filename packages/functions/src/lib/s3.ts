import { isIP } from "node:net";
import {
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  configuredEndpoint,
  regionalHost,
} from "@atrium/core/aws-http";
import { sha256Hex } from "@atrium/core/sigv4";
import { uriEncode, xmlError } from "./aws-xml";

const s3Host = regionalHost("s3", false);

/**
 * A bucket the SDK addresses by host name (`<bucket>.s3.<region>.<suffix>`): a DNS label of 3 to 63
 * lower-case letters, digits and hyphens, not an IP address. Others (dotted names, say) go in the path.
 */
export const virtualHostable = (bucket: string): boolean =>
  /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/.test(bucket) && !isIP(bucket);

/** S3, as one bucket's requests reach it: on the bucket's own host when it can have one. */
export function s3Service(bucket: string): AwsService {
  const virtual = virtualHostable(bucket);
  return {
    title: "S3",
    signingName: "s3",
    endpointId: "S3",
    host: (region, fips) => (virtual ? `${bucket}.${s3Host(region, fips)}` : s3Host(region, fips)),
    pathSignedAsSent: true,
  };
}

/**
 * Where a bucket's requests go: the configured endpoint (none: the region's, s3Service's host) and
 * what each object's path starts with. A configured endpoint as the SDK's endpoint rules address it:
 * the bucket in its host (a dotted one too, over plain http), unless the host is an IP address or
 * the bucket cannot be a host name, then in the path.
 */
export function bucketAddress(bucket: string, configured?: string): { endpoint?: string; prefix: string } {
  const virtual = virtualHostable(bucket);
  if (!configured) return { prefix: virtual ? "" : `/${uriEncode(bucket)}` };
  const url = new URL(configured);
  const base = url.pathname.replace(/\/+$/, "");
  const ip = isIP(url.hostname.replace(/^\[|\]$/g, "")) !== 0;
  const dotted = url.protocol === "http:" && bucket.split(".").every(virtualHostable);
  if (!ip && (virtual || dotted)) return { endpoint: `${url.protocol}//${bucket}.${url.host}`, prefix: base };
  return { endpoint: `${url.protocol}//${url.host}`, prefix: `${base}/${uriEncode(bucket)}` };
}

export interface PutObjectInput {
  key: string;
  body: string | Uint8Array;
  contentType: string;
  /** The KMS key the object is encrypted with (SSE-KMS, with an S3 Bucket Key). */
  kmsKeyId: string;
}

/** One bucket's PutObject. */
export class S3Bucket {
  readonly bucket: string;
  readonly #connection: AwsConnection;
  /** What each object's path starts with: the endpoint's own path, and the bucket when it is not in the host. */
  readonly #prefix: string;

  constructor(bucket: string, options: ConnectionOptions) {
    this.bucket = bucket;
    const service = s3Service(bucket);
    const { endpoint, prefix } = bucketAddress(
      bucket,
      options.endpoint ?? configuredEndpoint(service.endpointId),
    );
    this.#prefix = prefix;
    this.#connection = new AwsConnection(service, { ...options, endpoint });
  }

  /** Writes the object, encrypted with the KMS key and an S3 Bucket Key. */
  async putObject(input: PutObjectInput): Promise<{ etag?: string }> {
    const body = typeof input.body === "string" ? Buffer.from(input.body) : input.body;
    // The key's segments each encoded once, its slashes kept: S3 signs this path as it is.
    const path = `${this.#prefix}/${input.key.split("/").map(uriEncode).join("/")}`;
    const headers = {
      "content-type": input.contentType,
      "x-amz-server-side-encryption": "aws:kms",
      "x-amz-server-side-encryption-aws-kms-key-id": input.kmsKeyId,
      "x-amz-server-side-encryption-bucket-key-enabled": "true",
      "x-amz-content-sha256": sha256Hex(body),
    };
    const { response } = await this.#connection.exchange(
      // x-id: as the SDK sends it (its operation's name); S3 ignores it.
      { method: "PUT", path, query: "x-id=PutObject", headers, body },
      xmlError,
    );
    const etag = response.headers.etag;
    return etag ? { etag } : {};
  }
}

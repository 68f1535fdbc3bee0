/**
 * Atrium's SigV4 signer against the AWS SDK's own (@smithy/signature-v4), on any request: the same
 * Authorization for the same method, path, query, headers, body, credentials and time. And the
 * local gateway's check (which the SDK's signatures pass in packages/local/test) accepts what it signs.
 */
import { createHash } from "node:crypto";
import { checkSignature } from "@atrium/local/sigv4";
import { SignatureV4 } from "@smithy/signature-v4";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { NodeSha256 } from "../../../test/support/node-sha256";
import { type AwsCredentials, signRequest } from "../src/sigv4";

const token = fc.stringMatching(/^[A-Za-z0-9]{1,12}$/);
const text = fc.string({ unit: "grapheme", maxLength: 12 });
const request = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
  segments: fc.array(
    fc.oneof(
      token,
      text.filter((s) => s !== "" && s !== "." && s !== ".."),
    ),
    {
      minLength: 1,
      maxLength: 4,
    },
  ),
  query: fc.dictionary(token, text, { maxKeys: 3 }),
  headers: fc.dictionary(
    fc.oneof(
      token.map((name) => `x-amzn-test-${name.toLowerCase()}`),
      // Headers the SDK's signer never signs: each must be left out the same way.
      fc.constantFrom(
        "user-agent",
        "x-amzn-trace-id",
        "cache-control",
        "proxy-authorization",
        "sec-fetch-mode",
      ),
    ),
    fc.stringMatching(/^[ -~]{0,20}$/),
    { maxKeys: 4 },
  ),
  body: fc.uint8Array({ maxLength: 64 }),
  credentials: fc.record(
    {
      accessKeyId: fc.stringMatching(/^AKIA[A-Z0-9]{12}$/),
      secretAccessKey: fc.stringMatching(/^[A-Za-z0-9/+]{40}$/),
      sessionToken: fc.stringMatching(/^[A-Za-z0-9/+=]{10,40}$/),
    },
    { requiredKeys: ["accessKeyId", "secretAccessKey"] },
  ),
  region: fc.constantFrom("eu-west-1", "us-east-1", "ap-southeast-2"),
  service: fc.constantFrom("sagemaker", "dynamodb", "execute-api"),
  at: fc.date({ min: new Date("2020-01-01"), max: new Date("2035-01-01"), noInvalidDate: true }),
});

type Generated = typeof request extends fc.Arbitrary<infer T> ? T : never;

function atriumSigned(r: Generated) {
  const path = `/${r.segments.map(encodeURIComponent).join("/")}`;
  const query = new URLSearchParams(r.query).toString().replace(/\+/g, "%20");
  return signRequest(
    {
      method: r.method,
      host: "runtime.sagemaker.eu-west-1.amazonaws.com",
      path,
      query,
      headers: r.headers,
      body: r.body,
    },
    r.credentials as AwsCredentials,
    { region: r.region, service: r.service },
    r.at,
  );
}

async function sdkSigned(r: Generated) {
  const signer = new SignatureV4({
    service: r.service,
    region: r.region,
    credentials: r.credentials as AwsCredentials,
    sha256: NodeSha256,
    applyChecksum: false,
  });
  const signed = await signer.sign(
    {
      method: r.method,
      protocol: "https:",
      hostname: "runtime.sagemaker.eu-west-1.amazonaws.com",
      path: `/${r.segments.map(encodeURIComponent).join("/")}`,
      query: r.query,
      headers: { ...r.headers, host: "runtime.sagemaker.eu-west-1.amazonaws.com" },
      body: r.body,
    },
    { signingDate: r.at },
  );
  return signed.headers;
}

/** An S3 request: any key, its segments (empty and dot ones too) each percent-encoded once. */
const s3Request = fc.record({
  base: request,
  key: fc.array(fc.oneof(token, text, fc.constantFrom("", ".", "..", "a b", "%", "~!*'()")), {
    minLength: 1,
    maxLength: 5,
  }),
});

/** RFC 3986 encoding, as the SDK's extendedEncodeURIComponent writes an S3 key's segments. */
const uriEncode = (segment: string) =>
  encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

describe("signRequest with pathAsSent (S3)", () => {
  it("signs any S3 request exactly as the AWS SDK's signer does with uriEscapePath: false", async () => {
    await fc.assert(
      fc.asyncProperty(s3Request, async ({ base: r, key }) => {
        const host = "atrium-reports.s3.eu-west-1.amazonaws.com";
        const path = `/${key.map(uriEncode).join("/")}`;
        const query = new URLSearchParams(r.query).toString().replace(/\+/g, "%20");
        const headers = {
          ...r.headers,
          "x-amz-content-sha256": createHash("sha256").update(r.body).digest("hex"),
        };
        const ours = signRequest(
          { method: r.method, host, path, query, headers, body: r.body, pathAsSent: true },
          r.credentials as AwsCredentials,
          { region: r.region, service: "s3" },
          r.at,
        );
        const signer = new SignatureV4({
          service: "s3",
          region: r.region,
          credentials: r.credentials as AwsCredentials,
          sha256: NodeSha256,
          uriEscapePath: false,
          applyChecksum: false,
        });
        const theirs = await signer.sign(
          {
            method: r.method,
            protocol: "https:",
            hostname: host,
            path,
            query: r.query,
            headers: { ...headers, host },
            body: r.body,
          },
          { signingDate: r.at },
        );
        expect(ours.authorization).toBe(theirs.headers.authorization);
      }),
      { numRuns: 300 },
    );
  });

  it("signs a path with dot and empty segments as it is, where other services' signing resolves them", () => {
    const base = {
      method: "PUT",
      host: "h",
      path: "/a/./b/../c//d%20e",
      headers: {},
      body: new Uint8Array(),
    };
    const credentials = { accessKeyId: "AKIAX", secretAccessKey: "s" };
    const at = new Date("2026-12-01T00:00:00Z");
    const asSent = signRequest(
      { ...base, pathAsSent: true },
      credentials,
      { region: "eu-west-1", service: "s3" },
      at,
    );
    const normalised = signRequest(base, credentials, { region: "eu-west-1", service: "s3" }, at);
    expect(asSent.authorization).not.toBe(normalised.authorization);
    // Without the flag, the path is normalised and encoded again: the same as its normal form's.
    const resolved = signRequest(
      { ...base, path: "/a/c/d%20e" },
      credentials,
      { region: "eu-west-1", service: "s3" },
      at,
    );
    expect(normalised.authorization).toBe(resolved.authorization);
  });
});

describe("signRequest", () => {
  it("signs any request exactly as the AWS SDK's signer does", async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const ours = atriumSigned(r);
        const theirs = await sdkSigned(r);
        expect(ours.authorization).toBe(theirs.authorization);
        expect(ours["x-amz-date"]).toBe(theirs["x-amz-date"]);
        expect(ours["x-amz-security-token"]).toBe(theirs["x-amz-security-token"]);
      }),
      { numRuns: 300 },
    );
  });

  it("signs the session token of temporary credentials, and no token for long-term ones", () => {
    const base = { method: "POST", host: "h", path: "/", headers: {}, body: new Uint8Array() };
    const scope = { region: "eu-west-1", service: "sagemaker" };
    const temporary = signRequest(
      base,
      { accessKeyId: "ASIAX", secretAccessKey: "s", sessionToken: "t" },
      scope,
    );
    expect(temporary["x-amz-security-token"]).toBe("t");
    expect(temporary.authorization).toContain("SignedHeaders=host;x-amz-date;x-amz-security-token,");
    const longTerm = signRequest(base, { accessKeyId: "AKIAX", secretAccessKey: "s" }, scope);
    expect(longTerm).not.toHaveProperty("x-amz-security-token");
  });

  it("is accepted by the local gateway's signature check, and refused there once a signed byte changes", () => {
    const credentials = { accessKeyId: "AKIDLOCAL", secretAccessKey: "local-secret" };
    const body = Buffer.from('{"inputs":"hi"}');
    const signed = signRequest(
      {
        method: "POST",
        host: "127.0.0.1:4000",
        path: "/endpoints/chat-ep/invocations",
        headers: { "content-type": "application/json" },
        body,
      },
      credentials,
      { region: "eu-west-1", service: "sagemaker" },
    );
    const rawHeaders = Object.entries(signed).flat();
    const received = { method: "POST", url: "/endpoints/chat-ep/invocations", rawHeaders, body };
    expect(checkSignature(received, credentials, "sagemaker")).toBeUndefined();
    expect(
      checkSignature({ ...received, body: Buffer.from('{"inputs":"ho"}') }, credentials, "sagemaker"),
    ).toBe("InvalidSignatureException");
    expect(
      checkSignature({ ...received, url: "/endpoints/other-ep/invocations" }, credentials, "sagemaker"),
    ).toBe("InvalidSignatureException");
  });
});

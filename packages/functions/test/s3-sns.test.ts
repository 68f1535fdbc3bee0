/**
 * lib/s3.ts and lib/sns.ts against the AWS SDK's S3 and SNS clients: a local recording server (the
 * services' endpoint through AWS_ENDPOINT_URL_S3 and AWS_ENDPOINT_URL_SNS) takes the same PutObject
 * and Publish from both, and the tests compare what arrived: method, path, query, body and every
 * header both send; each of Atrium's signatures is re-signed with the SDK's signer
 * (@smithy/signature-v4, with S3's `uriEscapePath: false`). And the services' XML errors read the same.
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import { SignatureV4 } from "@smithy/signature-v4";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { NodeSha256 } from "../../../test/support/node-sha256";
import { S3Bucket } from "../src/lib/s3";
import { SnsClient } from "../src/lib/sns";

const credentials = { accessKeyId: "AKIAREPORTSTEST", secretAccessKey: "reports-test-secret" };
const REGION = "eu-west-1";
const BUCKET = "atrium-prod-reports-123456789012";
const KMS_KEY = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-aaaa-bbbb-cccc-1234567890ab";
const TOPIC = "arn:aws:sns:eu-west-1:123456789012:atrium-prod-budget-alerts";
// A key with every kind of character a segment may need encoded, once: space, +, ~, !'()*, non-ASCII.
const KEY = "daily/2026-12 01/tenant+a~(b)*!'é/report.csv";
const BODY = "tenant,calls,cost\ntn-a,12,0.40 €\n";
const SUBJECT = "Budget 80% reached (tn-a) * ~!";
const MESSAGE = "Tenant tn-a has used 80% of its monthly budget.\nSee https://example.com/?a=1&b=2 + more";

/** Headers only the SDK sends (or that it alone computes differently): left out of the comparison. */
const SDK_ONLY =
  /^(user-agent|x-amz-user-agent|amz-sdk-.*|authorization|x-amz-date|x-amz-checksum-.*|x-amz-sdk-checksum-algorithm)$/;

interface Recorded {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: Buffer;
}

/** Takes any request, remembers it, and answers as S3 or SNS would: success, or the error `failWith` names. */
class Recorder {
  readonly requests: Recorded[] = [];
  fail = false;
  #server?: Server;

  async start(): Promise<string> {
    this.#server = createServer(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const url = new URL(req.url ?? "/", "http://recorder");
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) headers[name] = String(value);
      this.requests.push({
        method: req.method ?? "",
        path: url.pathname,
        query: url.search.slice(1),
        headers,
        body: Buffer.concat(chunks),
      });
      const sns = req.method === "POST";
      if (sns && this.fail) {
        res.writeHead(404, { "content-type": "text/xml" });
        res.end(
          `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><Error><Type>Sender</Type><Code>NotFound</Code><Message>Topic does not exist &amp; never did</Message></Error><RequestId>0a1b</RequestId></ErrorResponse>`,
        );
      } else if (sns) {
        res.writeHead(200, { "content-type": "text/xml" });
        res.end(
          `<PublishResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/"><PublishResult><MessageId>94f20ce6-13c5-43a0-9a9e-ca52d816e90b</MessageId></PublishResult><ResponseMetadata><RequestId>0a1b</RequestId></ResponseMetadata></PublishResponse>`,
        );
      } else if (this.fail) {
        res.writeHead(403, { "content-type": "application/xml" });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied &amp; logged</Message><RequestId>R1</RequestId><HostId>H1</HostId></Error>`,
        );
      } else {
        res.writeHead(200, { etag: '"9b2cf535f27731c974343645a3985328"' });
        res.end();
      }
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  take(): Recorded {
    const request = this.requests.shift();
    if (!request) throw new Error("No request was recorded");
    return request;
  }

  stop() {
    this.#server?.closeAllConnections();
    this.#server?.close();
  }
}

/** `20261201T080142Z` → its Date. */
const fromAmzDate = (amzDate: string) =>
  new Date(amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, "$1-$2-$3T$4:$5:$6Z"));

/** The Authorization the SDK's signer gives the recorded request, signed at the time it carries. */
async function sdkSignatureOf(request: Recorded, service: "s3" | "sns"): Promise<string> {
  const signer = new SignatureV4({
    service,
    region: REGION,
    credentials,
    sha256: NodeSha256,
    uriEscapePath: service !== "s3",
    applyChecksum: false,
  });
  const { authorization: _, ...headers } = request.headers;
  const query: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(request.query)) query[name] = value;
  const signed = await signer.sign(
    {
      method: request.method,
      protocol: "http:",
      hostname: "127.0.0.1",
      path: request.path,
      query,
      headers,
      body: request.body,
    },
    { signingDate: fromAmzDate(request.headers["x-amz-date"] ?? "") },
  );
  return String(signed.headers.authorization);
}

const signedHeaders = (authorization = "") =>
  (/SignedHeaders=([^,]+)/.exec(authorization)?.[1] ?? "").split(";");

/** The SDK's and Atrium's requests alike: method, path, query, body, and every header both send. */
function expectSameRequest(sdk: Recorded, ours: Recorded) {
  expect(ours.method).toBe(sdk.method);
  expect(ours.path).toBe(sdk.path);
  expect(ours.query).toBe(sdk.query);
  expect(ours.body.toString("utf8")).toBe(sdk.body.toString("utf8"));
  const shared = Object.keys(ours.headers).filter((name) => name in sdk.headers && !SDK_ONLY.test(name));
  expect(shared).toEqual(expect.arrayContaining(["host", "content-type", "content-length"]));
  for (const name of shared) expect(ours.headers[name], name).toBe(sdk.headers[name]);
  // Atrium signs what the SDK signs, but the SDK's own headers.
  const sdkSigned = signedHeaders(sdk.headers.authorization).filter(
    (name) => !/^(amz-sdk-|x-amz-user-agent)/.test(name),
  );
  const oursSigned = signedHeaders(ours.headers.authorization);
  expect(sdkSigned.filter((name) => !oursSigned.includes(name))).toEqual(
    // SNS: the SDK sends (and signs) the body's hash, which only S3 needs.
    ours.method === "POST" ? ["x-amz-content-sha256"] : [],
  );
}

const recorder = new Recorder();
let endpoint = "";

beforeAll(async () => {
  endpoint = await recorder.start();
  process.env.AWS_ENDPOINT_URL_S3 = endpoint;
  process.env.AWS_ENDPOINT_URL_SNS = endpoint;
});

afterAll(() => {
  recorder.stop();
  delete process.env.AWS_ENDPOINT_URL_S3;
  delete process.env.AWS_ENDPOINT_URL_SNS;
});

beforeEach(() => {
  recorder.fail = false;
  recorder.requests.length = 0;
});

const timeouts = { connectionTimeout: 1_000, requestTimeout: 3_000, maxAttempts: 2 };
const ourS3 = () =>
  new S3Bucket(BUCKET, { ...timeouts, region: REGION, credentials: async () => credentials });
const ourSns = () => new SnsClient({ ...timeouts, region: REGION, credentials: async () => credentials });
const sdkS3 = () =>
  new S3Client({
    region: REGION,
    endpoint,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    maxAttempts: 1,
  });
const sdkSns = () => new SNSClient({ region: REGION, endpoint, credentials, maxAttempts: 1 });

const putObject = new PutObjectCommand({
  Bucket: BUCKET,
  Key: KEY,
  Body: BODY,
  ContentType: "text/csv; charset=utf-8",
  ServerSideEncryption: "aws:kms",
  SSEKMSKeyId: KMS_KEY,
  BucketKeyEnabled: true,
});
const ourPut = { key: KEY, body: BODY, contentType: "text/csv; charset=utf-8", kmsKeyId: KMS_KEY };

describe("lib/s3.ts PutObject", () => {
  it("sends what the SDK's S3Client sends, the bucket in the path of an IP-addressed endpoint", async () => {
    await sdkS3().send(putObject);
    const sdk = recorder.take();
    const answer = await ourS3().putObject(ourPut);
    const ours = recorder.take();
    expect(answer.etag).toBe('"9b2cf535f27731c974343645a3985328"');
    expect(ours.path.startsWith(`/${BUCKET}/daily/`)).toBe(true);
    expectSameRequest(sdk, ours);
    expect(ours.headers["x-amz-server-side-encryption"]).toBe("aws:kms");
    expect(ours.headers["x-amz-server-side-encryption-aws-kms-key-id"]).toBe(KMS_KEY);
    expect(ours.headers["x-amz-server-side-encryption-bucket-key-enabled"]).toBe("true");
    expect(ours.headers["x-amz-content-sha256"]).toBe(createHash("sha256").update(BODY).digest("hex"));
  });

  it("is signed as the SDK's signer signs S3 (the path as sent, not encoded again)", async () => {
    await ourS3().putObject(ourPut);
    const ours = recorder.take();
    expect(ours.headers.authorization).toBe(await sdkSignatureOf(ours, "s3"));
  });

  it("reads S3's XML error as the SDK does: its Code the name, its Message the message", async () => {
    recorder.fail = true;
    const sdkError = await sdkS3()
      .send(putObject)
      .then(
        () => new Error("no error"),
        (err: Error) => err,
      );
    const ourError = await ourS3()
      .putObject(ourPut)
      .then(
        () => new Error("no error"),
        (err: Error) => err,
      );
    expect(sdkError).toBeInstanceOf(Error);
    expect(ourError).toMatchObject({
      name: sdkError.name,
      message: sdkError.message,
      status: 403,
    });
    expect(ourError).toMatchObject({ name: "AccessDenied", message: "Access Denied & logged" });
  });
});

describe("lib/sns.ts Publish", () => {
  it("sends what the SDK's SNSClient sends", async () => {
    const sdkAnswer = await sdkSns().send(
      new PublishCommand({ TopicArn: TOPIC, Subject: SUBJECT, Message: MESSAGE }),
    );
    const sdk = recorder.take();
    const answer = await ourSns().publish({ topicArn: TOPIC, subject: SUBJECT, message: MESSAGE });
    const ours = recorder.take();
    expect(answer.messageId).toBe(sdkAnswer.MessageId);
    expectSameRequest(sdk, ours);
  });

  it("is signed as the SDK's signer signs SNS", async () => {
    await ourSns().publish({ topicArn: TOPIC, subject: SUBJECT, message: MESSAGE });
    const ours = recorder.take();
    expect(ours.headers.authorization).toBe(await sdkSignatureOf(ours, "sns"));
  });

  it("reads SNS's ErrorResponse as the SDK does, the Query code as the SDK's error name", async () => {
    recorder.fail = true;
    const sdkError = await sdkSns()
      .send(new PublishCommand({ TopicArn: TOPIC, Message: MESSAGE }))
      .then(
        () => new Error("no error"),
        (err: Error) => err,
      );
    const ourError = await ourSns()
      .publish({ topicArn: TOPIC, message: MESSAGE })
      .then(
        () => new Error("no error"),
        (err: Error) => err,
      );
    expect(sdkError).toBeInstanceOf(Error);
    expect(ourError).toMatchObject({
      name: sdkError.name,
      message: sdkError.message,
      status: 404,
    });
    expect(ourError).toMatchObject({ name: "NotFoundException" });
  });
});

/**
 * The hosts Atrium's own AWS clients call, held to the AWS SDK's endpoint rules for the same service,
 * region and FIPS setting: every partition, and the services' own exceptions (DynamoDB's, SageMaker
 * Runtime's, STS's and CloudWatch's FIPS hosts in GovCloud, SageMaker Runtime's outside the commercial
 * partition).
 */
import { CLOUDWATCH } from "@atrium/core/cloudwatch";
import { DYNAMODB } from "@atrium/core/dynamodb/client";
import { API_GATEWAY } from "@atrium/functions/lib/api-gateway";
import { bucketAddress, s3Service } from "@atrium/functions/lib/s3";
import { SAGEMAKER_RUNTIME } from "@atrium/functions/lib/sagemaker-runtime";
import { SNS } from "@atrium/functions/lib/sns";
import { STS } from "@atrium/functions/lib/sts";
import { APIGatewayClient } from "@aws-sdk/client-api-gateway";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { SNSClient } from "@aws-sdk/client-sns";
import { STSClient } from "@aws-sdk/client-sts";
import { describe, expect, it } from "vitest";

const REGIONS = [
  "us-east-1",
  "eu-west-1",
  "ap-southeast-2",
  "il-central-1",
  "mx-central-1",
  "cn-north-1",
  "cn-northwest-1",
  "us-gov-west-1",
  "us-gov-east-1",
  "us-iso-east-1",
  "us-isob-east-1",
  "eu-isoe-west-1",
  "us-isof-south-1",
];

type EndpointProvider = (params: Record<string, unknown>, context: object) => { url: URL };

const services = [
  { service: DYNAMODB, sdk: new DynamoDBClient({ region: "us-east-1" }) },
  { service: SAGEMAKER_RUNTIME, sdk: new SageMakerRuntimeClient({ region: "us-east-1" }) },
  { service: API_GATEWAY, sdk: new APIGatewayClient({ region: "us-east-1" }) },
  { service: STS, sdk: new STSClient({ region: "us-east-1" }) },
  { service: CLOUDWATCH, sdk: new CloudWatchClient({ region: "us-east-1" }) },
  { service: SNS, sdk: new SNSClient({ region: "us-east-1" }) },
];

describe("each of Atrium's AWS clients", () => {
  for (const { service, sdk } of services) {
    it(`calls ${service.title} where the SDK would, in every partition, with and without FIPS`, () => {
      const provider = sdk.config.endpointProvider as unknown as EndpointProvider;
      for (const region of REGIONS) {
        for (const fips of [false, true]) {
          // STS: the regional endpoint, as the SDK's v3 clients call it (not the legacy global one).
          const params = { Region: region, UseFIPS: fips, UseDualStack: false, UseGlobalEndpoint: false };
          const expected = provider(params, {}).url.host;
          expect(service.host(region, fips), `${region}${fips ? " FIPS" : ""}`).toBe(expected);
        }
      }
    });
  }
});

/** S3's rules as the SDK gives them for a bucket: no FIPS in China, where the SDK's rules refuse it. */
const s3Provider = new S3Client({ region: "us-east-1" }).config
  .endpointProvider as unknown as EndpointProvider;
const s3Params = { UseDualStack: false, ForcePathStyle: false, Accelerate: false };

describe("lib/s3.ts", () => {
  for (const bucket of ["atrium-prod-reports-123456789012", "reports.with.dots", "ab"]) {
    it(`calls S3 where the SDK would for bucket ${bucket}, in every partition, with and without FIPS`, () => {
      const { prefix } = bucketAddress(bucket);
      for (const region of REGIONS) {
        for (const fips of [false, true]) {
          if (fips && region.startsWith("cn-")) continue;
          const url = provider(s3Params, { Bucket: bucket, Region: region, UseFIPS: fips });
          expect(s3Service(bucket).host(region, fips), `${region}${fips ? " FIPS" : ""}`).toBe(url.host);
          expect(prefix || "/", `${region}${fips ? " FIPS" : ""}`).toBe(url.pathname);
        }
      }
    });
  }

  it("addresses a configured endpoint as the SDK does: the bucket in the host, or in the path for an IP address", () => {
    // Not compared: a dotted bucket at an IP address over http, which the SDK puts in the host (no valid URL); Atrium, in the path.
    for (const configured of [
      "http://127.0.0.1:4566",
      "http://localhost:4566",
      "https://s3.internal.example/base/",
      "http://[::1]:9000",
    ]) {
      for (const bucket of ["atrium-reports", "reports.with.dots"]) {
        if (bucket.includes(".") && /^http:\/\/[\d[]/.test(configured)) continue;
        const url = provider(s3Params, {
          Bucket: bucket,
          Region: "eu-west-1",
          UseFIPS: false,
          Endpoint: configured,
        });
        const { endpoint, prefix } = bucketAddress(bucket, configured);
        expect(`${endpoint}${prefix}`, `${bucket} at ${configured}`).toBe(url.href.replace(/\/$/, ""));
      }
    }
  });
});

function provider(common: object, params: object): URL {
  return s3Provider({ ...common, ...params }, {}).url;
}

/**
 * The hosts Atrium's own AWS clients call, held to the AWS SDK's endpoint rules for the same service,
 * region and FIPS setting: every partition, and the services' own exceptions (DynamoDB's, SageMaker
 * Runtime's, STS's and CloudWatch's FIPS hosts in GovCloud, SageMaker Runtime's outside the commercial
 * partition).
 */
import { CLOUDWATCH } from "@atrium/core/cloudwatch";
import { DYNAMODB } from "@atrium/core/dynamodb/client";
import { API_GATEWAY } from "@atrium/functions/lib/api-gateway";
import { SAGEMAKER_RUNTIME } from "@atrium/functions/lib/sagemaker-runtime";
import { STS } from "@atrium/functions/lib/sts";
import { APIGatewayClient } from "@aws-sdk/client-api-gateway";
import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
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

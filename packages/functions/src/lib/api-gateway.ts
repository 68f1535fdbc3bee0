/**
 * API Gateway's FlushStageAuthorizersCache, the one control-plane call the admin functions make
 * (lib/propagation.ts): a signed DELETE over @atrium/core/aws-http. Not the AWS SDK's client, whose
 * import was most of an admin function's cold start (docs/adr/0016-dynamodb-client.md).
 */
import {
  AwsCallError,
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  regionalHost,
  restJsonError,
} from "@atrium/core/aws-http";

export const API_GATEWAY: AwsService = {
  title: "API Gateway",
  signingName: "apigateway",
  endpointId: "API_GATEWAY",
  host: regionalHost("apigateway", false),
};

export class ApiGatewayControl {
  readonly #connection: AwsConnection;

  constructor(options: ConnectionOptions) {
    this.#connection = new AwsConnection(API_GATEWAY, options);
  }

  /** Forgets every authorizer decision API Gateway has cached for the stage. */
  async flushStageAuthorizersCache(restApiId: string, stageName: string): Promise<void> {
    const path = `/restapis/${encodeURIComponent(restApiId)}/stages/${encodeURIComponent(stageName)}/cache/authorizers`;
    await this.#connection.exchange(
      { method: "DELETE", path, headers: {}, body: new Uint8Array() },
      (response, body) => {
        const { code, message } = restJsonError(response, body);
        return new AwsCallError(code, message, { status: response.statusCode });
      },
    );
  }
}

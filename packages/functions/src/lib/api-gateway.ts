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
  succeeded,
  withRetries,
} from "@atrium/core/aws-http";

export const API_GATEWAY: AwsService = {
  title: "API Gateway",
  signingName: "apigateway",
  endpointId: "API_GATEWAY",
  host: regionalHost("apigateway", false),
};

export class ApiGatewayControl {
  readonly #connection: AwsConnection;
  readonly #maxAttempts: number;

  constructor(options: ConnectionOptions & { maxAttempts: number }) {
    this.#connection = new AwsConnection(API_GATEWAY, options);
    this.#maxAttempts = options.maxAttempts;
  }

  /** Forgets every authorizer decision API Gateway has cached for the stage. */
  async flushStageAuthorizersCache(restApiId: string, stageName: string): Promise<void> {
    const path = `/restapis/${encodeURIComponent(restApiId)}/stages/${encodeURIComponent(stageName)}/cache/authorizers`;
    await withRetries(this.#maxAttempts, async () => {
      const response = await this.#connection.send({
        method: "DELETE",
        path,
        headers: {},
        body: new Uint8Array(),
      });
      const body = await this.#connection.readAll(response);
      if (succeeded(response)) return;
      const { code, message } = restJsonError(response, body);
      throw new AwsCallError(code, message, { status: response.statusCode });
    });
  }
}

import {
  AwsCallError,
  AwsConnection,
  type AwsService,
  type ConnectionOptions,
  regionalHost,
} from "@atrium/core/aws-http";
import { element, formEncode, xmlError, xmlText } from "./aws-xml";

export const SNS: AwsService = {
  title: "SNS",
  signingName: "sns",
  endpointId: "SNS",
  // GovCloud's usual SNS host is its FIPS one, as the SDK's endpoint rules have it.
  host: regionalHost("sns", true),
};

export interface PublishInput {
  topicArn: string;
  /** The e-mail subscribers' subject line. */
  subject?: string;
  message: string;
}

/**
 * The SDK's error names for the Query error codes Publish answers with (its modelled errors'
 * awsQueryError codes); any other code is the name as it stands.
 */
const ERROR_NAMES: Record<string, string> = {
  AuthorizationError: "AuthorizationErrorException",
  EndpointDisabled: "EndpointDisabledException",
  InternalError: "InternalErrorException",
  InvalidParameter: "InvalidParameterException",
  ParameterValueInvalid: "InvalidParameterValueException",
  InvalidSecurity: "InvalidSecurityException",
  KMSAccessDenied: "KMSAccessDeniedException",
  KMSDisabled: "KMSDisabledException",
  KMSInvalidState: "KMSInvalidStateException",
  KMSNotFound: "KMSNotFoundException",
  KMSOptInRequired: "KMSOptInRequired",
  KMSThrottling: "KMSThrottlingException",
  NotFound: "NotFoundException",
  PlatformApplicationDisabled: "PlatformApplicationDisabledException",
  Throttled: "ThrottledException",
};

export class SnsClient {
  readonly #connection: AwsConnection;

  constructor(options: ConnectionOptions) {
    this.#connection = new AwsConnection(SNS, options);
  }

  /** Publishes `message` to the topic; resolves with SNS's MessageId. */
  async publish(input: PublishInput): Promise<{ messageId: string }> {
    // The SDK's order: Action, Version, then the members it sets in PublishInput's order.
    const body = Buffer.from(
      formEncode([
        ["Action", "Publish"],
        ["Version", "2010-03-31"],
        ["Message", input.message],
        ["TopicArn", input.topicArn],
        ["Subject", input.subject],
      ]),
    );
    const headers = { "content-type": "application/x-www-form-urlencoded" };
    const answer = await this.#connection.exchange({ path: "/", headers, body }, (response, xml) =>
      xmlError(response, xml, ERROR_NAMES),
    );
    const messageId = element(xmlText(answer.body), "MessageId");
    if (!messageId) throw new AwsCallError("InvalidResponse", "SNS answered Publish without a MessageId.");
    return { messageId };
  }
}

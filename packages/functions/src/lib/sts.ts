import {
  AwsCallError,
  AwsConnection,
  type AwsCredentials,
  type AwsService,
  type ConnectionOptions,
  regionalHost,
} from "@atrium/core/aws-http";
import { element, formEncode, xmlError, xmlText } from "./aws-xml";

export const STS: AwsService = {
  title: "STS",
  signingName: "sts",
  endpointId: "STS",
  // Regional, as the SDK's client calls it (not the legacy global sts.amazonaws.com).
  host: regionalHost("sts", true),
};

/** Temporary credentials, and when they lapse. */
export interface SessionCredentials extends AwsCredentials {
  sessionToken: string;
  expiration: Date;
}

export interface AssumeRoleInput {
  roleArn: string;
  roleSessionName: string;
  durationSeconds: number;
  /** Session tags, which IAM policies read as aws:PrincipalTag/<key>. */
  tags: { key: string; value: string }[];
}

export class StsClient {
  readonly #connection: AwsConnection;

  constructor(options: ConnectionOptions) {
    this.#connection = new AwsConnection(STS, options);
  }

  async assumeRole(input: AssumeRoleInput): Promise<SessionCredentials> {
    const form = formEncode([
      ["Action", "AssumeRole"],
      ["Version", "2011-06-15"],
      ["RoleArn", input.roleArn],
      ["RoleSessionName", input.roleSessionName],
      ["DurationSeconds", String(input.durationSeconds)],
      ...input.tags.flatMap((tag, i): [string, string][] => [
        [`Tags.member.${i + 1}.Key`, tag.key],
        [`Tags.member.${i + 1}.Value`, tag.value],
      ]),
    ]);
    const body = Buffer.from(form);
    const headers = { "content-type": "application/x-www-form-urlencoded; charset=utf-8" };
    const answer = await this.#connection.exchange({ path: "/", headers, body }, xmlError);
    return credentialsOf(xmlText(answer.body));
  }
}

/** The Credentials of an AssumeRoleResponse. */
function credentialsOf(xml: string): SessionCredentials {
  const credentials = element(xml, "Credentials");
  const accessKeyId = credentials && element(credentials, "AccessKeyId");
  const secretAccessKey = credentials && element(credentials, "SecretAccessKey");
  const sessionToken = credentials && element(credentials, "SessionToken");
  const expiration = new Date(credentials ? (element(credentials, "Expiration") ?? "") : "");
  if (!accessKeyId || !secretAccessKey || !sessionToken || Number.isNaN(expiration.getTime()))
    throw new AwsCallError("InvalidResponse", "STS answered AssumeRole without complete credentials.");
  return { accessKeyId, secretAccessKey, sessionToken, expiration };
}

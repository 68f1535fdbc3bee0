import type { Stack } from "aws-cdk-lib";
import { NagSuppressions } from "cdk-nag";

/**
 * cdk-nag findings on what every SST stack carries (the functions' runtime and basic execution
 * role, SST's own custom-resource handler), suppressed once per stack with the reason.
 */
export function suppressPlatformFindings(stack: Stack): void {
  NagSuppressions.addStackSuppressions(stack, [
    {
      id: "AwsSolutions-L1",
      reason:
        "Functions run nodejs22.x, the Lambda runtime this project pins (STYLE.md) and the one SST 2.49.8 uses for its own handler; moving to nodejs24.x is a deliberate upgrade of every function at once.",
    },
    {
      id: "AwsSolutions-IAM4",
      reason:
        "AWSLambdaBasicExecutionRole only lets a function create and write its own CloudWatch log streams; SST attaches it to every function role.",
      appliesTo: ["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
    },
  ]);
}

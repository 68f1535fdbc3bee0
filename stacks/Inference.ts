import { dedicatedEndpointPrefix, type EndpointCreate } from "@atrium/core/config";
import { type Stack, Tags } from "aws-cdk-lib";
import { CfnScalableTarget, CfnScalingPolicy } from "aws-cdk-lib/aws-applicationautoscaling";
import { PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { CfnEndpoint, CfnEndpointConfig, CfnModel } from "aws-cdk-lib/aws-sagemaker";
import { NagSuppressions } from "cdk-nag";
import { Construct } from "constructs";
import type { StackContext } from "sst/constructs";
import { loadStageConfig } from "./config";
import { suppressPlatformFindings } from "./nag";

/** One endpoint a stage's functions may invoke. */
export interface StageEndpoint {
  kind: "shared" | "dedicated";
  model: string;
  endpointName: string;
  region: string;
  /** Dedicated endpoints only: the tenant it serves. */
  tenantId?: string;
  /** Shared multi-model endpoints: the catalogue artifact every tenant may load. */
  targetModel?: string;
  /** Created by this stack (with autoscaling), rather than imported by name. */
  created: boolean;
  arn: string;
}

/** The one production variant of every endpoint this stack creates. */
export const VARIANT = "AllTraffic";

/** `<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>` → the repository's ARN. */
export function ecrRepositoryArn(stack: Stack, image: string): string {
  const match = /^(\d{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\/([^:@]+)/.exec(image);
  if (!match) throw new Error(`Not an ECR image URI: ${image}`);
  const [, account, region, repository] = match as unknown as [string, string, string, string];
  return `arn:${stack.partition}:ecr:${region}:${account}:repository/${repository}`;
}

/** `s3://bucket/key` → the object's ARN. */
export function s3ObjectArn(stack: Stack, url: string): string {
  return `arn:${stack.partition}:s3:::${url.slice("s3://".length)}`;
}

export function Inference({ stack, app }: StackContext) {
  const config = loadStageConfig(app.stage);
  suppressPlatformFindings(stack);

  const arnOf = (endpointName: string, region: string) =>
    // SageMaker lower-cases endpoint names in ARNs.
    stack.formatArn({
      service: "sagemaker",
      region,
      resource: "endpoint",
      resourceName: endpointName.toLowerCase(),
    });

  const endpoints: StageEndpoint[] = [
    ...config.sharedEndpoints.map((e) => ({
      kind: "shared" as const,
      model: e.model,
      endpointName: e.endpointName,
      region: e.region ?? config.region,
      ...(e.targetModel ? { targetModel: e.targetModel } : {}),
      create: e.create,
    })),
    ...config.dedicatedEndpoints.map((e) => ({
      kind: "dedicated" as const,
      model: e.model,
      endpointName: e.endpointName,
      region: e.region ?? config.region,
      tenantId: e.tenantId,
      create: e.create,
    })),
  ].map(({ create, ...endpoint }) => {
    if (create) createEndpoint(stack, app.stage, endpoint, create);
    return { ...endpoint, created: Boolean(create), arn: arnOf(endpoint.endpointName, endpoint.region) };
  });

  // Dedicated endpoints registered at runtime (`atrium endpoints add`) carry the stage prefix (docs/adr/0006).
  const regions = [
    ...new Set([config.region, ...config.modelRegions, ...endpoints.map((e) => e.region)]),
  ].sort();
  const dedicatedPatternArns = regions.map((region) =>
    arnOf(`${dedicatedEndpointPrefix(app.stage)}*`, region),
  );

  return { endpoints, dedicatedPatternArns };
}

/** Model, endpoint config, endpoint and invocation-based autoscaling for one configured endpoint. */
function createEndpoint(
  stack: Stack,
  stage: string,
  endpoint: { kind: string; endpointName: string; tenantId?: string },
  create: EndpointCreate,
) {
  const { endpointName } = endpoint;
  const scope = new Construct(stack, endpointName);
  Tags.of(scope).add("atrium:stage", stage);
  Tags.of(scope).add("atrium:endpoint-kind", endpoint.kind);
  // Per-tenant cost allocation: a dedicated endpoint is part of its tenant's bill.
  if (endpoint.tenantId) Tags.of(scope).add("atrium:tenant-id", endpoint.tenantId);

  const logGroup = `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:/aws/sagemaker/Endpoints/${endpointName}`;
  const role = new Role(scope, "ExecutionRole", {
    assumedBy: new ServicePrincipal("sagemaker.amazonaws.com"),
    description: `Pulls the image and model data of ${endpointName}, and nothing else`,
  });
  role.addToPolicy(
    new PolicyStatement({
      actions: ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
      resources: [ecrRepositoryArn(stack, create.image)],
    }),
  );
  role.addToPolicy(new PolicyStatement({ actions: ["ecr:GetAuthorizationToken"], resources: ["*"] }));
  if (create.modelDataUrl) {
    role.addToPolicy(
      new PolicyStatement({
        actions: ["s3:GetObject"],
        resources: [s3ObjectArn(stack, create.modelDataUrl)],
      }),
    );
  }
  role.addToPolicy(
    new PolicyStatement({
      actions: [
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "logs:DescribeLogStreams",
      ],
      resources: [logGroup, `${logGroup}:*`],
    }),
  );
  role.addToPolicy(
    new PolicyStatement({
      actions: ["cloudwatch:PutMetricData"],
      resources: ["*"],
      conditions: { StringEquals: { "cloudwatch:namespace": "/aws/sagemaker/Endpoints" } },
    }),
  );
  NagSuppressions.addResourceSuppressions(
    role,
    [
      {
        id: "AwsSolutions-IAM5",
        reason:
          "ecr:GetAuthorizationToken and cloudwatch:PutMetricData (held to the SageMaker namespace) have no resource-level permissions; the container's log streams are named per instance under the endpoint's own log group.",
        appliesTo: [
          "Resource::*",
          {
            regex: `/^Resource::arn:<AWS::Partition>:logs:.*:log-group:\\/aws\\/sagemaker\\/Endpoints\\/${endpointName}:\\*$/`,
          },
        ],
      },
    ],
    true,
  );

  const model = new CfnModel(scope, "Model", {
    executionRoleArn: role.roleArn,
    // The container cannot call out: tenants' prompts and completions stay inside SageMaker.
    enableNetworkIsolation: true,
    primaryContainer: {
      image: create.image,
      ...(create.modelDataUrl ? { modelDataUrl: create.modelDataUrl } : {}),
    },
  });
  // SageMaker checks the image and model data with the role's policy when the model is created.
  model.node.addDependency(role);

  const endpointConfig = new CfnEndpointConfig(scope, "Config", {
    productionVariants: [
      {
        variantName: VARIANT,
        modelName: model.attrModelName,
        instanceType: create.instanceType,
        initialInstanceCount: create.initialInstanceCount,
        initialVariantWeight: 1,
      },
    ],
  });
  // Only the endpoint is named: a new model or config replaces its unnamed predecessor, the endpoint updates in place.
  const cfnEndpoint = new CfnEndpoint(scope, "Endpoint", {
    endpointName,
    endpointConfigName: endpointConfig.attrEndpointConfigName,
  });

  // No RoleARN: Application Auto Scaling uses its service-linked role for SageMaker.
  const target = new CfnScalableTarget(scope, "ScalableTarget", {
    serviceNamespace: "sagemaker",
    resourceId: `endpoint/${cfnEndpoint.attrEndpointName}/variant/${VARIANT}`,
    scalableDimension: "sagemaker:variant:DesiredInstanceCount",
    minCapacity: create.minInstances,
    maxCapacity: create.maxInstances,
  });
  new CfnScalingPolicy(scope, "InvocationsScaling", {
    policyName: `${endpointName}-invocations`,
    policyType: "TargetTrackingScaling",
    scalingTargetId: target.ref,
    targetTrackingScalingPolicyConfiguration: {
      predefinedMetricSpecification: { predefinedMetricType: "SageMakerVariantInvocationsPerInstance" },
      targetValue: create.invocationsPerInstanceTarget,
      // Scale out within a minute of a burst; scale in slowly, as GPU instances take minutes to return.
      scaleOutCooldown: 60,
      scaleInCooldown: 600,
    },
  });
}

import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Template } from "aws-cdk-lib/assertions";
import { expect } from "vitest";
import { type StageSynth, synthStage } from "../../stacks/synth";

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties are untyped JSON.
export type Props = Record<string, any>;

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Principal?: Props;
  Condition?: Props;
}

export interface TestSynth extends StageSynth {
  data: Template;
  inference: Template;
  api: Template;
  reporting: Template;
  templates: Template[];
  /** cdk-nag's AwsSolutions errors and warnings, per stack: `<construct path>: <finding>`. */
  nagFindings: Record<string, string[]>;
  cleanup: () => void;
}

/**
 * One offline synth of every stack of a stage, with cdk-nag. Bundling every handler is the slow part
 * (about 40 s), so one stage's tests bundle and the others' templates come from placeholder code.
 */
export async function synthForTest(stage: string, bundle: boolean): Promise<TestSynth> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `atrium-synth-${stage}-`));
  const synth = await synthStage(stage, { outdir: path.join(dir, "cdk.out"), nag: true, bundle });
  const { data, inference, api, reporting } = synth.stacks;
  const templates = {
    data: Template.fromStack(data),
    inference: Template.fromStack(inference),
    api: Template.fromStack(api),
    reporting: Template.fromStack(reporting),
  };
  const nagFindings = Object.fromEntries(
    [data, inference, api, reporting].map((stack) => [
      stack.stackName,
      synth.assembly
        .getStackArtifact(stack.artifactId)
        .messages.filter((m) => m.level !== "info" && String(m.entry.data).startsWith("AwsSolutions-"))
        .map((m) => `${m.id}: ${m.entry.data}`),
    ]),
  );
  return {
    ...synth,
    ...templates,
    templates: Object.values(templates),
    nagFindings,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
export const actionsOf = (statements: Statement[]) => statements.flatMap((s) => asList(s.Action));

export function resources(template: Template, type: string): [string, Props][] {
  return Object.entries(template.findResources(type)).map(([id, r]) => [id, r.Properties ?? {}]);
}

export function resourceEntries(template: Template, type: string): [string, Props][] {
  return Object.entries(template.findResources(type));
}

/** The one function whose deployed handler is `handler` (SST keeps the handler string's path and export). */
export function functionFor(template: Template, handler: string): [string, Props] {
  const found = resources(template, "AWS::Lambda::Function").filter(([, p]) => p.Handler === handler);
  expect(found, `function for ${handler}`).toHaveLength(1);
  return found[0] as [string, Props];
}

/** Logical id of a function's role. */
export const roleOf = (fn: Props): string => fn.Role["Fn::GetAtt"][0];

/** Every statement of the policies attached to a role. */
export function statementsOfRole(template: Template, roleId: string): Statement[] {
  return resources(template, "AWS::IAM::Policy")
    .filter(([, p]) => p.Roles.some((r: Props) => r.Ref === roleId))
    .flatMap(([, p]) => p.PolicyDocument.Statement as Statement[]);
}

export const statementsFor = (template: Template, fn: Props) => statementsOfRole(template, roleOf(fn));

/** Every policy statement in a template: attached policies and inline role policies. */
export function allStatements(template: Template): Statement[] {
  return [
    ...resources(template, "AWS::IAM::Policy").flatMap(([, p]) => p.PolicyDocument.Statement),
    ...resources(template, "AWS::IAM::Role").flatMap(([, p]) =>
      (p.Policies ?? []).flatMap((policy: Props) => policy.PolicyDocument.Statement),
    ),
  ];
}

/** `METHOD /path` of each API Gateway method, rebuilt from the Resource parent chain. */
export function methodsByRoute(template: Template): Map<string, Props> {
  const apiResources = template.findResources("AWS::ApiGateway::Resource");
  const pathOf = (id: string): string => {
    const { PathPart, ParentId } = apiResources[id]?.Properties ?? {};
    return `${ParentId.Ref ? pathOf(ParentId.Ref) : ""}/${PathPart}`;
  };
  return new Map(
    resources(template, "AWS::ApiGateway::Method").map(([, p]) => [
      `${p.HttpMethod} ${pathOf(p.ResourceId.Ref)}`,
      p,
    ]),
  );
}

/**
 * A CloudFormation value as text: Fn::Join flattened, pseudo parameters and other intrinsics shown
 * as `<AWS::Partition>`, `<Ref:Logical>`, `<GetAtt:Logical.Arn>`, `<Import:name>`.
 */
export function render(value: unknown): string {
  if (typeof value === "string") return value;
  const v = value as Props;
  if (v["Fn::Join"]) {
    const [separator, parts] = v["Fn::Join"] as [string, unknown[]];
    return parts.map(render).join(separator);
  }
  if (v.Ref) return String(v.Ref).startsWith("AWS::") ? `<${v.Ref}>` : `<Ref:${v.Ref}>`;
  if (v["Fn::GetAtt"]) return `<GetAtt:${asList(v["Fn::GetAtt"]).join(".")}>`;
  if (v["Fn::ImportValue"]) return `<Import:${render(v["Fn::ImportValue"])}>`;
  return JSON.stringify(value);
}

/** IAM's StringLike: `*` any run of characters, `?` one character, everything else literal. */
export function iamLike(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${regex}$`, "s").test(value);
}

// @vitest-environment node
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { dedicatedEndpointPrefix, parseStageConfig, StageConfig } from "@atrium/core/config";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import sstConfig from "../../sst.config";
import { loadStageConfig, runtimeConfig } from "../../stacks/config";
import { synthStage } from "../../stacks/synth";

const run = promisify(execFile);
const dev = () => JSON.parse(readFileSync("config/dev.json", "utf8"));
const recipe = {
  image: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/atrium/model:1",
  modelDataUrl: "s3://atrium-models/model/model.tar.gz",
  instanceType: "ml.g5.xlarge",
  initialInstanceCount: 1,
  minInstances: 1,
  maxInstances: 2,
  invocationsPerInstanceTarget: 60,
};
const withEndpoints = (sharedEndpoints: unknown[], dedicatedEndpoints: unknown[] = []) => ({
  ...dev(),
  sharedEndpoints,
  dedicatedEndpoints,
});

describe("stage config loading", () => {
  let root: string;
  const write = (stage: string, content: unknown) =>
    writeFileSync(
      path.join(root, "config", `${stage}.json`),
      typeof content === "string" ? content : JSON.stringify(content),
    );
  beforeAll(() => {
    root = mkdtempSync(path.join(os.tmpdir(), "atrium-config-"));
    mkdirSync(path.join(root, "config"));
    const d = dev();
    write("broken", { ...d, tiers: { ...d.tiers, free: { ...d.tiers.free, tenancy: "shared" } } });
    write("garbled", "{ region: ");
    write(
      "misnamed",
      withEndpoints(
        [
          { model: "a", endpointName: "shared-a", create: recipe },
          { model: "b", endpointName: "anything-imported" },
        ],
        [{ tenantId: "tn-bank0000001", model: "a", endpointName: "bank-a" }],
      ),
    );
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("rejects an unknown tenancy, naming the file and the field", () => {
    const file = path.join(root, "config", "broken.json");
    expect(() => loadStageConfig("broken", root)).toThrow(file);
    expect(() => loadStageConfig("broken", root)).toThrow(/tiers\.free\.tenancy/);
  });

  it("names the file when it is missing or not JSON", () => {
    expect(() => loadStageConfig("nope", root)).toThrow(
      `${path.join(root, "config", "nope.json")} does not exist`,
    );
    expect(() => loadStageConfig("garbled", root)).toThrow(path.join(root, "config", "garbled.json"));
  });

  it("stops sst.config.ts before any synth when the stage has no config", () => {
    expect(() => sstConfig.config({ stage: "no-such-stage" })).toThrow(/config\/no-such-stage\.json/);
  });

  it("requires dedicated endpoints and the endpoints a stack creates to be named atrium-<stage>-", () => {
    const load = () => loadStageConfig("misnamed", root);
    expect(load).toThrow(path.join(root, "config", "misnamed.json"));
    expect(load).toThrow(
      /sharedEndpoints\.0\.endpointName: an endpoint the stack creates must start with 'atrium-misnamed-'/,
    );
    expect(load).toThrow(
      /dedicatedEndpoints\.0\.endpointName: a dedicated endpoint must start with 'atrium-misnamed-'/,
    );
    // An imported shared endpoint is granted by its exact ARN, whatever its name.
    expect(load).not.toThrow(/sharedEndpoints\.1/);
  });
});

describe("stage config schema", () => {
  it("checks each create recipe: ECR image, S3 object, instance type, instance counts, stage region", () => {
    const bad = withEndpoints([
      {
        model: "a",
        endpointName: "atrium-dev-a",
        region: "us-west-2",
        create: {
          ...recipe,
          image: "docker.io/library/model:1",
          modelDataUrl: "s3://atrium-models/prefix/",
          instanceType: "g5.xlarge",
          initialInstanceCount: 5,
          minInstances: 3,
          maxInstances: 2,
        },
      },
    ]);
    const message = (() => {
      try {
        parseStageConfig(bad, "config/test.json");
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error("accepted");
    })();
    for (const field of ["image", "modelDataUrl", "instanceType", "minInstances", "initialInstanceCount"]) {
      expect(message).toContain(`sharedEndpoints.0.create.${field}`);
    }
    expect(message).toContain("sharedEndpoints.0.region: create needs the stage region");
  });

  it("refuses an endpoint name used twice and a tenant's model dedicated twice", () => {
    const twice = withEndpoints(
      [{ model: "a", endpointName: "atrium-dev-x" }],
      [
        { tenantId: "tn-bank0000001", model: "a", endpointName: "ATRIUM-DEV-X" },
        { tenantId: "tn-bank0000001", model: "a", endpointName: "atrium-dev-y" },
      ],
    );
    expect(() => parseStageConfig(twice)).toThrow(
      /dedicatedEndpoints\.0\.endpointName: endpoint name also used by sharedEndpoints\.0/,
    );
    expect(() => parseStageConfig(twice)).toThrow(
      /dedicatedEndpoints\.1\.model: tenant's model listed twice/,
    );
  });

  it("refuses a dedicated endpoint for something that is not a tenant id", () => {
    const bad = withEndpoints([], [{ tenantId: "TENANT#1", model: "a", endpointName: "atrium-dev-a" }]);
    expect(() => parseStageConfig(bad)).toThrow(/dedicatedEndpoints\.0\.tenantId: a tenant id/);
  });

  it("names dedicated endpoints of a stage with its lower-cased prefix", () => {
    expect(dedicatedEndpointPrefix("prod")).toBe("atrium-prod-");
    expect(dedicatedEndpointPrefix("Staging-2")).toBe("atrium-staging-2-");
  });

  it("gives the functions every stage's config without its deploy recipes", () => {
    for (const stage of ["local", "dev", "prod"]) {
      const config = loadStageConfig(stage);
      const runtime = runtimeConfig(config);
      expect(JSON.stringify(runtime)).not.toContain('"create"');
      expect(StageConfig.parse(runtime)).toEqual(runtime);
      expect(runtime.sharedEndpoints.map((e) => e.endpointName)).toEqual(
        config.sharedEndpoints.map((e) => e.endpointName),
      );
      // A created endpoint keeps what reports price it by: its instance type and always-on count.
      const endpoints = [...config.sharedEndpoints, ...config.dedicatedEndpoints];
      const shipped = [...runtime.sharedEndpoints, ...runtime.dedicatedEndpoints];
      endpoints.forEach((endpoint, i) => {
        if (!endpoint.create) return;
        expect(shipped[i], endpoint.endpointName).toMatchObject({
          instanceType: endpoint.instanceType ?? endpoint.create.instanceType,
          instanceCount: endpoint.instanceCount ?? endpoint.create.minInstances,
        });
      });
      expect({ ...runtime, sharedEndpoints: [], dedicatedEndpoints: [] }).toEqual({
        ...config,
        sharedEndpoints: [],
        dedicatedEndpoints: [],
      });
    }
  });

  it("ships dev and prod examples of created and imported, shared and dedicated endpoints; prod is protected", () => {
    const [local, devConfig, prod] = ["local", "dev", "prod"].map((stage) => loadStageConfig(stage));
    for (const config of [devConfig, prod] as StageConfig[]) {
      const all = [...config.sharedEndpoints, ...config.dedicatedEndpoints];
      expect(all.some((e) => e.create)).toBe(true);
      expect(all.some((e) => !e.create)).toBe(true);
      expect(config.dedicatedEndpoints.length).toBeGreaterThan(0);
    }
    expect(prod?.dedicatedEndpoints.some((e) => e.create)).toBe(true);
    expect([local?.protect, devConfig?.protect, prod?.protect]).toEqual([false, false, true]);
    expect(local?.sharedEndpoints.some((e) => e.create)).toBe(false);
  });
});

describe("offline synth", () => {
  it("refuses an unknown stage before touching anything, naming the stages there are", async () => {
    await expect(synthStage("nope", { outdir: os.tmpdir() })).rejects.toThrow(
      /Unknown stage 'nope': there is no .*config\/nope\.json \(stages: dev, local, prod\)/,
    );
  });

  it("npm run synth exits 2 with that error for an unknown stage", async () => {
    const failure = await run(process.execPath, [
      "--import",
      "tsx",
      "scripts/synth.ts",
      "--stage",
      "nope",
    ]).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain(
      "Unknown stage 'nope': there is no config/nope.json. Stages: dev, local, prod.",
    );
  });
});

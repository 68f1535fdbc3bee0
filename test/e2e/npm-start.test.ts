/**
 * `npm start` exactly as a user runs it: a child process, PORT from the environment, data under a
 * data directory, SIGTERM to stop, and the same tenants and keys after a restart.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LocalInfo } from "@atrium/local/platform";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { json } from "../support/http";

let dataDir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "atrium-start-"));
});

afterAll(async () => {
  for (const child of children) process.kill(-(child.pid as number), "SIGKILL");
  await rm(dataDir, { recursive: true, force: true });
});

interface Running {
  child: ChildProcess;
  output: () => string;
  info: LocalInfo;
}

async function npmStart(...args: string[]): Promise<Running> {
  const child = spawn("npm", ["start", "--", "--data-dir", dataDir, ...args], {
    env: { ...process.env, PORT: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group, so a signal reaches npm and the platform together, as Ctrl-C in a terminal does.
    detached: true,
  });
  children.add(child);
  let output = "";
  child.stdout?.on("data", (chunk) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk) => {
    output += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${output}`)), 45_000);
    const check = () => {
      if (output.includes("Atrium local platform is up")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", check);
    child.once("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${output}`)));
  });
  const info = JSON.parse(await readFile(join(dataDir, "local.json"), "utf8")) as LocalInfo;
  return { child, output: () => output, info };
}

/** Signals the process group and returns what the platform said last; npm itself dies of the signal. */
async function stop(running: Running, signal: NodeJS.Signals): Promise<string> {
  const exited = new Promise<void>((resolve) => running.child.once("close", () => resolve()));
  process.kill(-(running.child.pid as number), signal);
  await exited;
  children.delete(running.child);
  return running.output().trim().split("\n").at(-1) ?? "";
}

async function chat(gatewayUrl: string, apiKey: string) {
  return fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
  });
}

describe("npm start", () => {
  it("serves, stops cleanly on SIGTERM, and keeps tenants and keys across a restart", async () => {
    const first = await npmStart();
    const { info } = first;
    expect(info.gatewayUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(info).toMatchObject({
      sagemakerUrl: expect.stringMatching(/^http:/),
      dynamodbUrl: expect.stringMatching(/^http:/),
      adminToken: expect.any(String),
      sharedEndpoints: ["atrium-shared-llama-8b", "atrium-shared-mistral-7b"],
      demoTenant: { id: expect.any(String), apiKey: expect.stringMatching(/^atr_/) },
    });
    expect((await stat(join(dataDir, "local.json"))).mode & 0o077).toBe(0);
    expect(first.output()).toContain(info.demoTenant.apiKey);
    expect(first.output()).toContain(`curl -s ${info.gatewayUrl}/v1/chat/completions`);

    expect((await chat(info.gatewayUrl, info.demoTenant.apiKey)).status).toBe(200);
    const created = await fetch(`${info.gatewayUrl}/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${info.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Survivor", tier: "pro" }),
    });
    const { apiKey } = await json(created);

    expect(await stop(first, "SIGTERM")).toBe("Atrium stopped cleanly.");

    const second = await npmStart();
    expect(second.info.demoTenant).toEqual(info.demoTenant);
    expect(second.info.adminToken).toBe(info.adminToken);
    expect((await chat(second.info.gatewayUrl, apiKey)).status).toBe(200);
    expect(await stop(second, "SIGINT")).toBe("Atrium stopped cleanly.");
  });

  it("--ephemeral keeps nothing", async () => {
    const running = await npmStart("--ephemeral");
    const created = await fetch(`${running.info.gatewayUrl}/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${running.info.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Ghost", tier: "pro" }),
    });
    const { apiKey } = await json(created);
    expect(await stop(running, "SIGTERM")).toBe("Atrium stopped cleanly.");

    const again = await npmStart("--ephemeral");
    expect((await chat(again.info.gatewayUrl, apiKey)).status).toBe(401);
    expect(await stop(again, "SIGTERM")).toBe("Atrium stopped cleanly.");
  });
});

/**
 * `npm start` exactly as a user runs it: a child process, PORT from the environment, data under a
 * data directory, SIGTERM to stop, and the same tenants and keys after a restart.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
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

/** Every process below `pid` (pid and command line), read from ps. */
function descendants(pid: number): { pid: number; command: string; includes(text: string): boolean }[] {
  const rows = execFileSync("ps", ["-eo", "pid=,ppid=,args="], { encoding: "utf8" })
    .split("\n")
    .map((line) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(line))
    .filter((match) => match !== null)
    .map((match) => ({ pid: Number(match[1]), ppid: Number(match[2]), command: match[3] as string }));
  const found: { pid: number; command: string; includes(text: string): boolean }[] = [];
  const walk = (parent: number) => {
    for (const row of rows.filter((r) => r.ppid === parent)) {
      found.push({ pid: row.pid, command: row.command, includes: (text) => row.command.includes(text) });
      walk(row.pid);
    }
  };
  walk(pid);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function chat(gatewayUrl: string, apiKey: string) {
  return fetch(`${gatewayUrl}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
  });
}

// Each test starts npm twice, and each start runs a JVM: seconds apiece on a busy machine.
describe("npm start", { timeout: 120_000 }, () => {
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

  // One pair of ephemeral runs serves both: the second run shows the first kept nothing.
  it("stops every process when only npm's own PID gets SIGTERM, and when a signal comes twice; --ephemeral keeps nothing", async () => {
    const running = await npmStart("--ephemeral");
    const created = await fetch(`${running.info.gatewayUrl}/admin/tenants`, {
      method: "POST",
      headers: { authorization: `Bearer ${running.info.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "Ghost", tier: "pro" }),
    });
    const { apiKey } = await json(created);
    const served = await chat(running.info.gatewayUrl, apiKey);
    expect(served.status).toBe(200);
    await served.body?.cancel();
    const tree = descendants(running.child.pid as number);
    expect(tree.some((line) => line.includes("DynamoDBLocal.jar"))).toBe(true);
    const exited = new Promise<void>((resolve) => running.child.once("close", () => resolve()));
    process.kill(running.child.pid as number, "SIGTERM");
    await exited;
    await waitFor(() => tree.every(({ pid }) => !alive(pid)));
    expect(running.output()).toContain("Atrium stopped cleanly.");
    children.delete(running.child);

    const twice = await npmStart("--ephemeral");
    expect((await chat(twice.info.gatewayUrl, apiKey)).status).toBe(401);
    // The group and npm's forward both deliver it: one stop, not a forced one.
    process.kill(-(twice.child.pid as number), "SIGINT");
    expect(await stop(twice, "SIGINT")).toBe("Atrium stopped cleanly.");
  });

  it("without Java 17, stops at once and says what to install", async () => {
    const bin = await mkdtemp(join(tmpdir(), "atrium-old-java-"));
    // A FAKE of an old Java runtime: all it does is report version 11, as `java -version` would.
    await writeFile(join(bin, "java"), "#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n", {
      mode: 0o755,
    });
    const result = spawnSync(
      process.execPath,
      ["--import", "tsx", "packages/local/src/main.ts", "--ephemeral"],
      {
        env: { ...process.env, PATH: `${bin}:${dirname(process.execPath)}`, PORT: "0" },
        encoding: "utf8",
        timeout: 20_000,
      },
    );
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/needs Java 17 or later, and Java 11 was found/);
    expect(result.stderr).toContain("openjdk-17-jre-headless");
    await rm(bin, { recursive: true, force: true });
  });
});

import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { bundlesOf } from "./bundle-measure";

const out = ".atrium/synth/prod";
const want = process.argv[2] ?? "chat.handler";
const templates = readdirSync(out).filter((f) => f.endsWith(".template.json"));
const bundle = templates.flatMap((t) => bundlesOf(out, t, t)).find((b) => b.fn.endsWith(want));
if (!bundle?.code) throw new Error("no bundle");
const task = mkdtempSync(path.join(tmpdir(), "diag-task-"));
cpSync(bundle.asset, task, { recursive: true });
const code = path.join(task, path.relative(bundle.asset, bundle.code));
const root = process.cwd();
for (let i = 0; i < 5; i++) {
  const run = spawnSync(
    process.execPath,
    [
      "--cpu-prof",
      "--cpu-prof-dir",
      "/tmp/impprof",
      "--cpu-prof-interval",
      "100",
      "scripts/import-probe.mjs",
      code,
    ],
    {
      env: {
        PATH: process.env.PATH,
        AWS_REGION: "eu-west-1",
        AWS_ACCESS_KEY_ID: "x",
        AWS_SECRET_ACCESS_KEY: "y",
        NODE_NO_WARNINGS: "1",
        NODE_PATH: [path.join(root, "packages/functions/node_modules"), path.join(root, "node_modules")].join(
          ":",
        ),
        ...bundle.env,
      },
      encoding: "utf8",
    },
  );
  console.log(run.stdout.trim(), run.stderr.slice(0, 300));
}

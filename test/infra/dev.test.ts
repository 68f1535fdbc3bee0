// @vitest-environment node
import { describeStage } from "./stage-suite";

// One stage per file: vitest runs the files in parallel workers, one synthesis each. Only prod bundles.
describeStage("dev", { bundle: false });

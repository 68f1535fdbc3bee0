// @vitest-environment node
import { describeStage } from "./stage-suite";

// One stage per file: vitest runs the files in parallel workers, one synthesis each. This one bundles
// every function, as the deploy does; dev is synthesised with placeholder code instead.
describeStage("prod", { bundle: true });

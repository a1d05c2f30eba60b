//! A block, run by bash as a reader would run it, with `mde` and `mde-sim` this build's.

use std::path::Path;
use std::process::Command;

use crate::markdown::Block;

/// One `mde` the block ran.
pub struct Invocation {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// What the block's bash runs first: `mde` records each run (its arguments, exit code and
/// output) and waits for a simulator started in the background to listen; `mde-sim` is this
/// binary serving one.
const PRELUDE: &str = r#"set -e
mde() {
  local n=$(( $(cat "$DEMO_CAPTURE/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$DEMO_CAPTURE/count"
  if [ -n "$(jobs -p)" ]; then
    for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/8787) 2>/dev/null && break; sleep 0.05; done
  fi
  printf '%s\0' "$@" > "$DEMO_CAPTURE/$n.args"
  local code=0
  "$DEMO_MDE" "$@" > "$DEMO_CAPTURE/$n.out" 2> "$DEMO_CAPTURE/$n.err" || code=$?
  echo "$code" > "$DEMO_CAPTURE/$n.code"
  cat "$DEMO_CAPTURE/$n.out"
  cat "$DEMO_CAPTURE/$n.err" >&2
  return "$code"
}
# Run in the background (`mde-sim … &`), the job is the simulator itself, which the trap kills.
mde-sim() { exec "$DEMO_SIM" mde-sim "$@"; }
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
"#;

/// Runs `block` in a scratch folder of its own (the workspace's `crates` linked into it, for
/// the fixtures a demo names); the `mde` runs, or why the block failed.
pub fn block(block: &Block) -> Result<Vec<Invocation>, String> {
    let dir = tempfile::Builder::new()
        .prefix("mde-demo-")
        .tempdir()
        .unwrap();
    let capture = dir.path().join(".capture");
    std::fs::create_dir(&capture).unwrap();
    std::os::unix::fs::symlink(crate::root().join("crates"), dir.path().join("crates")).unwrap();
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg(format!("{PRELUDE}{}", block.script))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("DEMO_CAPTURE", &capture)
        .env("DEMO_MDE", env!("CARGO_BIN_EXE_mde"))
        .env("DEMO_SIM", std::env::current_exe().unwrap())
        .stdin(std::process::Stdio::null());
    let out = command
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let invocations = read(&capture);
    let all = |f: fn(&Invocation) -> &str| invocations.iter().map(f).collect::<Vec<_>>().join("\n");
    let printed = format!("{}\n{}", all(|i| &i.stdout), all(|i| &i.stderr));
    if !out.status.success() {
        let failed = invocations.iter().find(|i| i.code != 0);
        return Err(match failed {
            Some(i) => format!(
                "`mde {}` exited {}:\n{}{}",
                i.args.join(" "),
                i.code,
                i.stdout,
                i.stderr
            ),
            None => format!(
                "bash exited {:?}:\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    if let Some(expected) = &block.expected {
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            if !printed.lines().any(|p| same_line(line, p)) {
                return Err(format!(
                    "it did not print the line\n  {line}\nIt printed:\n{printed}"
                ));
            }
        }
    }
    Ok(invocations)
}

/// Whether `printed` is the `expected` line: word for word, where an expected word with `…`
/// (an id cut short, which differs from run to run) matches any word.
fn same_line(expected: &str, printed: &str) -> bool {
    let (e, p): (Vec<&str>, Vec<&str>) = (
        expected.split_whitespace().collect(),
        printed.split_whitespace().collect(),
    );
    e.len() == p.len() && e.iter().zip(&p).all(|(e, p)| e.contains('…') || e == p)
}

/// The `mde` runs the prelude recorded, in order.
fn read(capture: &Path) -> Vec<Invocation> {
    let count: usize = std::fs::read_to_string(capture.join("count"))
        .map(|n| n.trim().parse().unwrap())
        .unwrap_or(0);
    (1..=count)
        .map(|n| {
            let file = |ext: &str| {
                std::fs::read_to_string(capture.join(format!("{n}.{ext}"))).unwrap_or_default()
            };
            Invocation {
                args: file("args")
                    .split('\0')
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
                code: file("code").trim().parse().unwrap_or(-1),
                stdout: file("out"),
                stderr: file("err"),
            }
        })
        .collect()
}

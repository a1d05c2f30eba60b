//! The workspace's tasks: `cargo xtask generate` writes the client's generated module from
//! `spec/openapi.yaml`, then the command line's reference; `cargo xtask check` fails when
//! the spec is unsound or either is stale.

mod build_cost;
mod codegen;
mod docs;
mod extensible_enum;
mod operations;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mde_spec::Spec;

/// The generated module, relative to the workspace root.
const GENERATED: &str = "crates/mde-client/src/generated.rs";

const USAGE: &str = "usage: cargo xtask <command>
  generate                             regenerate crates/mde-client/src/generated.rs from spec/openapi.yaml,
                                       then the command line's reference (docs/src/reference/cli.md, docs/man)
  check                                fail if the spec is unsound or the generated code or reference is stale
  diff --base <git-ref> [--allow-breaking]
                                       Markdown report of the spec's changes since <git-ref>; fails on
                                       breaking ones unless --allow-breaking
  docs                                 render the spec to target/api-reference.html
  build-cost [--pairs N]               time a consumer's clean build of mde-client against
                                       progenitor's generate_api! on the same spec (N pairs, 2)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = workspace_root();
    let result = match args.as_slice() {
        ["generate"] => generate(&root, false).and_then(|m| Ok(m + &cli_reference(&root, false)?)),
        ["check"] => generate(&root, true).and_then(|m| Ok(m + &cli_reference(&root, true)?)),
        ["docs"] => write_docs(&root),
        ["build-cost"] => build_cost::run(&root, 2),
        ["build-cost", "--pairs", n] => match n.parse::<usize>() {
            Ok(n) if n > 0 => build_cost::run(&root, n),
            _ => Err(format!("--pairs takes a positive number, not {n}")),
        },
        ["diff", "--base", base] => spec_diff(&root, base, false),
        ["diff", "--base", base, "--allow-breaking"]
        | ["diff", "--allow-breaking", "--base", base] => spec_diff(&root, base, true),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(verdict) => {
            println!("{verdict}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The Markdown report of the spec's changes since `base`; `Err` (after printing it) when a
/// change breaks callers and that is not allowed.
fn spec_diff(root: &Path, base: &str, allow_breaking: bool) -> Result<String, String> {
    let shown = std::process::Command::new("git")
        .args(["show", &format!("{base}:spec/openapi.yaml")])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !shown.status.success() {
        return Err(format!(
            "no spec/openapi.yaml at {base}: {}",
            String::from_utf8_lossy(&shown.stderr).trim()
        ));
    }
    let text = String::from_utf8(shown.stdout)
        .map_err(|e| format!("spec/openapi.yaml at {base} is not UTF-8: {e}"))?;
    let old =
        Spec::parse(text, format!("spec/openapi.yaml at {base}")).map_err(|e| e.to_string())?;
    let new = Spec::load(&root.join("spec/openapi.yaml")).map_err(|e| e.to_string())?;
    let report = mde_spec::diff::diff(&old, &new);
    let markdown = format!(
        "{}
_Compared with `{base}`._",
        report.markdown()
    );
    if report.breaking() && !allow_breaking {
        println!("{markdown}");
        return Err("the spec has breaking changes (pass --allow-breaking to accept them)".into());
    }
    Ok(markdown)
}

/// Writes `target/api-reference.html`.
fn write_docs(root: &Path) -> Result<String, String> {
    let spec = Spec::load(&root.join("spec/openapi.yaml")).map_err(|e| e.to_string())?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let path = target.join("api-reference.html");
    std::fs::write(&path, docs::render(&spec))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("wrote {}", path.display()))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Validates the spec and generates the client; writes it, or with `check` compares it with
/// the file on disk. Returns a one-line verdict, or what is wrong.
fn generate(root: &Path, check: bool) -> Result<String, String> {
    let spec = Spec::load(&root.join("spec/openapi.yaml")).map_err(|e| e.to_string())?;
    let problems = spec.problems();
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        return Err(format!(
            "spec/openapi.yaml does not validate ({} problem{}):\n{}",
            problems.len(),
            if problems.len() == 1 { "" } else { "s" },
            list.join("\n")
        ));
    }
    let code = codegen::generate(&spec)?;
    let path = root.join(GENERATED);
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == code {
        return Ok(format!("{GENERATED}: up to date with spec/openapi.yaml"));
    }
    if check {
        return Err(format!(
            "{GENERATED} is stale: run `cargo xtask generate`\n{}",
            stale_diff(&current, &code)
        ));
    }
    std::fs::write(&path, code).map_err(|e| format!("cannot write {GENERATED}: {e}"))?;
    Ok(format!("{GENERATED}: regenerated from spec/openapi.yaml"))
}

/// Writes (or with `check`, holds to) the command line's reference in `docs/`, rendered from
/// `mde`'s clap definition by mde-cli's `reference` example: it needs the client built, so
/// it runs after the client is generated, in a cargo of its own.
fn cli_reference(root: &Path, check: bool) -> Result<String, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command.current_dir(root);
    command.args([
        "run",
        "--quiet",
        "-p",
        "mde-cli",
        "--example",
        "reference",
        "--",
    ]);
    if check {
        command.arg("--check");
    }
    let status = command
        .arg(root.join("docs"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    match (status.success(), check) {
        (true, true) => Ok("\ndocs/src/reference/cli.md and docs/man: up to date with mde".into()),
        (true, false) => Ok("\ndocs/src/reference/cli.md and docs/man: written from mde".into()),
        (false, _) => Err("the command line's reference: see above".into()),
    }
}

/// What `cargo xtask generate` would change, as a unified diff cut after `MAX_LINES` lines.
fn stale_diff(on_disk: &str, from_spec: &str) -> String {
    const MAX_LINES: usize = 40;
    let diff = similar::TextDiff::from_lines(on_disk, from_spec)
        .unified_diff()
        .context_radius(2)
        .header("on disk", "from the spec")
        .to_string();
    let mut lines: Vec<&str> = diff.lines().take(MAX_LINES + 1).collect();
    if lines.len() > MAX_LINES {
        lines.truncate(MAX_LINES);
        lines.push("…");
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test` alone catches a spec change that was not regenerated.
    #[test]
    fn generated_code_is_up_to_date() {
        if let Err(message) = generate(&workspace_root(), true) {
            panic!("{message}");
        }
    }

    /// The rendered page holds every operation and every example; loaded in headless Chromium
    /// (installed by `.ci/run`), the browser's DOM holds them too.
    #[test]
    fn the_reference_page_shows_every_operation_and_example() {
        let spec = Spec::load_workspace().unwrap();
        let html = docs::render(&spec);
        assert!(!html.contains("{{"), "a template placeholder was left");
        assert!(
            !html.contains("http://") && !html.contains("<script src") && !html.contains("<link"),
            "the page must not load anything"
        );
        let mut expected: Vec<String> = Vec::new();
        for op in spec.operations() {
            expected.push(format!("id=\"op-{}\"", op.operation_id.unwrap()));
        }
        for example in spec.examples() {
            expected.push(format!("id=\"example-{}\"", docs::escape(&example.name)));
            let json = serde_json::to_string_pretty(&example.value).unwrap();
            let escaped = docs::escape(&json);
            expected.push(
                escaped
                    .lines()
                    .nth(1)
                    .unwrap_or(&escaped)
                    .trim()
                    .to_string(),
            );
        }
        for needle in &expected {
            assert!(html.contains(needle.as_str()), "the page lacks {needle}");
        }

        let browser = ["chromium", "chromium-browser"].into_iter().find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let Some(browser) = browser else {
            // CI installs Chromium and must run this part; a workstation may not have it.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must have chromium for the browser check"
            );
            eprintln!("note: no chromium here: the page was checked as text, not in a browser");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("api-reference.html");
        std::fs::write(&page, &html).unwrap();
        let out = std::process::Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg("--dump-dom")
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap();
        let dom = String::from_utf8_lossy(&out.stdout);
        assert!(
            dom.contains("<h2>Operations</h2>"),
            "the browser rendered no page: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for needle in &expected {
            // A browser writes quotes in text as they are.
            let needle = needle.replace("&quot;", "\"");
            assert!(dom.contains(&needle), "the browser's page lacks {needle}");
        }
    }

    #[test]
    fn a_stale_file_is_shown_as_a_diff() {
        let diff = stale_diff("a\nb\nc\n", "a\nB\nc\n");
        assert!(diff.contains("-b") && diff.contains("+B"), "{diff}");
        let long: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert!(stale_diff("", &long).ends_with('…'));
    }

    #[test]
    fn generation_is_deterministic() {
        let spec = Spec::load_workspace().unwrap();
        assert_eq!(codegen::generate(&spec), codegen::generate(&spec));
    }
}

//! The workspace's tasks: `cargo xtask generate` writes the client's generated module from
//! `spec/openapi.yaml`; `cargo xtask check` fails when the spec is unsound or that module
//! is stale.

mod codegen;
mod extensible_enum;
mod facts;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mde_spec::Spec;

/// The generated module, relative to the workspace root.
const GENERATED: &str = "crates/mde-client/src/generated.rs";

const USAGE: &str = "usage: cargo xtask <generate|check>
  generate  regenerate crates/mde-client/src/generated.rs from spec/openapi.yaml
  check     fail if the spec is unsound or the generated code is stale";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["generate"] => false,
        ["check"] => true,
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match generate(&workspace_root(), check) {
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
            "{GENERATED} is stale ({}): run `cargo xtask generate`",
            first_difference(&current, &code)
        ));
    }
    std::fs::write(&path, code).map_err(|e| format!("cannot write {GENERATED}: {e}"))?;
    Ok(format!("{GENERATED}: regenerated from spec/openapi.yaml"))
}

/// Where two texts part, for the stale-code message.
fn first_difference(old: &str, new: &str) -> String {
    let mut old_lines = old.lines();
    let mut new_lines = new.lines();
    for line in 1.. {
        match (old_lines.next(), new_lines.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (None, None) => break,
            (a, b) => {
                return format!(
                    "first difference at line {line}: on disk {:?}, from the spec {:?}",
                    a.unwrap_or("<end of file>"),
                    b.unwrap_or("<end of file>")
                );
            }
        }
    }
    "they differ in line endings".to_string()
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

    #[test]
    fn generation_is_deterministic() {
        let spec = Spec::load_workspace().unwrap();
        assert_eq!(codegen::generate(&spec), codegen::generate(&spec));
    }
}

//! Writes the command line's reference into the docs folder given (`cargo xtask generate`
//! runs it), or with `--check` says which file is stale and exits 1.

mod render;

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, docs) = match args.as_slice() {
        [flag, docs] if flag == "--check" => (true, Path::new(docs)),
        [docs] => (false, Path::new(docs)),
        _ => {
            eprintln!("usage: reference [--check] DOCS_DIR");
            return ExitCode::from(2);
        }
    };
    let mut stale = 0;
    for (path, content) in render::files() {
        let file = docs.join(&path);
        if std::fs::read(&file).ok().as_deref() == Some(&content[..]) {
            continue;
        }
        if check {
            eprintln!("{} is stale: run `cargo xtask generate`", file.display());
            stale += 1;
        } else if let Err(e) = write(&file, &content) {
            eprintln!("cannot write {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    }
    if stale > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn write(file: &Path, content: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(file, content)
}

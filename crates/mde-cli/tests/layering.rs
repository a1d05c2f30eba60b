//! The imports of `mde` run one way: the entry point (`main.rs`, `app.rs`), then the commands
//! (`commands/`), then the services they share (every other module), then `mde-client`. A
//! service never names a command or the entry point; a command never names the entry point.

use std::path::Path;

fn sources(dir: &Path, found: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

#[test]
fn imports_run_from_the_entry_point_to_the_commands_to_the_services() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if ["main.rs", "lib.rs", "app.rs"].contains(&relative.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let command = relative.starts_with("commands/");
        let mut forbidden = vec!["crate::app"];
        if !command {
            forbidden.push("crate::commands");
        }
        for name in forbidden {
            if text.contains(name) {
                wrong.push(format!("{relative} names {name}"));
            }
        }
    }
    assert!(
        files.len() > 10,
        "the sources were not found: {}",
        src.display()
    );
    assert!(
        wrong.is_empty(),
        "imports against the direction: {wrong:#?}"
    );
}

//! The command line's reference in the book (`docs/src/reference/cli.md`) and its man pages
//! (`docs/man`) are what `mde`'s clap definition renders: a flag or help text changed without
//! `cargo xtask generate` fails here, as a stale client fails `cargo xtask check`.

#[path = "../examples/reference/render.rs"]
mod render;

#[test]
fn test_the_reference_and_man_pages_are_fresh() {
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let files = render::files();
    let mut stale = Vec::new();
    for (path, content) in &files {
        if std::fs::read(docs.join(path)).ok().as_ref() != Some(content) {
            stale.push(path.clone());
        }
    }
    assert!(
        stale.is_empty(),
        "stale, run `cargo xtask generate`: {stale:?}"
    );
    // A man page no command renders any more is stale too.
    let rendered: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
    for entry in std::fs::read_dir(docs.join("man")).unwrap() {
        let path = format!("man/{}", entry.unwrap().file_name().to_string_lossy());
        assert!(
            rendered.contains(&path),
            "{path}: no command renders it; remove it"
        );
    }
    // Every command is in the book's page.
    let page = String::from_utf8(files[0].1.clone()).unwrap();
    for command in ["mde scan", "mde package collect", "mde live", "mde isolate"] {
        assert!(page.contains(&format!("## `{command}`")), "{command}");
    }
}

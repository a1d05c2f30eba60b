//! The book (`docs/`) and the README hold together: every page is in `SUMMARY.md` and every
//! page there exists, and every link between them (and to the repository's files) reaches a
//! file, and a heading where it names one. `mdbook build docs` (CI) renders what this checks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md, CONTRIBUTING.md and every page of the book.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut dirs = vec![root().join("docs/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                pages.push(path);
            }
        }
    }
    pages
}

/// The links of a markdown page outside its code: each `](target)`.
fn links(page: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_code = false;
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Inline code is not a link.
        let text: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = text.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

/// A heading's anchor as mdBook makes it: lower case, spaces to `-`, other punctuation gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(page: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in page.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && let Some(heading) = line.strip_prefix('#') {
            found.insert(anchor(heading.trim_start_matches('#')));
        }
    }
    found
}

/// Why `target`, linked from `page`, reaches nothing; `None` when it reaches its file (and
/// heading).
fn broken(page: &Path, target: &str) -> Option<String> {
    if target.starts_with("https://")
        || target.starts_with("http://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    let (file, heading) = match target.split_once('#') {
        Some((file, heading)) => (file, Some(heading)),
        None => (target, None),
    };
    let path = if file.is_empty() {
        page.to_path_buf()
    } else {
        page.parent().unwrap().join(file)
    };
    if !path.exists() {
        return Some(format!("{target}: no such file"));
    }
    let heading = heading?;
    let text = std::fs::read_to_string(&path).ok()?;
    (!anchors(&text).contains(heading)).then(|| format!("{target}: no heading #{heading}"))
}

#[test]
fn every_link_of_the_book_and_the_readme_reaches_its_page_and_heading() {
    let mut broken_links = Vec::new();
    let mut count = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for target in links(&text) {
            count += 1;
            if let Some(why) = broken(&page, &target) {
                broken_links.push(format!(
                    "{}: {why}",
                    page.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(count > 40, "only {count} links found: the finder is broken");
    assert!(
        broken_links.is_empty(),
        "broken links:\n{}",
        broken_links.join("\n")
    );
}

#[test]
fn every_page_is_in_the_summary_and_every_summary_entry_is_a_page() {
    let src = root().join("docs/src");
    let summary = std::fs::read_to_string(src.join("SUMMARY.md")).unwrap();
    let listed: BTreeSet<PathBuf> = links(&summary).iter().map(|l| src.join(l)).collect();
    let pages: BTreeSet<PathBuf> = pages()
        .into_iter()
        .filter(|p| p.starts_with(&src) && !p.ends_with("SUMMARY.md"))
        .collect();
    assert_eq!(listed, pages, "SUMMARY.md and the pages of docs/src differ");
}

#[test]
fn a_broken_link_is_found() {
    let page = root().join("docs/src/introduction.md");
    assert_eq!(broken(&page, "guide/evidence.md"), None);
    assert!(broken(&page, "guide/nowhere.md").is_some());
    assert!(broken(&page, "guide/evidence.md#no-such-heading").is_some());
    assert_eq!(anchor(" Journal and resume"), "journal-and-resume");
    assert_eq!(
        anchor("Following actions with `--wait`"),
        "following-actions-with---wait"
    );
}

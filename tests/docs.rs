//! The docs stay tied to the code: every registered model has its page, and every
//! relative link in the README and docs/ resolves.

use std::path::{Path, PathBuf};

use echolab::models::MODELS;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read docs dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// Targets of `[text](target)` links, without `#fragment`s; external links skipped.
fn relative_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        let target = target.split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target.to_string());
        }
        rest = &rest[end..];
    }
    links
}

#[test]
fn every_registered_model_has_a_page() {
    for model in MODELS {
        let page = root()
            .join("docs/models")
            .join(format!("{}.md", model.name));
        assert!(page.is_file(), "missing {}", page.display());
    }
}

#[test]
fn every_model_page_belongs_to_a_registered_model() {
    for entry in std::fs::read_dir(root().join("docs/models")).expect("docs/models") {
        let path = entry.expect("entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert!(
            MODELS.iter().any(|m| m.name == stem),
            "{} documents no registered model",
            path.display()
        );
    }
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read markdown");
        let dir = file.parent().unwrap_or(Path::new("."));
        for link in relative_links(&text) {
            if !dir.join(&link).exists() {
                broken.push(format!("{} -> {link}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The quoted names in the `CASES` list of `tests/faults.rs` (model names, as in
/// `case_for(.., &["fork"], ..)`, left out).
fn fault_case_names() -> Vec<String> {
    let source = std::fs::read_to_string(root().join("tests/faults.rs")).expect("faults.rs");
    let start = source
        .find("const CASES")
        .expect("a CASES list in faults.rs");
    let list = &source[start..start + source[start..].find("];").expect("end of CASES")];
    list.split('"')
        .skip(1)
        .step_by(2)
        .filter(|name| MODELS.iter().all(|m| m.name != *name))
        .map(str::to_string)
        .collect()
}

#[test]
fn reliability_table_names_every_fault_case() {
    let page = std::fs::read_to_string(root().join("docs/reliability.md")).expect("reliability.md");
    let names = fault_case_names();
    assert!(names.len() >= 10, "parsed only {names:?} from faults.rs");
    let missing: Vec<&String> = names
        .iter()
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/reliability.md does not name these fault cases: {missing:?}"
    );
}

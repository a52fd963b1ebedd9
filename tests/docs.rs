//! The docs stay tied to the code: every registered model has its page, the model
//! pages share one set of sections, the docs map's tables list exactly the registered
//! models and link every page, every relative link in the README and docs/ resolves (a
//! link to code names an item that its file defines, never a line), and
//! the bridge from the sockets course (docs/from-the-course.md) is linked from both
//! READMEs and names every registered model.

use std::path::{Path, PathBuf};

use echolab_registry::MODELS;

#[path = "docs/map.rs"]
mod map;

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

/// `[`name`](file.rs)` links: (markdown file, target, the label's path segments), for
/// labels that are one code name (`fn`/`const` prefixes and a trailing `(...)` dropped;
/// `Type::item` kept as two segments).
fn item_links(text: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("[`") {
        rest = &rest[start + 2..];
        let Some(label_end) = rest.find("`](") else {
            break;
        };
        let label = &rest[..label_end];
        rest = &rest[label_end + 3..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        rest = &rest[end..];
        if !target.split('#').next().unwrap_or("").ends_with(".rs") {
            continue;
        }
        let name = label
            .trim_start_matches("fn ")
            .trim_start_matches("const ")
            .split('(')
            .next()
            .unwrap_or("");
        let segments: Vec<String> = name.split("::").map(str::to_string).collect();
        let is_name = segments.iter().all(|s| {
            !s.is_empty()
                && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                && !s.starts_with(|c: char| c.is_ascii_digit())
        });
        if is_name {
            links.push((target.to_string(), segments));
        }
    }
    links
}

/// Whether `code` defines `name`: an item (`fn`, `struct`, `enum`, `trait`, `type`,
/// `const`, `static`, `mod`, `union`, `macro_rules!`), or a test case registered by its
/// quoted name (the libtest-mimic suites).
fn defines(code: &str, name: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let quoted = format!("\"{name}\"");
    code.contains(&quoted)
        || code.lines().any(|line| {
            let words: Vec<&str> = line
                .split(|c: char| !is_ident(c) && c != '!')
                .filter(|w| !w.is_empty())
                .collect();
            words.windows(2).any(|w| {
                w[1] == name
                    && matches!(
                        w[0],
                        "fn" | "struct"
                            | "enum"
                            | "trait"
                            | "type"
                            | "const"
                            | "static"
                            | "mod"
                            | "union"
                            | "macro_rules!"
                    )
            })
        })
}

/// Whether `code` defines the type `name` or implements something for it.
fn defines_type(code: &str, name: &str) -> bool {
    defines(code, name)
        || code.lines().any(|line| {
            let line = line.trim_start();
            line.starts_with("impl")
                && line
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .any(|w| w == name)
        })
}

#[test]
fn item_links_name_an_item_of_the_linked_file() {
    // Docs link to code by name, never by line: `[`Session::take_fin`](.../session.rs)`.
    // A line number drifts with every edit above it; a name either exists in that file or
    // this test says where it went missing.
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read markdown");
        let dir = file.parent().unwrap_or(Path::new("."));
        for (target, segments) in item_links(&text) {
            let path = target.split('#').next().unwrap_or("");
            let Ok(code) = std::fs::read_to_string(dir.join(path)) else {
                continue; // a missing file is `relative_links_resolve`'s to report
            };
            let (item, owners) = segments.split_last().expect("at least one segment");
            let owner_ok = owners.last().is_none_or(|owner| {
                // `Type::item`: the type is defined or implemented there, unless it is a
                // path into another crate (`echolab_proto::Session`).
                owner.starts_with(|c: char| c.is_lowercase()) || defines_type(&code, owner)
            });
            if !defines(&code, item) || !owner_ok {
                broken.push(format!(
                    "{}: `{}` -> {target}",
                    file.display(),
                    segments.join("::")
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links to items their file does not define:\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_link_points_at_a_line_number() {
    // `#L120` anchors drift as code moves; link the file and name the item instead.
    let mut lines = Vec::new();
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("read markdown");
        let mut rest = text.as_str();
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let target = &rest[..rest.find(')').unwrap_or(rest.len())];
            if let Some((_, anchor)) = target.split_once("#L") {
                if anchor.starts_with(|c: char| c.is_ascii_digit()) {
                    lines.push(format!("{} -> {target}", file.display()));
                }
            }
        }
    }
    assert!(lines.is_empty(), "line-number links:\n{}", lines.join("\n"));
}

/// The quoted names in the `CASES` list of `tests/faults.rs` (model names left out).
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

#[test]
fn the_course_bridge_names_every_registered_model() {
    // docs/from-the-course.md maps a sockets course onto the models: a model that
    // arrives without its place on that map leaves a learner no way in from the course.
    let page = read(&root().join("docs/from-the-course.md"));
    let missing: Vec<&str> = MODELS
        .iter()
        .map(|m| m.name)
        .filter(|name| !page.contains(&format!("`{name}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/from-the-course.md does not name these models (as `name`): {missing:?}"
    );
    for (readme, link) in [
        ("README.md", "docs/from-the-course.md"),
        ("docs/README.md", "from-the-course.md"),
    ] {
        assert!(
            relative_links(&read(&root().join(readme)))
                .iter()
                .any(|l| l == link),
            "{readme} does not link {link}"
        );
    }
}

/// The `## ` headings of a markdown text, outside fenced code blocks.
fn section_headings(text: &str) -> Vec<String> {
    let mut headings = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence {
            if let Some(heading) = line.strip_prefix("## ") {
                headings.push(heading.trim().to_string());
            }
        }
    }
    headings
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn every_model_page_has_the_same_sections_in_the_same_order() {
    let first = MODELS.first().expect("at least one model");
    let page = |name: &str| root().join("docs/models").join(format!("{name}.md"));
    let reference = section_headings(&read(&page(first.name)));
    assert!(
        reference.iter().any(|h| h == "Code walk-through"),
        "{}: no `## Code walk-through`",
        first.name
    );
    for model in MODELS {
        let headings = section_headings(&read(&page(model.name)));
        assert_eq!(
            headings, reference,
            "docs/models/{}.md sections differ from docs/models/{}.md",
            model.name, first.name
        );
    }
}

/// For every table in `text` whose header starts `| model |`: the first cells of its rows.
fn model_tables(text: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tables = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with("| model |") {
            continue;
        }
        let names = lines[i + 1..]
            .iter()
            .skip(1) // |---|---|
            .take_while(|l| l.starts_with('|'))
            .filter_map(|row| row.split('|').nth(1))
            .map(|cell| cell.trim().trim_matches('`').to_string())
            .collect();
        tables.push(names);
    }
    tables
}

#[test]
fn docs_summary_tables_list_exactly_the_registered_models() {
    let tables = model_tables(&read(&root().join("docs/README.md")));
    assert!(
        !tables.is_empty(),
        "docs/README.md has no `| model |` table"
    );
    let mut registered: Vec<String> = MODELS.iter().map(|m| m.name.to_string()).collect();
    registered.sort();
    for names in tables {
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            sorted, registered,
            "a docs/README.md table lists {names:?}, not exactly the registered models once each"
        );
    }
}

#[test]
fn docs_map_links_every_docs_page() {
    let map = root().join("docs/README.md");
    let linked: Vec<PathBuf> = relative_links(&read(&map))
        .iter()
        .filter_map(|link| root().join("docs").join(link).canonicalize().ok())
        .collect();
    let docs = root().join("docs").canonicalize().expect("docs");
    let map = map.canonicalize().expect("docs/README.md");
    let missing: Vec<String> = markdown_files()
        .into_iter()
        .filter_map(|file| file.canonicalize().ok())
        .filter(|file| file.starts_with(&docs) && *file != map && !linked.contains(file))
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "docs/README.md (the map) does not link:\n{}",
        missing.join("\n")
    );
}

/// The README's `## Layout` section, up to the next `## ` heading.
fn readme_layout() -> String {
    let readme = read(&root().join("README.md"));
    let start = readme
        .find("\n## Layout")
        .expect("README.md has a `## Layout` section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// Names of the entries of `dir` (relative to the root), sorted.
fn entries(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn readme_layout_names_every_crate_docs_page_and_script() {
    // A reader finds their way by the Layout; what it leaves out does not exist for them.
    let layout = readme_layout();
    let mut missing = Vec::new();
    // A model's crate is named as the model and covered by the one `crates/<model>` line:
    // adding a model does not touch the README.
    for name in entries("crates") {
        let model_crate =
            MODELS.iter().any(|m| m.name == name) && layout.contains("crates/<model> ");
        if !model_crate && !layout.contains(&format!("crates/{name} ")) {
            missing.push(format!("crates/{name}"));
        }
    }
    for name in entries("docs").into_iter().chain(entries("scripts")) {
        let named = if root().join("docs").join(&name).is_dir() {
            format!("{name}/")
        } else {
            name.clone()
        };
        if !layout.contains(&named) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md's Layout does not name: {missing:?}"
    );
}

/// Every `YYYY-MM-DD` date in `text` with what follows it (up to 12 characters).
fn dates(text: &str) -> Vec<(String, String)> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let is_date = |s: &[u8]| {
        s.len() == 10
            && s.iter().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    *b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    for i in 0..bytes.len().saturating_sub(9) {
        let before_ok = i == 0 || !bytes[i - 1].is_ascii_digit();
        if before_ok && bytes[i].is_ascii_digit() && is_date(&bytes[i..i + 10]) {
            let date = &text[i..i + 10];
            let after: String = text[i + 10..].chars().take(12).collect();
            found.push((date.to_string(), after));
        }
    }
    found
}

#[test]
fn every_cited_run_and_log_is_committed() {
    // A figure is only as good as its source: a page that cites a run ("the 2026-11-30
    // run", results/2026-11-30-vm-full) or a log must cite one a reader can open.
    let runs = entries("results");
    let mut missing = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        for (date, after) in dates(&text) {
            // A log's name may carry the date (`fork-cpu-window-2026-12-07-vm.log`): the
            // `.log` rule below checks those.
            let names_a_log = after
                .split(['(', ')', '[', ']', ' '])
                .next()
                .is_some_and(|w| w.ends_with(".log"));
            let cites_run = (after.starts_with(" run") || after.starts_with("-vm")) && !names_a_log;
            if cites_run && !runs.iter().any(|r| r.starts_with(&date)) {
                missing.push(format!("{}: {date}{after}", file.display()));
            }
        }
        for word in text.split(|c: char| c.is_whitespace() || "()[]`'\",;".contains(c)) {
            let word = word.trim_end_matches(['.', ':']);
            if let Some(idx) = word.find("results/") {
                let path = &word[idx..];
                let path = path.split('#').next().unwrap_or(path);
                let placeholder = path.contains('<');
                if path.len() > "results/".len() && !placeholder && !root().join(path).exists() {
                    missing.push(format!("{}: {path}", file.display()));
                }
            } else if word.ends_with(".log") && !word.contains('*') && !word.contains('<') {
                let name = word.rsplit('/').next().unwrap_or(word);
                if !root().join("results").join(name).is_file() {
                    missing.push(format!("{}: {word} (not under results/)", file.display()));
                }
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "docs cite runs or logs that are not committed:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_checked_prediction_cites_its_log() {
    // The sweeps that check a page's prediction were once "made for this section" and
    // never committed; a reader could not open them. The paragraph that introduces them
    // names the committed log (scripts/sweep.py writes it), which the test above then
    // requires to exist.
    let mut uncited = Vec::new();
    for model in MODELS {
        let path = root()
            .join("docs/models")
            .join(format!("{}.md", model.name));
        let text = read(&path);
        for (at, _) in text.match_indices("**The prediction, checked**") {
            let paragraph = text[at..].split("\n\n").next().unwrap_or_default();
            if !paragraph.contains("results/") {
                uncited.push(model.name);
            }
        }
    }
    assert!(
        uncited.is_empty(),
        "these pages check a prediction without naming the committed log it was read from: {uncited:?}"
    );
}

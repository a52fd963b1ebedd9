//! The per-model rows of README.md, docs/README.md and docs/from-the-course.md are built
//! from the registry (its order, names and `Runs` labels) and each model page's **At a
//! glance** lines, so adding a model touches its crate, the registry and its page:
//! `ECHOLAB_BLESS=1 cargo test --test docs map` then rewrites those rows, and this test
//! fails until it has. The figures a run measures (the numbers table's four figure
//! columns) belong to scripts/model_numbers.py: they are kept as they are, and a new
//! model's are dashes until a run fills them.

use std::collections::BTreeMap;

use echolab_registry::{Model, MODELS};

use super::{read, root};

/// The line that opens a page's glance list, and the keys it must hold, in order.
const GLANCE: &str = "**At a glance**";
const KEYS: [&str; 9] = [
    "its lesson",
    "from the course",
    "how it serves",
    "waits in",
    "on which thread or process",
    "what wakes it",
    "syscalls per message",
    "memory per idle connection",
    "what holds it",
];

/// A page's glance lines, by key.
#[derive(Debug)]
struct Glance(BTreeMap<&'static str, String>);

impl Glance {
    fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }
}

/// Reads the `- key: value` lines under the page's [`GLANCE`] line. Every key of
/// [`KEYS`] once, in that order, nothing else: a typo must not silently empty a column.
/// Values are table cells and list items in three files at three depths, so they hold no
/// `|` and no relative link.
fn glance(page: &str) -> Result<Glance, String> {
    let start = page
        .find(GLANCE)
        .ok_or_else(|| format!("no `{GLANCE}` line"))?;
    let lines = page[start..]
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with("- "));
    let mut fields = BTreeMap::new();
    let mut order = Vec::new();
    for line in lines {
        let (key, value) = line[2..]
            .split_once(": ")
            .ok_or_else(|| format!("`{line}` is not `- key: value`"))?;
        let key = KEYS
            .iter()
            .find(|k| **k == key)
            .ok_or_else(|| format!("unknown key `{key}` (the keys: {KEYS:?})"))?;
        if value.contains('|') || value.contains("](") {
            return Err(format!(
                "`{key}` holds a `|` or a link: glance values are plain table cells"
            ));
        }
        if fields.insert(*key, value.trim().to_string()).is_some() {
            return Err(format!("`{key}` twice"));
        }
        order.push(*key);
    }
    if order != KEYS {
        return Err(format!("keys {order:?}, expected {KEYS:?} in that order"));
    }
    Ok(Glance(fields))
}

/// Where generated rows go in one file.
enum Region {
    /// The rows of the table whose header line starts with `header`.
    Table {
        header: &'static str,
        models: fn(&Model) -> bool,
        row: fn(&Model, &Glance, Option<&[String]>) -> Vec<String>,
    },
    /// The numbered list right after the `marker` line, numbered from after the
    /// models that come before it in the registry (the reading order runs on).
    List {
        marker: &'static str,
        models: fn(&Model) -> bool,
    },
}

fn any_model(_: &Model) -> bool {
    true
}

fn stream(model: &Model) -> bool {
    model.is_stream()
}

fn datagram(model: &Model) -> bool {
    !model.is_stream()
}

/// Every generated region, by file.
fn regions() -> Vec<(&'static str, Vec<Region>)> {
    vec![
        (
            "README.md",
            vec![Region::Table {
                header: "| model | how it serves | waits in |",
                models: any_model,
                row: |m, g, _| {
                    vec![
                        format!("`{}`", m.name),
                        g.get("how it serves").into(),
                        g.get("waits in").into(),
                    ]
                },
            }],
        ),
        (
            "docs/README.md",
            vec![
                Region::List {
                    marker: "<!-- reading order: stream models -->",
                    models: stream,
                },
                Region::List {
                    marker: "<!-- reading order: datagram models -->",
                    models: datagram,
                },
                Region::Table {
                    header: "| model | runs connections |",
                    models: any_model,
                    row: |m, g, _| {
                        vec![
                            m.name.into(),
                            m.runs.label().into(),
                            g.get("waits in").into(),
                            g.get("on which thread or process").into(),
                            g.get("what wakes it").into(),
                        ]
                    },
                },
                Region::Table {
                    header: "| model | syscalls per message",
                    models: any_model,
                    row: |m, g, old| {
                        let mut cells = vec![m.name.into(), g.get("syscalls per message").into()];
                        match old {
                            Some(old) if old.len() == 6 => cells.extend_from_slice(&old[2..]),
                            _ => cells.extend(
                                ["– (not in the cited run)".to_string()]
                                    .into_iter()
                                    .chain(std::iter::repeat_n("–".to_string(), 3)),
                            ),
                        }
                        cells
                    },
                },
                Region::Table {
                    header: "| model | memory per idle connection |",
                    models: any_model,
                    row: |m, g, _| {
                        vec![
                            m.name.into(),
                            g.get("memory per idle connection").into(),
                            g.get("what holds it").into(),
                        ]
                    },
                },
            ],
        ),
        (
            "docs/from-the-course.md",
            vec![Region::Table {
                header: "| model | from the course |",
                models: any_model,
                row: |m, g, _| {
                    vec![
                        format!("`{}`", m.name),
                        g.get("from the course").into(),
                        format!("[models/{0}.md](models/{0}.md)", m.name),
                    ]
                },
            }],
        ),
    ]
}

fn table_row(cells: &[String]) -> String {
    format!("| {} |", cells.join(" | "))
}

/// The cells of a table row, trimmed (the leading and trailing `|` dropped).
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(|c| c.trim().to_string()).collect()
}

/// `text` with `region`'s rows built from `models` (registry order).
fn rebuild(text: &str, region: &Region, models: &[(&Model, Glance)]) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let (anchor, skip, is_row): (&str, usize, fn(&str) -> bool) = match region {
        Region::Table { header, .. } => (header, 2, |l| l.starts_with('|')),
        Region::List { marker, .. } => (marker, 1, |l| {
            l.split_once(". ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        }),
    };
    let at = lines
        .iter()
        .position(|l| l.starts_with(anchor))
        .ok_or_else(|| format!("no line starting `{anchor}`"))?;
    let first = at + skip;
    let end = first + lines[first..].iter().take_while(|l| is_row(l)).count();
    let old: BTreeMap<String, Vec<String>> = lines[first..end]
        .iter()
        .map(|l| cells(l))
        .filter_map(|c| Some((c.first()?.trim_matches('`').to_string(), c)))
        .collect();
    let rows: Vec<String> = match region {
        Region::Table {
            models: wanted,
            row,
            ..
        } => models
            .iter()
            .filter(|(m, _)| wanted(m))
            .map(|(m, g)| table_row(&row(m, g, old.get(m.name).map(Vec::as_slice))))
            .collect(),
        Region::List { models: wanted, .. } => {
            let before = models.iter().take_while(|(m, _)| !wanted(m)).count();
            models
                .iter()
                .filter(|(m, _)| wanted(m))
                .enumerate()
                .map(|(i, (m, g))| {
                    format!(
                        "{}. [{1}](models/{1}.md) — {2}",
                        before + i + 1,
                        m.name,
                        g.get("its lesson")
                    )
                })
                .collect()
        }
    };
    let mut out: Vec<String> = lines[..first].iter().map(|l| l.to_string()).collect();
    out.extend(rows);
    out.extend(lines[end..].iter().map(|l| l.to_string()));
    let mut text_out = out.join("\n");
    if text.ends_with('\n') {
        text_out.push('\n');
    }
    Ok(text_out)
}

#[test]
fn per_model_rows_are_built_from_the_registry_and_the_pages() {
    let mut problems = Vec::new();
    let mut models = Vec::new();
    for model in MODELS {
        let page = read(
            &root()
                .join("docs/models")
                .join(format!("{}.md", model.name)),
        );
        match glance(&page) {
            Ok(g) => models.push((model, g)),
            Err(e) => problems.push(format!("docs/models/{}.md: {e}", model.name)),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let bless = std::env::var_os("ECHOLAB_BLESS").is_some();
    let mut stale = Vec::new();
    for (file, regions) in regions() {
        let path = root().join(file);
        let text = read(&path);
        let mut new = text.clone();
        for region in &regions {
            new = rebuild(&new, region, &models).unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        if new != text {
            if bless {
                std::fs::write(&path, &new).unwrap_or_else(|e| panic!("write {file}: {e}"));
            } else {
                stale.push(file);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?}: their model rows differ from the registry and the pages' `{GLANCE}` lines; \
         rewrite them with `ECHOLAB_BLESS=1 cargo test --test docs map` and read the diff"
    );
}

const PAGE: &str = "# m\n\n**At a glance** (…):\n\n- its lesson: L\n- from the course: C\n\
- how it serves: H\n- waits in: W\n- on which thread or process: T\n- what wakes it: K\n\
- syscalls per message: S\n- memory per idle connection: M\n- what holds it: O\n\n## The model\n";

#[test]
fn a_page_glance_is_read_and_a_broken_one_is_refused() {
    let g = glance(PAGE).expect("a complete glance");
    assert_eq!(g.get("waits in"), "W");
    assert_eq!(g.get("what holds it"), "O");
    let missing = PAGE.replace("- what wakes it: K\n", "");
    assert!(glance(&missing).unwrap_err().contains("expected"));
    let typo = PAGE.replace("- waits in: W", "- waits on: W");
    assert!(glance(&typo)
        .unwrap_err()
        .contains("unknown key `waits on`"));
    let piped = PAGE.replace("- waits in: W", "- waits in: a | b");
    assert!(glance(&piped).unwrap_err().contains("plain table cells"));
    assert!(glance("# m\n")
        .unwrap_err()
        .contains("no `**At a glance**`"));
}

#[test]
fn a_missing_row_comes_back_and_figures_stay() {
    let g = || glance(PAGE).expect("glance");
    let first = MODELS.first().expect("a model");
    let models = [(first, g())];
    let doc =
        "intro\n\n| model | syscalls per message | a | b | c | d |\n|---|---|---|---|---|---|\n\
               | gone | x | 1 | 2 | 3 | 4 |\n\nafter\n";
    let region = Region::Table {
        header: "| model | syscalls per message",
        models: any_model,
        row: |m, g, old| {
            let mut cells = vec![m.name.to_string(), g.get("syscalls per message").into()];
            cells.extend(old.map_or_else(|| vec!["–".to_string(); 4], |o| o[2..].to_vec()));
            cells
        },
    };
    let rebuilt = rebuild(doc, &region, &models).expect("rebuilt");
    assert!(
        !rebuilt.contains("| gone |"),
        "a row of no registered model stays: {rebuilt}"
    );
    assert!(rebuilt.contains(&format!("| {} | S | – | – | – | – |", first.name)));
    let with_figures = rebuilt.replace("| S | – | – | – | – |", "| S | 1 | 2 | 3 | 4 |");
    assert_eq!(
        rebuild(&with_figures, &region, &models).expect("rebuilt"),
        with_figures,
        "a run's figures are kept"
    );
    assert!(rebuilt.ends_with("\nafter\n"));
}

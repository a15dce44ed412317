//! `cargo xtask tidy`: the docs checked against the code, so they cannot drift.
//!
//! - Every repository path a Markdown file names in backticks (or links to) exists
//!   (`paths.rs` says what counts as one).
//! - Every module of the daemon (`actors/src/**.rs`) is named in ARCHITECTURE.md's code map.
//! - Every route of the daemon's route table (`static ROUTES`, read from the source) has a
//!   `METHOD /path` line in README.md's API section, and every such line is a route.
//! - Markdown has one sentence per line and no line twice (outside code and tables), so that
//!   merges can neither interleave nor double paragraphs.
//!
//! Each problem is printed as `file:line: what is wrong`.

mod code_map;
mod markdown;
mod paths;
mod prose;
mod routes;

use std::path::Path;
use std::process::Command;

use markdown::Doc;
use paths::Files;

/// Problems in one file: (line, what is wrong).
pub type Findings = Vec<(usize, String)>;

const ARCHITECTURE: &str = "ARCHITECTURE.md";
const README: &str = "README.md";

struct Problem {
    file: String,
    line: usize,
    message: String,
}

pub fn tidy(root: &Path) -> Result<(), String> {
    let files = Files::new(repository_files(root)?);
    let mut problems = Vec::new();
    let mut report = |file: &str, found: Findings| {
        problems.extend(found.into_iter().map(|(line, message)| Problem {
            file: file.to_string(),
            line,
            message,
        }));
    };
    let markdown: Vec<&str> = files.iter().filter(|f| f.ends_with(".md")).collect();
    for name in &markdown {
        let doc = Doc::parse(&read(root, name)?);
        report(name, prose::second_sentences(&doc));
        report(name, prose::repeated_lines(&doc));
        report(name, paths::unresolved(name, &doc, &files));
    }
    let architecture = Doc::parse(&read(root, ARCHITECTURE)?);
    report(ARCHITECTURE, code_map::check(&architecture, &files));
    let (table_file, source) = route_table(root, &files)?;
    let readme = Doc::parse(&read(root, README)?);
    let (missing, unknown) =
        routes::check(&source, &readme).map_err(|e| format!("{table_file}: {e}"))?;
    report(&table_file, missing);
    report(README, unknown);

    if problems.is_empty() {
        eprintln!("xtask: tidy: {} Markdown files checked", markdown.len());
        return Ok(());
    }
    problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    for p in &problems {
        eprintln!("{}:{}: {}", p.file, p.line, p.message);
    }
    Err(format!("tidy: {} problems in the docs", problems.len()))
}

fn read(root: &Path, name: &str) -> Result<String, String> {
    std::fs::read_to_string(root.join(name)).map_err(|e| format!("{name}: {e}"))
}

/// The route table's file (the first under `actors/src/` with `static ROUTES`) and its text.
fn route_table(root: &Path, files: &Files) -> Result<(String, String), String> {
    for name in files
        .iter()
        .filter(|f| f.starts_with(code_map::DAEMON_SOURCES) && f.ends_with(".rs"))
    {
        let source = read(root, name)?;
        if source.contains("static ROUTES") {
            return Ok((name.to_string(), source));
        }
    }
    Err(format!(
        "tidy: no `static ROUTES` under {}",
        code_map::DAEMON_SOURCES
    ))
}

/// The repository's files: what git tracks or would add (not what it ignores), or without
/// git, every file outside `target/`, `node_modules/` and hidden folders.
fn repository_files(root: &Path) -> Result<Vec<String>, String> {
    let listed = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output();
    match listed {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout)
            .split('\0')
            .filter(|f| !f.is_empty() && root.join(f).exists())
            .map(str::to_string)
            .collect()),
        _ => {
            let mut files = Vec::new();
            walk(root, "", &mut files)?;
            Ok(files)
        }
    }
}

fn walk(root: &Path, dir: &str, files: &mut Vec<String>) -> Result<(), String> {
    let path = root.join(dir);
    let entries = std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let relative = if dir.is_empty() {
            name
        } else {
            format!("{dir}/{name}")
        };
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &relative, files)?;
        } else {
            files.push(relative);
        }
    }
    Ok(())
}

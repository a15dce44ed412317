//! Which code spans name a repository path, and whether that path exists.
//!
//! A span names a repository path when it is one word of path characters with a `/` or a
//! known file extension.
//! Not repository paths: absolute paths (the device's files such as `/dev/hidg0`, routes such
//! as `/api/ws`: the repository's own paths are always written relative), URLs, placeholders
//! (`ROOT/...`, `DIR/...`, `<target>/...`, `$VAR/...`, `~/...`), build output under `target/`,
//! MIME types (`video/h264`), Rust paths (`a::b`), and other projects' files, written with their
//! repository (`sipeed/NanoKVM:server/config/hardware.go`, or just `sipeed/NanoKVM`).
//! A path is looked up relative to the document's folder, the repository root, and each folder
//! named in backticks in the headings above it (`### \`webroot/\`` lets that section say
//! `app.js`); `{a,b}` alternatives are expanded and `*` matches within one path component.
//! Relative link targets are checked too, relative to the document's folder.

use super::markdown::{Doc, Kind};
use super::Findings;

/// The paths a document names that do not exist: (line, message).
pub fn unresolved(doc_path: &str, doc: &Doc, files: &Files) -> Findings {
    let doc_dir = doc_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let folders = heading_folders(doc);
    let mut found = Vec::new();
    for span in &doc.code_spans {
        if !is_repository_path(&span.text) {
            continue;
        }
        let mut bases = vec![doc_dir, ""];
        bases.extend(
            folders
                .get(span.line)
                .into_iter()
                .flatten()
                .map(String::as_str),
        );
        bases.dedup();
        for path in expand(&span.text) {
            let exists = bases
                .iter()
                .filter_map(|base| join(base, &path))
                .any(|p| files.exists(&p));
            if !exists {
                let looked_in: Vec<String> = bases
                    .iter()
                    .map(|b| {
                        if b.is_empty() {
                            "the root".to_string()
                        } else {
                            format!("{b}/")
                        }
                    })
                    .collect();
                found.push((
                    span.line,
                    format!(
                        "`{path}` names no file or folder of the repository (looked in {})",
                        looked_in.join(", ")
                    ),
                ));
            }
        }
    }
    for link in &doc.links {
        let target = link.text.split('#').next().unwrap_or_default();
        let target = target.split_whitespace().next().unwrap_or_default();
        if target.is_empty() || target.contains(':') || target.starts_with('/') {
            continue;
        }
        if !join(doc_dir, target).is_some_and(|p| files.exists(&p)) {
            found.push((
                link.line,
                format!("the link to `{target}` leads to no file of the repository"),
            ));
        }
    }
    found
}

/// For each line (by number), the folders named in backticks by the headings above it.
fn heading_folders(doc: &Doc) -> Vec<Vec<String>> {
    let mut stack: Vec<(usize, Vec<String>)> = Vec::new();
    let mut by_line = vec![Vec::new()];
    for line in &doc.lines {
        if let Kind::Heading(level) = line.kind {
            stack.retain(|(l, _)| *l < level);
            let folders = doc
                .code_spans
                .iter()
                .filter(|s| {
                    s.line == line.number && s.text.ends_with('/') && is_repository_path(&s.text)
                })
                .map(|s| s.text.trim_end_matches('/').to_string())
                .collect();
            stack.push((level, folders));
        }
        by_line.push(stack.iter().flat_map(|(_, f)| f.clone()).collect());
    }
    by_line
}

/// The files of the repository, as relative paths with `/`.
pub struct Files {
    files: Vec<String>,
}

const EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "json", "js", "mjs", "html", "css", "c", "h", "sh", "lock", "svg", "yml",
    "yaml", "txt", "py",
];

/// GitHub owners whose repositories the docs cite (`owner/repo`, `owner/repo:path`).
const OTHER_PROJECTS: &[&str] = &["sipeed"];

const MIME_TYPES: &[&str] = &[
    "application",
    "audio",
    "font",
    "image",
    "multipart",
    "text",
    "video",
];

impl Files {
    pub fn new(mut files: Vec<String>) -> Files {
        files.sort();
        Files { files }
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(String::as_str)
    }

    /// Whether `path` (normalised, `*` allowed) is a file or a folder holding files.
    pub fn exists(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if path.is_empty() {
            return true;
        }
        let pattern: Vec<&str> = path.split('/').collect();
        self.files.iter().any(|f| {
            let parts: Vec<&str> = f.split('/').collect();
            parts.len() >= pattern.len()
                && pattern
                    .iter()
                    .zip(&parts)
                    .all(|(want, have)| wildcard(want, have))
        })
    }
}

/// Whether the span looks like a path in the repository (see the module's rules).
pub fn is_repository_path(span: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/._-*{},+@".contains(c);
    if span.is_empty() || !span.chars().all(allowed) || span.contains("::") {
        return false;
    }
    if span.starts_with(['/', '.', '-', '{', '*']) {
        return false;
    }
    let first = span.split('/').next().unwrap_or_default();
    let placeholder = !first.is_empty()
        && first
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if span.contains('/') {
        return !placeholder
            && first != "target"
            && !MIME_TYPES.contains(&first)
            && !OTHER_PROJECTS.contains(&first);
    }
    span.rsplit_once('.')
        .is_some_and(|(stem, ext)| !stem.is_empty() && EXTENSIONS.contains(&ext))
}

/// Every path `span` stands for: `{a,b}` alternatives expanded.
pub fn expand(span: &str) -> Vec<String> {
    let Some(open) = span.find('{') else {
        return vec![span.to_string()];
    };
    let Some(len) = span[open..].find('}') else {
        return vec![span.to_string()];
    };
    let (head, tail) = (&span[..open], &span[open + len + 1..]);
    span[open + 1..open + len]
        .split(',')
        .flat_map(|alt| expand(&format!("{head}{alt}{tail}")))
        .collect()
}

/// `base/path` with `.` and `..` resolved; `None` when it leaves the repository.
pub fn join(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in base.split('/').chain(path.split('/')) {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    let mut joined = parts.join("/");
    if path.ends_with('/') {
        joined.push('/');
    }
    Some(joined)
}

/// `*` matches any run of characters (within one component); everything else itself.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|&n| after.is_char_boundary(n))
                .any(|n| wildcard(rest, &after[n..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unresolved_in(doc_path: &str, source: &str) -> Vec<usize> {
        let files = Files::new(
            [
                "README.md",
                "protocol/README.md",
                "protocol/golden.json",
                "webroot/app.js",
            ]
            .map(String::from)
            .to_vec(),
        );
        unresolved(doc_path, &Doc::parse(source), &files)
            .into_iter()
            .map(|(line, _)| line)
            .collect()
    }

    #[test]
    fn paths_that_exist_pass() {
        let source =
            "See `protocol/golden.json`, `golden.json`, `/dev/hidg0` and [x](README.md#a).\n\
                      ## `webroot/`\n`app.js` and [up](../README.md).\n";
        assert_eq!(
            unresolved_in("protocol/README.md", source),
            Vec::<usize>::new()
        );
    }

    #[test]
    fn paths_that_do_not_exist_fail() {
        let source = "`protocol/gone.json`\n## `webroot/`\n`app.js`\n## Next\n`app.js` [x](nowhere.md)\n\n    `code/is.rs` skipped\n";
        assert_eq!(unresolved_in("README.md", source), [1, 5, 5]);
    }

    #[test]
    fn repository_paths_are_told_from_device_paths_routes_and_words() {
        for path in [
            "actors/src/web/routes.rs",
            "rootfs/INSTALL.md",
            "webroot/",
            "golden.json",
            "tests/tests/*.rs",
            "ffi/mock/",
            "rootfs/etc/init.d/S95nanokvmd",
        ] {
            assert!(is_repository_path(path), "{path} should be checked");
        }
        for other in [
            "/dev/hidg0",
            "/etc/kvm/hw",
            "/kvmapp/server/dl_lib",
            "/api/atx/{power,power-long,reset}",
            "ROOT/dev/hidg0..2",
            "DIR/libkvm.so",
            "<target>/bench/report.md",
            "target/dist/nanokvmd-riscv64/",
            "$XDG_STATE_HOME/nanokvmd",
            "~/.local/state/nanokvmd",
            "https://docs.rs/postcard",
            "video/h264",
            "multipart/x-mixed-replace",
            "cargo xtask tidy",
            "web::routes::dispatch",
            "libkvm.so",
            ".tar.gz",
            "--tls-cert",
            "setup-code",
            "replay:FILE",
            "sipeed/NanoKVM",
            "sipeed/NanoKVM:server/config/hardware.go",
        ] {
            assert!(!is_repository_path(other), "{other} should not be checked");
        }
    }

    #[test]
    fn alternatives_are_expanded() {
        assert_eq!(
            expand("a/{b,c}/d.{rs,md}"),
            ["a/b/d.rs", "a/b/d.md", "a/c/d.rs", "a/c/d.md"]
        );
        assert_eq!(expand("a/b.rs"), ["a/b.rs"]);
    }

    #[test]
    fn joins_relative_paths() {
        assert_eq!(join("rootfs", "../README.md").as_deref(), Some("README.md"));
        assert_eq!(join("", "./webroot/").as_deref(), Some("webroot/"));
        assert_eq!(join("", "../outside"), None);
    }

    #[test]
    fn files_and_folders_exist_and_others_do_not() {
        let files = Files::new(vec![
            "actors/src/main.rs".to_string(),
            "tests/tests/auth.rs".to_string(),
        ]);
        assert!(files.exists("actors/src/main.rs"));
        assert!(files.exists("actors/src/"));
        assert!(files.exists("tests/tests/*.rs"));
        assert!(!files.exists("actors/src/gone.rs"));
        assert!(!files.exists("actors/sr"));
        assert!(!files.exists("tests/tests/*.js"));
    }
}

//! The daemon's module graph has no import cycles.
//!
//! Every file under `actors/src` is a node; a `crate::…`, `super::…` or `self::…` path in it
//! is an edge to the file that defines the longest module prefix of that path.
//! A module's own descendants are its parts, not its imports: edges from a module to a module
//! inside it (a parent re-exporting its child, the crate root calling `daemon::run`) are not
//! counted, while a child using its parent's items is.
//! A cycle means two parts of the daemon cannot be understood, or moved, one without the other.
//!
//! `cargo test -p nanokvmd --test module_graph -- --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A module path below the crate root: `["media", "device"]`; the root is empty.
type ModPath = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `main.rs` is the root, `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_of(file: &Path) -> ModPath {
    let rel = file.strip_prefix(src_dir()).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && !(parts.is_empty() && stem == "main") {
        parts.push(stem.to_string());
    }
    parts
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// The source with comments, string and char literals blanked, so braces and paths in them
/// count for nothing.
fn code_only(src: &str) -> Vec<char> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::with_capacity(c.len());
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if c.get(i + 1) == Some(&'*') => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            'r' if (c.get(i + 1) == Some(&'#') || c.get(i + 1) == Some(&'"'))
                && (i == 0 || !is_ident(c[i - 1])) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while c.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if c.get(j) != Some(&'"') {
                    out.push(c[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                loop {
                    if j >= c.len() {
                        break;
                    }
                    if c[j] == '"' && (1..=hashes).all(|k| c.get(j + k) == Some(&'#')) {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                out.push(' ');
                i = j;
            }
            '"' => {
                i += 1;
                while i < c.len() && c[i] != '"' {
                    if c[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                out.push(' ');
            }
            '\'' => {
                // A char literal ('x', '\n', '\u{..}'), or a lifetime ('a), which is kept.
                if c.get(i + 1) == Some(&'\\') {
                    let mut j = i + 2;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                    out.push(' ');
                } else if c.get(i + 2) == Some(&'\'') {
                    i += 3;
                    out.push(' ');
                } else {
                    out.push('\'');
                    i += 1;
                }
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.c.len() && self.c[self.i].is_whitespace() {
            self.i += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.i;
        while self.i < self.c.len() && is_ident(self.c[self.i]) {
            self.i += 1;
        }
        (self.i > start).then(|| self.c[start..self.i].iter().collect())
    }

    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        let chars: Vec<char> = s.chars().collect();
        if self.c[self.i..].starts_with(&chars) {
            self.i += chars.len();
            true
        } else {
            false
        }
    }

    /// A path tail after `prefix::`: segments, `*`, or a `{…}` group; every full path
    /// reached goes to `out`.
    fn tree(&mut self, prefix: ModPath, out: &mut Vec<ModPath>) {
        if self.eat("{") {
            loop {
                if self.eat("}") {
                    return;
                }
                self.tree(prefix.clone(), out);
                if !self.eat(",") {
                    self.eat("}");
                    return;
                }
            }
        }
        if self.eat("*") {
            out.push(prefix);
            return;
        }
        let mut path = prefix;
        while let Some(seg) = self.ident() {
            if seg == "self" {
                break;
            }
            path.push(seg);
            if !self.eat("::") {
                break;
            }
            if self.c.get(self.i).is_some_and(|&c| c == '{' || c == '*')
                || self.peek_ws_then(&['{', '*'])
            {
                self.tree(path, out);
                return;
            }
        }
        out.push(path);
    }

    fn peek_ws_then(&self, chars: &[char]) -> bool {
        let mut j = self.i;
        while j < self.c.len() && self.c[j].is_whitespace() {
            j += 1;
        }
        self.c.get(j).is_some_and(|c| chars.contains(c))
    }
}

/// Every module path a file refers to, resolved to absolute paths (not yet to files).
fn references(file_mod: &ModPath, src: &str) -> Vec<ModPath> {
    let c = code_only(src);
    let mut out = Vec::new();
    // Braces opened by inline `mod name {` blocks, innermost last: (depth at opening, name).
    let mut inline: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < c.len() {
        let boundary = i == 0 || !is_ident(c[i - 1]) && c[i - 1] != ':';
        if c[i] == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if c[i] == '}' {
            depth = depth.saturating_sub(1);
            if inline.last().is_some_and(|(d, _)| *d == depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if !boundary || !is_ident(c[i]) {
            i += 1;
            continue;
        }
        let mut p = Parser { c: &c, i };
        let word = p.ident().unwrap_or_default();
        if word == "mod" {
            if let Some(m) = p.ident() {
                if p.eat("{") {
                    inline.push((depth, m));
                    depth += 1;
                }
            }
            i = p.i;
            continue;
        }
        // Where the path starts, relative to the module the code is in (file + inline mods).
        let here: ModPath = file_mod
            .iter()
            .cloned()
            .chain(inline.iter().map(|(_, m)| m.clone()))
            .collect();
        let base = match word.as_str() {
            "crate" if p.eat("::") => Some(Vec::new()),
            "self" if p.eat("::") => Some(here),
            "super" if p.eat("::") => {
                let mut base = here;
                base.pop();
                while p.eat("super") {
                    p.eat("::");
                    base.pop();
                }
                Some(base)
            }
            _ => None,
        };
        if let Some(base) = base {
            p.tree(base, &mut out);
        }
        i = p.i.max(i + 1);
    }
    out
}

struct Graph {
    modules: BTreeSet<ModPath>,
    edges: BTreeMap<ModPath, BTreeSet<ModPath>>,
}

fn graph() -> Graph {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let src = std::fs::read_to_string(file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        for path in references(&from, &src) {
            // The longest prefix that is a file of its own.
            let to = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|m| modules.contains(m))
                .unwrap_or_default();
            if to != from && !to.starts_with(&from) {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    Graph { modules, edges }
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<ModPath>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        next: usize,
        out: Vec<Vec<ModPath>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let g = s.g;
        for w in g.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                scc.push(w.clone());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                s.out.push(scc);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for m in &g.modules {
        if !s.index.contains_key(m) {
            visit(&mut s, m);
        }
    }
    s.out.sort();
    s.out
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    for (from, to) in &g.edges {
        let to: Vec<String> = to.iter().map(|m| name(m)).collect();
        println!("{} -> {}", name(from), to.join(", "));
    }
    let found = cycles(&g);
    let described: Vec<String> = found
        .iter()
        .map(|scc| {
            let names: Vec<String> = scc.iter().map(|m| name(m)).collect();
            let inner: Vec<String> = scc
                .iter()
                .flat_map(|a| {
                    g.edges
                        .get(a)
                        .into_iter()
                        .flatten()
                        .filter(|b| scc.contains(b))
                        .map(move |b| format!("{} -> {}", name(a), name(b)))
                })
                .collect();
            format!("{{{}}}: {}", names.join(", "), inner.join("; "))
        })
        .collect();
    assert!(
        found.is_empty(),
        "{} import cycle(s) between modules:\n{}",
        found.len(),
        described.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_in_groups_nested_modules_and_super() {
    let src = r#"
        use crate::{a::b, c::{d, e::F}};
        // crate::commented::Out
        const S: &str = "crate::in_a_string";
        fn f() { crate::g::h(); let _ = '{'; }
        mod inner { use super::super::up::X; }
    "#;
    let found = references(&vec!["m".to_string(), "n".to_string()], src);
    let names: Vec<String> = found.iter().map(|m| name(m)).collect();
    assert_eq!(names, ["a::b", "c::d", "c::e::F", "g::h", "m::up::X"]);
}

#[test]
fn a_cycle_is_named() {
    let m = |s: &str| -> ModPath { s.split("::").map(str::to_string).collect() };
    let mut edges = BTreeMap::new();
    edges.insert(m("a"), BTreeSet::from([m("b")]));
    edges.insert(m("b"), BTreeSet::from([m("c")]));
    edges.insert(m("c"), BTreeSet::from([m("a")]));
    edges.insert(m("d"), BTreeSet::from([m("a")]));
    let g = Graph {
        modules: [m("a"), m("b"), m("c"), m("d")].into_iter().collect(),
        edges,
    };
    assert_eq!(cycles(&g), vec![vec![m("a"), m("b"), m("c")]]);
}

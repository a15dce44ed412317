//! The daemon's route table, read from its source, against the README's API section.
//! Rows served by `asset` (the console's own files from `webroot/`) are the web console, not
//! the API, and need no line.

use super::markdown::{Doc, Kind, Line};
use super::paths::expand;
use super::Findings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The line of the row in the source.
    pub line: usize,
    /// `GET`, `POST` or `ANY`.
    pub method: String,
    pub path: String,
    pub prefix: bool,
    /// The handler's name, or `closure`.
    pub handler: String,
}

/// A `METHOD /path` written in the README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Documented {
    pub line: usize,
    pub method: String,
    pub path: String,
}

/// Routes without a line in the README's API section (at their line in `source`), and lines
/// there that name no route (at their line in the README).
pub fn check(source: &str, readme: &Doc) -> Result<(Findings, Findings), String> {
    let routes = parse_routes(source)?;
    let Some(section) = readme.section(|h| h.split_whitespace().any(|w| w == "API")) else {
        let missing = "no API section (a heading with the word API)".to_string();
        return Ok((Vec::new(), vec![(1, missing)]));
    };
    Ok(compare(&routes, &documented(section)))
}

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// The rows of `static ROUTES` in `source`: each `route(Verb, Exact("/p") | Prefix("/p"),
/// Access, handler)` call up to the closing `];`.
pub fn parse_routes(source: &str) -> Result<Vec<Route>, String> {
    let start = source
        .find("static ROUTES")
        .ok_or("no `static ROUTES` in the source")?;
    let first_line = source[..start].matches('\n').count() + 1;
    let table = &source[start..];
    let table = &table[..table
        .find("\n];")
        .ok_or("`static ROUTES` has no closing `];`")?];
    let table = strip_line_comments(table);
    let mut routes = Vec::new();
    let mut at = 0;
    while let Some(found) = table[at..].find("route(") {
        let call = at + found;
        at = call + "route(".len();
        let preceded_by_ident = table[..call]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if preceded_by_ident {
            continue;
        }
        let line = first_line + table[..call].matches('\n').count();
        let row = parse_row(&table[at..]).ok_or_else(|| {
            format!("line {line}: a route row this check cannot read (expected `route(Verb, Exact(\"/path\") or Prefix(\"/path\"), Access, handler)`)")
        })?;
        routes.push(Route { line, ..row });
    }
    if routes.is_empty() {
        return Err("`static ROUTES` has no `route(...)` rows".to_string());
    }
    Ok(routes)
}

/// `Verb, Exact("/p"), Access, handler` at the start of `args`.
fn parse_row(args: &str) -> Option<Route> {
    let (verb, rest) = ident(args)?;
    let rest = rest.trim_start().strip_prefix(',')?;
    let (kind, rest) = ident(rest)?;
    let rest = rest.trim_start().strip_prefix('(')?.trim_start();
    let rest = rest.strip_prefix('"')?;
    let (path, rest) = rest.split_once('"')?;
    let rest = rest.trim_start().strip_prefix(')')?;
    let rest = rest.trim_start().strip_prefix(',')?;
    let (_access, rest) = ident(rest)?;
    let rest = rest.trim_start().strip_prefix(',')?;
    let handler = ident(rest).map_or("closure", |(h, _)| h);
    let prefix = match kind {
        "Exact" => false,
        "Prefix" => true,
        _ => return None,
    };
    Some(Route {
        line: 0,
        method: verb.to_uppercase(),
        path: path.to_string(),
        prefix,
        handler: handler.to_string(),
    })
}

fn ident(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    let len = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (len > 0).then(|| s.split_at(len))
}

/// The source without `//` comments (outside string literals).
fn strip_line_comments(source: &str) -> String {
    source
        .lines()
        .map(|line| {
            let mut in_string = false;
            let mut previous = ' ';
            for (i, c) in line.char_indices() {
                match c {
                    '"' if previous != '\\' => in_string = !in_string,
                    '/' if !in_string && previous == '/' => return &line[..i - 1],
                    _ => {}
                }
                previous = c;
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `METHOD /path` in the section's prose and tables (code blocks are examples, not the
/// reference), with `{a,b}` expanded.
fn documented(section: &[Line]) -> Vec<Documented> {
    let mut found = Vec::new();
    for line in section {
        if !matches!(line.kind, Kind::Prose | Kind::Table) {
            continue;
        }
        let words: Vec<&str> = line
            .text
            .split(|c: char| c.is_whitespace() || c == '`')
            .collect();
        for pair in words.windows(2) {
            let (method, path) = (pair[0], pair[1]);
            if !METHODS.contains(&method) || !path.starts_with('/') {
                continue;
            }
            let path = path.trim_end_matches(|c: char| ",;:.)".contains(c));
            for path in expand(path) {
                found.push(Documented {
                    line: line.number,
                    method: method.to_string(),
                    path,
                });
            }
        }
    }
    found
}

impl Route {
    pub fn is_asset(&self) -> bool {
        self.handler == "asset"
    }

    fn matches(&self, doc: &Documented) -> bool {
        let method = match self.method.as_str() {
            "ANY" => true,
            "GET" => doc.method == "GET" || doc.method == "HEAD",
            m => doc.method == m,
        };
        let path = if self.prefix {
            doc.path.starts_with(&self.path)
        } else {
            doc.path == self.path
        };
        method && path
    }

    fn written(&self) -> String {
        let method = if self.method == "ANY" {
            "GET or POST"
        } else {
            &self.method
        };
        let star = if self.prefix { "…" } else { "" };
        format!("`{method} {}{star}`", self.path)
    }
}

/// What does not match: routes without a line (with the route's source line) and lines that
/// name no route (with the README's line).
fn compare(routes: &[Route], documented: &[Documented]) -> (Findings, Findings) {
    let missing = routes
        .iter()
        .filter(|r| !r.is_asset() && !documented.iter().any(|d| r.matches(d)))
        .map(|r| {
            (
                r.line,
                format!(
                    "route {} has no line in the README's API section",
                    r.written()
                ),
            )
        })
        .collect();
    let unknown = documented
        .iter()
        .filter(|d| !routes.iter().any(|r| r.matches(d)))
        .map(|d| {
            (
                d.line,
                format!("`{} {}` is not a route of the daemon", d.method, d.path),
            )
        })
        .collect();
    (missing, unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = r#"
pub static ROUTES: &[Route] = &[
    route(Get, Exact("/api/ws"), Authenticated, |req, ctx| {
        Box::pin(async move { ws::upgrade(req, ctx) })
    }),
    // route(Post, Exact("/commented/out"), Public, nothing),
    route(
        Post,
        Exact("/api/auth/password"),
        Authenticated,
        |req, ctx| Box::pin(auth_api::change_password(req, ctx)),
    ),
    route(Any, Prefix("/api/atx/"), Authenticated, atx),
    route(Get, Exact("/login.html"), Public, asset),
];

const fn route() {}
"#;

    #[test]
    fn reads_the_rows_of_the_route_table() {
        let routes = parse_routes(SOURCE).unwrap_or_default();
        let rows: Vec<(&str, &str, bool, &str)> = routes
            .iter()
            .map(|r| {
                (
                    r.method.as_str(),
                    r.path.as_str(),
                    r.prefix,
                    r.handler.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("GET", "/api/ws", false, "closure"),
                ("POST", "/api/auth/password", false, "closure"),
                ("ANY", "/api/atx/", true, "atx"),
                ("GET", "/login.html", false, "asset"),
            ]
        );
        assert_eq!(routes[0].line, 3);
        assert_eq!(routes[1].line, 7);
    }

    #[test]
    fn a_table_it_cannot_read_is_an_error() {
        assert!(parse_routes("fn main() {}").is_err());
        assert!(parse_routes("static ROUTES: &[Route] = &[\n    route(Get, \"/x\"),\n];").is_err());
    }

    fn findings(readme: &str) -> (Findings, Findings) {
        check(SOURCE, &Doc::parse(readme)).unwrap_or_else(|e| (vec![(0, e)], Vec::new()))
    }

    #[test]
    fn every_route_documented_passes() {
        let readme = "## API\n\n- `GET /api/ws`: the console.\n\
                      - `POST /api/auth/password`: a new password.\n\
                      - `POST /api/atx/{power,reset}`: a press.\n";
        let (missing, unknown) = findings(readme);
        assert!(missing.is_empty(), "{missing:?}");
        assert!(unknown.is_empty(), "{unknown:?}");
    }

    #[test]
    fn a_missing_route_and_an_unknown_one_fail() {
        let readme = "## API\n\n- `GET /api/ws`: the console.\n- `POST /api/gone`: removed.\n\
                      \n    curl -X POST /api/auth/password\n\n## Other\n\n`POST /api/atx/power`\n";
        let (missing, unknown) = findings(readme);
        let missing: Vec<usize> = missing.iter().map(|(line, _)| *line).collect();
        assert_eq!(missing, [7, 13]);
        assert_eq!(unknown.len(), 1);
        assert_eq!(unknown[0].0, 4);
    }

    #[test]
    fn no_api_section_fails() {
        let (_, unknown) = findings("# Readme\n\n- `GET /api/ws`\n");
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].1.contains("no API section"));
    }
}

//! Every module of the daemon named in ARCHITECTURE.md's code map: each `.rs` file under
//! `actors/src/` by its path, a `mod.rs` also by its folder (`actors/src/web/`).

use super::markdown::{Doc, Line, Span};
use super::paths::{expand, Files};
use super::Findings;

pub const DAEMON_SOURCES: &str = "actors/src/";

/// Each module the code map does not name, at the code map's heading.
pub fn check(architecture: &Doc, files: &Files) -> Findings {
    let Some(section) = architecture.section(|h| h.trim().eq_ignore_ascii_case("code map")) else {
        return vec![(1, "no `## Code map` section".to_string())];
    };
    let heading = section.first().map_or(1, |l| l.number);
    unnamed_modules(files, section, &architecture.code_spans)
        .into_iter()
        .map(|m| {
            (
                heading,
                format!("the code map does not name the module `{m}`"),
            )
        })
        .collect()
}

/// The daemon's modules that no code span of the section names.
fn unnamed_modules(files: &Files, section: &[Line], spans: &[Span]) -> Vec<String> {
    let (first, last) = match (section.first(), section.last()) {
        (Some(f), Some(l)) => (f.number, l.number),
        _ => (0, 0),
    };
    let named: Vec<String> = spans
        .iter()
        .filter(|s| (first..=last).contains(&s.line))
        .flat_map(|s| expand(&s.text))
        .map(|p| p.trim_end_matches('/').to_string())
        .collect();
    files
        .iter()
        .filter(|f| f.starts_with(DAEMON_SOURCES) && f.ends_with(".rs"))
        .filter(|module| {
            let folder = module.strip_suffix("/mod.rs");
            !named
                .iter()
                .any(|n| n == module || Some(n.as_str()) == folder)
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidy::markdown::Doc;

    fn unnamed(architecture: &str) -> Vec<String> {
        check(&Doc::parse(architecture), &files())
            .into_iter()
            .map(|(_, message)| message)
            .collect()
    }

    fn files() -> Files {
        Files::new(
            [
                "actors/src/main.rs",
                "actors/src/web/mod.rs",
                "actors/src/web/routes.rs",
                "actors/src/media/h264.rs",
                "actors/src/media/jpeg.rs",
                "protocol/src/lib.rs",
            ]
            .map(String::from)
            .to_vec(),
        )
    }

    #[test]
    fn a_code_map_naming_every_module_passes() {
        let map = "## Code map\n\n- `actors/src/main.rs`: start.\n- `actors/src/web/`: the web \
                   actor; `actors/src/web/routes.rs` the table.\n- `actors/src/media/{h264,jpeg}.rs`: \
                   encoders.\n";
        assert!(unnamed(map).is_empty(), "{:?}", unnamed(map));
    }

    #[test]
    fn a_module_missing_from_the_code_map_fails() {
        let map = "`actors/src/media/h264.rs` outside.\n\n## Code map\n\n- `actors/src/main.rs`.\n\
                   - `actors/src/web/mod.rs`, `routes.rs`.\n- `actors/src/media/jpeg.rs`.\n\n\
                   ## Invariants\n\n`actors/src/web/routes.rs`\n";
        assert_eq!(
            unnamed(map),
            [
                "the code map does not name the module `actors/src/media/h264.rs`",
                "the code map does not name the module `actors/src/web/routes.rs`"
            ]
        );
    }

    #[test]
    fn no_code_map_fails() {
        let found = check(
            &Doc::parse("# Architecture\n\n`actors/src/main.rs`\n"),
            &files(),
        );
        assert_eq!(found, [(1, "no `## Code map` section".to_string())]);
    }
}

//! Every module of the daemon named in ARCHITECTURE.md's code map: each `.rs` file under
//! `actors/src/` by its path, a `mod.rs` also by its folder (`actors/src/web/`).

use super::markdown::Line;
use super::paths::{expand, Files};

pub const DAEMON_SOURCES: &str = "actors/src/";

/// The daemon's modules that no code span of the section names.
pub fn unnamed_modules(files: &Files, section: &[Line], spans: &[(usize, String)]) -> Vec<String> {
    let (first, last) = match (section.first(), section.last()) {
        (Some(f), Some(l)) => (f.number, l.number),
        _ => (0, 0),
    };
    let named: Vec<String> = spans
        .iter()
        .filter(|(line, _)| (first..=last).contains(line))
        .flat_map(|(_, text)| expand(text))
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
        let files = Files::new(
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
        );
        let doc = Doc::parse(architecture);
        let spans: Vec<(usize, String)> = doc
            .code_spans
            .iter()
            .map(|s| (s.line, s.text.clone()))
            .collect();
        let section = doc.section(|h| h.contains("Code map")).unwrap_or_default();
        unnamed_modules(&files, section, &spans)
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
            ["actors/src/media/h264.rs", "actors/src/web/routes.rs"]
        );
    }
}

//! Just enough Markdown for the checks: which lines are prose, headings, tables or code, the
//! inline code spans (which may run over a line break) and the link targets.
//! Indented code blocks are recognised only after a blank line, which is how these docs
//! write them; list items are not tracked.

/// What a line is, for the checks that look at prose only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blank,
    Prose,
    /// A `#` heading, with its level.
    Heading(usize),
    /// A table row (starts with `|`).
    Table,
    /// Inside a fenced or indented code block, fences included.
    Code,
}

#[derive(Debug)]
pub struct Line {
    /// 1-based, as editors and error messages count.
    pub number: usize,
    pub text: String,
    pub kind: Kind,
    /// The text with every code span (and link target) replaced by one `` ` ``, for the prose
    /// checks; empty for code lines.
    pub masked: String,
    /// For each character of `masked`, the index of the character of `text` it stands for.
    pub origin: Vec<usize>,
}

impl Line {
    /// The original text from the character that `masked[at..]` starts with.
    pub fn text_from_masked(&self, at: usize) -> String {
        let n = self.masked[..at].chars().count();
        let start = self.origin.get(n).copied().unwrap_or(0);
        self.text.chars().skip(start).collect()
    }
}

/// An inline code span or a link target, with the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub line: usize,
    pub text: String,
}

#[derive(Debug)]
pub struct Doc {
    pub lines: Vec<Line>,
    pub code_spans: Vec<Span>,
    pub links: Vec<Span>,
}

impl Doc {
    pub fn parse(source: &str) -> Doc {
        let mut lines = Vec::new();
        let mut code_spans = Vec::new();
        let mut links = Vec::new();
        let mut fence: Option<String> = None;
        let mut previous = Kind::Blank;
        // An open code span carried over a line break: its backtick count and what it holds.
        let mut open: Option<(usize, Span)> = None;
        for (i, text) in source.lines().enumerate() {
            let number = i + 1;
            let kind = classify(text, previous, &mut fence);
            if !matches!(kind, Kind::Prose | Kind::Table | Kind::Heading(_)) {
                // A code span does not run over a blank line or into a block.
                open = None;
            }
            let (masked, origin) = match kind {
                Kind::Prose | Kind::Table | Kind::Heading(_) => {
                    scan_inline(text, number, &mut open, &mut code_spans, &mut links)
                }
                _ => (String::new(), Vec::new()),
            };
            lines.push(Line {
                number,
                text: text.to_string(),
                kind,
                masked,
                origin,
            });
            previous = kind;
        }
        Doc {
            lines,
            code_spans,
            links,
        }
    }

    /// The lines under the first heading whose text satisfies `is_it`, up to the next heading
    /// of the same or a higher level; `None` when there is no such heading.
    pub fn section(&self, is_it: impl Fn(&str) -> bool) -> Option<&[Line]> {
        let start = self.lines.iter().position(|l| {
            matches!(l.kind, Kind::Heading(_)) && is_it(l.text.trim_start_matches('#'))
        })?;
        let Kind::Heading(level) = self.lines[start].kind else {
            return None;
        };
        let end = self.lines[start + 1..]
            .iter()
            .position(|l| matches!(l.kind, Kind::Heading(n) if n <= level))
            .map_or(self.lines.len(), |n| start + 1 + n);
        Some(&self.lines[start..end])
    }
}

fn classify(text: &str, previous: Kind, fence: &mut Option<String>) -> Kind {
    let trimmed = text.trim_start();
    if let Some(marker) = fence.as_deref() {
        if trimmed.starts_with(marker) {
            *fence = None;
        }
        return Kind::Code;
    }
    for marker in ["```", "~~~"] {
        if trimmed.starts_with(marker) {
            *fence = Some(marker.to_string());
            return Kind::Code;
        }
    }
    if trimmed.is_empty() {
        return Kind::Blank;
    }
    let indent = text.len() - trimmed.len();
    let indented = indent >= 4 || text.starts_with('\t');
    if indented && matches!(previous, Kind::Blank | Kind::Code) {
        // After a blank line (or more code) an indented line is code; a fenced block that just
        // closed does not count, but these docs never indent right after a fence.
        return Kind::Code;
    }
    if trimmed.starts_with('#') {
        let level = trimmed.chars().take_while(|&c| c == '#').count();
        return Kind::Heading(level);
    }
    if trimmed.starts_with('|') {
        return Kind::Table;
    }
    Kind::Prose
}

/// Collects the line's code spans and link targets; returns the line with each replaced by
/// one backtick, and where each of its characters comes from.
/// A code span that is a link's whole text (`` [`INSTALL.md`](rootfs/INSTALL.md) ``) is not
/// collected: the link's target is the path.
fn scan_inline(
    text: &str,
    number: usize,
    open: &mut Option<(usize, Span)>,
    code_spans: &mut Vec<Span>,
    links: &mut Vec<Span>,
) -> (String, Vec<usize>) {
    let chars: Vec<char> = text.chars().collect();
    let mut masked = String::new();
    let mut origin = Vec::new();
    let mut push = |masked: &mut String, c: char, from: usize| {
        masked.push(c);
        origin.push(from);
    };
    let mut i = 0;
    if let Some((ticks, mut span)) = open.take() {
        // Continuing a span from the line before: the line break counts as a space.
        span.text.push(' ');
        match find_closing(&chars, 0, ticks) {
            Some(end) => {
                span.text.extend(&chars[..end]);
                code_spans.push(trimmed_span(span));
                i = end + ticks;
            }
            None => {
                span.text.extend(&chars);
                *open = Some((ticks, span));
                return (masked, origin);
            }
        }
    }
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            let ticks = chars[i..].iter().take_while(|&&c| c == '`').count();
            let start = i + ticks;
            push(&mut masked, '`', i);
            match find_closing(&chars, start, ticks) {
                Some(end) => {
                    let link_text = i > 0
                        && chars[i - 1] == '['
                        && chars.get(end + ticks) == Some(&']')
                        && chars.get(end + ticks + 1) == Some(&'(');
                    if !link_text {
                        code_spans.push(trimmed_span(Span {
                            line: number,
                            text: chars[start..end].iter().collect(),
                        }));
                    }
                    i = end + ticks;
                }
                None => {
                    *open = Some((
                        ticks,
                        Span {
                            line: number,
                            text: chars[start..].iter().collect(),
                        },
                    ));
                    return (masked, origin);
                }
            }
            continue;
        }
        if c == ']' && chars.get(i + 1) == Some(&'(') {
            if let Some(len) = chars[i + 2..].iter().position(|&c| c == ')') {
                links.push(Span {
                    line: number,
                    text: chars[i + 2..i + 2 + len].iter().collect(),
                });
                for c in "](`)".chars() {
                    push(&mut masked, c, i);
                }
                i += len + 3;
                continue;
            }
        }
        push(&mut masked, c, i);
        i += 1;
    }
    (masked, origin)
}

/// Where the run of exactly `ticks` backticks that closes a span starts, from `from` on.
fn find_closing(chars: &[char], from: usize, ticks: usize) -> Option<usize> {
    let mut i = from;
    while i < chars.len() {
        if chars[i] == '`' {
            let run = chars[i..].iter().take_while(|&&c| c == '`').count();
            if run == ticks {
                return Some(i);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

fn trimmed_span(span: Span) -> Span {
    Span {
        line: span.line,
        text: span.text.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Kind> {
        Doc::parse(source).lines.iter().map(|l| l.kind).collect()
    }

    #[test]
    fn tells_code_tables_and_headings_from_prose() {
        let source = "# Title\n\nText.\n\n    cargo run\n\n```\nx. Y\n```\n| a | b |\n- item\n";
        assert_eq!(
            kinds(source),
            [
                Kind::Heading(1),
                Kind::Blank,
                Kind::Prose,
                Kind::Blank,
                Kind::Code,
                Kind::Blank,
                Kind::Code,
                Kind::Code,
                Kind::Code,
                Kind::Table,
                Kind::Prose,
            ]
        );
    }

    #[test]
    fn an_indented_continuation_of_a_paragraph_is_not_code() {
        assert_eq!(
            kinds("1. first\n    still the first item\n"),
            [Kind::Prose, Kind::Prose]
        );
    }

    #[test]
    fn collects_code_spans_and_masks_them() {
        let doc = Doc::parse("See `a/b.rs` and ``c ` d``. Then [x](e/f.md#top), [`g`](h.md).\n");
        let spans: Vec<&str> = doc.code_spans.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(spans, ["a/b.rs", "c ` d"]);
        let links: Vec<&str> = doc.links.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(links, ["e/f.md#top", "h.md"]);
        let line = &doc.lines[0];
        assert_eq!(line.masked, "See ` and `. Then [x](`), [`](`).");
        let at = line.masked.find("and").unwrap_or_default();
        assert!(line.text_from_masked(at).starts_with("and ``c"));
    }

    #[test]
    fn a_code_span_may_run_over_a_line_break_but_not_a_blank_line() {
        let doc = Doc::parse("a `b\nc` d\n\ne `f\n\ng\n");
        assert_eq!(
            doc.code_spans,
            [Span {
                line: 1,
                text: "b c".to_string()
            }]
        );
        assert_eq!(doc.lines[1].masked, " d");
    }

    #[test]
    fn a_section_ends_at_the_next_heading_of_its_level() {
        let doc = Doc::parse("# A\n## API\nx\n### Sub\ny\n## Next\nz\n");
        let section = doc.section(|h| h.contains("API")).map(<[Line]>::len);
        assert_eq!(section, Some(4));
        assert!(doc.section(|h| h.contains("Nope")).is_none());
    }
}

//! One sentence per line, and no line twice: the two rules that keep merges from interleaving
//! or doubling paragraphs.
//! Both look at prose and headings only, never at code or tables.

use super::markdown::{Doc, Kind};
use super::Findings;

/// Abbreviations whose full stop ends no sentence.
const ABBREVIATIONS: &[&str] = &["e.g.", "i.e.", "etc.", "cf.", "vs.", "approx.", "resp."];

/// The lines that hold a second sentence: a `.`, `?` or `!` followed by a space and a capital
/// letter or a code span.
pub fn second_sentences(doc: &Doc) -> Findings {
    doc.lines
        .iter()
        .filter(|l| matches!(l.kind, Kind::Prose | Kind::Heading(_)))
        .filter_map(|l| {
            let at = sentence_break(&l.masked)?;
            let rest: String = l.text_from_masked(at).chars().take(40).collect();
            Some((
                l.number,
                format!("a second sentence on one line: \"{rest}…\""),
            ))
        })
        .collect()
}

/// Where the second sentence starts in a masked line.
fn sentence_break(masked: &str) -> Option<usize> {
    // A numbered list item's "1. " is not a sentence.
    let body_start = list_marker_len(masked);
    let chars: Vec<(usize, char)> = masked.char_indices().collect();
    for (n, &(at, c)) in chars.iter().enumerate() {
        if at < body_start || !matches!(c, '.' | '?' | '!') {
            continue;
        }
        let Some(&(_, ' ')) = chars.get(n + 1) else {
            continue;
        };
        let Some(&(next_at, next)) = chars[n + 1..].iter().find(|(_, c)| *c != ' ') else {
            continue;
        };
        if !(next.is_uppercase() || next == '`') {
            continue;
        }
        let word_start = masked[..at]
            .rfind(|c: char| c.is_whitespace() || c == '(')
            .map_or(0, |p| p + 1);
        let word = masked[word_start..=at].to_lowercase();
        if c == '.' && ABBREVIATIONS.contains(&word.as_str()) {
            continue;
        }
        return Some(next_at);
    }
    None
}

fn list_marker_len(line: &str) -> usize {
    let trimmed = line.trim_start();
    let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && trimmed[digits..].starts_with(". ") {
        line.len() - trimmed.len() + digits + 2
    } else {
        0
    }
}

/// Lines that appear earlier in the same file, word for word: (line, the earlier line).
pub fn repeated_lines(doc: &Doc) -> Findings {
    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut found = Vec::new();
    for line in &doc.lines {
        if !matches!(line.kind, Kind::Prose | Kind::Heading(_)) {
            continue;
        }
        let text = line.text.trim();
        // Markup alone (a rule, a lone bracket) is not a paragraph a merge could double.
        if !text.chars().any(char::is_alphanumeric) {
            continue;
        }
        match seen.iter().find(|(t, _)| *t == text) {
            Some((_, first)) => found.push((
                line.number,
                format!("this line repeats line {first} word for word"),
            )),
            None => seen.push((text, line.number)),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_with_two_sentences(source: &str) -> Vec<usize> {
        second_sentences(&Doc::parse(source))
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn two_sentences_on_a_line_fail() {
        assert_eq!(lines_with_two_sentences("One. Two.\n"), [1]);
        assert_eq!(lines_with_two_sentences("Ok.\nIs it? Yes.\n"), [2]);
        assert_eq!(lines_with_two_sentences("One. `cargo` runs.\n"), [1]);
    }

    #[test]
    fn one_sentence_per_line_passes() {
        let good = "One sentence, e.g. Ctrl+C, i.e. Escape.\n\
                    A version 1.2 and `a. B` in code.\n\
                    1. A numbered item.\n\
                    **A bold lead.** Then its explanation.\n\
                    | a. B | table |\n\
                    \n    code. Block\n";
        assert_eq!(lines_with_two_sentences(good), Vec::<usize>::new());
    }

    #[test]
    fn a_repeated_line_fails_and_distinct_lines_pass() {
        let doubled = "# T\n\nSame line.\nOther.\nSame line.\n";
        let found = repeated_lines(&Doc::parse(doubled));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 5);
        assert!(found[0].1.contains("line 3"));
        let fine = "# T\n\nA.\n\n    code\n\n    code\n| x |\n| x |\n---\n---\n";
        assert!(repeated_lines(&Doc::parse(fine)).is_empty());
    }
}

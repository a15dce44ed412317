//! The bench report: one row per figure, with its target and verdict, printed as a table and
//! written as Markdown and JSON.

use serde_json::{json, Value};

/// How a figure compares with its target.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Pass,
    Fail,
    /// A figure without a target of its own (a reference point or a breakdown).
    Info,
    /// Could not be measured in this run; the reason says why.
    NotMeasured(String),
}

impl Verdict {
    /// Pass when `ok`, else fail.
    pub fn check(ok: bool) -> Verdict {
        if ok {
            Verdict::Pass
        } else {
            Verdict::Fail
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "FAIL",
            Verdict::Info => "-",
            Verdict::NotMeasured(_) => "not measured",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The numbering: "1a", "3", ...
    pub id: String,
    pub figure: String,
    /// The figure as shown, with its unit.
    pub value: String,
    pub target: String,
    pub verdict: Verdict,
    /// Which video source and load the row used.
    pub source: String,
    /// The numbers behind the figure, for the JSON report.
    pub data: Value,
}

impl Row {
    pub fn new(id: &str, figure: &str) -> Row {
        Row {
            id: id.into(),
            figure: figure.into(),
            value: String::new(),
            target: "-".into(),
            verdict: Verdict::Info,
            source: String::new(),
            data: Value::Null,
        }
    }

    pub fn value(mut self, value: impl Into<String>) -> Row {
        self.value = value.into();
        self
    }

    pub fn target(mut self, target: impl Into<String>, verdict: Verdict) -> Row {
        self.target = target.into();
        self.verdict = verdict;
        self
    }

    pub fn source(mut self, source: impl Into<String>) -> Row {
        self.source = source.into();
        self
    }

    pub fn data(mut self, data: Value) -> Row {
        self.data = data;
        self
    }

    /// A row whose figure could not be taken.
    pub fn not_measured(mut self, why: impl Into<String>) -> Row {
        let why = why.into();
        self.value = format!("not measured: {why}");
        self.verdict = Verdict::NotMeasured(why);
        self
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    /// Where the run happened and how: machine, command, binary, duration.
    pub context: Vec<(String, String)>,
    pub notes: Vec<String>,
}

const HEADERS: [&str; 6] = ["#", "figure", "value", "target", "verdict", "source"];

impl Report {
    fn cells(&self) -> Vec<[String; 6]> {
        self.rows
            .iter()
            .map(|r| {
                [
                    r.id.clone(),
                    r.figure.clone(),
                    r.value.clone(),
                    r.target.clone(),
                    r.verdict.label().to_string(),
                    r.source.clone(),
                ]
            })
            .collect()
    }

    /// A plain-text table for the terminal.
    pub fn table(&self) -> String {
        let cells = self.cells();
        let mut widths = HEADERS.map(str::len);
        for row in &cells {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |row: &[String]| {
            let cols: Vec<String> = row
                .iter()
                .zip(widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            cols.join(" | ").trim_end().to_string()
        };
        let mut out = String::new();
        out.push_str(&line(&HEADERS.map(String::from)));
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        out.push_str(&rule.join("-+-"));
        out.push('\n');
        for row in &cells {
            out.push_str(&line(row));
            out.push('\n');
        }
        out
    }

    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut out = String::from("# nanokvmd bench report\n\n");
        for (k, v) in &self.context {
            out.push_str(&format!("- **{}**: {}\n", esc(k), esc(v)));
        }
        out.push_str(&format!("\n| {} |\n", HEADERS.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(HEADERS.len())));
        for row in self.cells() {
            let cols: Vec<String> = row.iter().map(|c| esc(c)).collect();
            out.push_str(&format!("| {} |\n", cols.join(" | ")));
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        out
    }

    pub fn json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut v = json!({
                    "id": r.id, "figure": r.figure, "value": r.value, "target": r.target,
                    "verdict": r.verdict.label(), "source": r.source, "data": r.data,
                });
                if let Verdict::NotMeasured(why) = &r.verdict {
                    v["not_measured"] = json!(why);
                }
                v
            })
            .collect();
        let context: serde_json::Map<String, Value> = self
            .context
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({ "context": context, "rows": rows, "notes": self.notes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            rows: vec![
                Row::new("2a", "server time per frame")
                    .value("0.15 ms")
                    .target("<= 0.2 ms", Verdict::check(0.15 <= 0.2))
                    .source("replay | 4 viewers")
                    .data(json!({ "mean_ms": 0.15 })),
                Row::new("5", "input latency").not_measured("this build has no HID"),
            ],
            context: vec![("machine".into(), "2 cores".into())],
            notes: vec!["noisy".into()],
        }
    }

    #[test]
    fn table_aligns_columns_and_shows_verdicts() {
        let t = report().table();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("#  | figure"), "{t}");
        assert!(lines[2].contains("| pass "), "{t}");
        assert!(
            lines[3].contains("not measured: this build has no HID"),
            "{t}"
        );
        let bar = lines[0].find("| value").unwrap();
        assert_eq!(lines[2].find("| 0.15 ms"), Some(bar), "{t}");
    }

    #[test]
    fn markdown_escapes_pipes_and_lists_notes() {
        let md = report().markdown();
        assert!(md.contains("| 2a | server time per frame | 0.15 ms | <= 0.2 ms | pass | replay \\| 4 viewers |"), "{md}");
        assert!(md.contains("- **machine**: 2 cores"), "{md}");
        assert!(md.contains("## Notes\n\n- noisy\n"), "{md}");
    }

    #[test]
    fn json_keeps_the_data_and_why_a_row_is_missing() {
        let j = report().json();
        assert_eq!(j["rows"][0]["data"]["mean_ms"], 0.15);
        assert_eq!(j["rows"][0]["verdict"], "pass");
        assert_eq!(j["rows"][1]["verdict"], "not measured");
        assert_eq!(j["rows"][1]["not_measured"], "this build has no HID");
        assert_eq!(j["context"]["machine"], "2 cores");
    }
}

//! A scenario's findings: rows of a measure, its value and, where the scenario
//! expects something, whether it held. Numbers become text only here.

use std::fmt::Write as _;

use crate::load::Counts;

pub struct Report {
    pub title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

struct Row {
    measure: String,
    value: String,
    /// What was expected, and whether it held.
    expected: Option<(String, bool)>,
}

impl Report {
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_owned(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// A measure with nothing expected of it.
    pub fn info(&mut self, measure: &str, value: impl ToString) {
        self.rows.push(Row {
            measure: measure.to_owned(),
            value: value.to_string(),
            expected: None,
        });
    }

    /// A measure and what it must be.
    pub fn expect(&mut self, measure: &str, value: impl ToString, expected: &str, held: bool) {
        self.rows.push(Row {
            measure: measure.to_owned(),
            value: value.to_string(),
            expected: Some((expected.to_owned(), held)),
        });
    }

    /// A line under the table (the flips' latencies, what went wrong).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Requests, non-2xx, without answer and latency of the load; `strict`: both
    /// versions are healthy, so every request must get a 2xx.
    pub fn load(&mut self, c: &Counts, strict: bool) {
        self.info(
            "requests sent",
            format!(
                "{} over {:.1} s ({:.0}/s)",
                c.sent,
                c.span.as_secs_f64(),
                c.rate()
            ),
        );
        if strict {
            self.expect("non-2xx answers", c.non_2xx_text(), "0", c.non_2xx == 0);
            self.expect(
                "connection errors (no answer)",
                c.without_answer_text(),
                "0",
                c.without_answer() == 0,
            );
        } else {
            self.info("non-2xx answers", c.non_2xx_text());
            self.info("connection errors (no answer)", c.without_answer_text());
        }
        self.info(
            "answer latency p50 / p99 / max",
            format!("{:.2} / {:.2} / {:.1} ms", c.p50_ms, c.p99_ms, c.max_ms),
        );
    }

    pub fn passed(&self) -> bool {
        self.rows
            .iter()
            .all(|r| r.expected.as_ref().is_none_or(|(_, held)| *held))
    }

    pub fn text(&self) -> String {
        let width = self.rows.iter().map(|r| r.measure.len()).max().unwrap_or(0);
        let mut out = format!("{}\n", self.title);
        for r in &self.rows {
            let mark = match &r.expected {
                Some((_, true)) => String::new(),
                Some((want, false)) => format!("   << FAILED: expected {want}"),
                None => String::new(),
            };
            let _ = writeln!(out, "  {:<width$}  {}{mark}", r.measure, r.value);
        }
        for n in &self.notes {
            let _ = writeln!(out, "  {n}");
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "## {}\n\n| measure | value | expected |\n|---|---|---|\n",
            self.title
        );
        for r in &self.rows {
            let expected = match &r.expected {
                Some((want, true)) => format!("{want}: ok"),
                Some((want, false)) => format!("{want}: **FAILED**"),
                None => String::new(),
            };
            let _ = writeln!(out, "| {} | {} | {expected} |", r.measure, r.value);
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

pub fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

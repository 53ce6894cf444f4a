//! Cobertura XML (coverage.py's `coverage xml`, cargo-llvm-cov, gcovr, JaCoCo
//! converters): overall line coverage from the root's `lines-covered` over
//! `lines-valid` (or its `line-rate` when a tool leaves the counts out), and per
//! file from each `<class filename=...>`'s own `<line hits=...>` elements.

use std::collections::BTreeMap;

use super::ReportError;
use super::lcov::{CoverageSummary, FileCoverage};
use super::xml::{Elements, Step, local_name};

/// Read a Cobertura XML report.
///
/// # Errors
/// Not well-formed XML, a root other than `<coverage>`, or a rate or count that is
/// not a number.
pub fn read(bytes: &[u8]) -> Result<CoverageSummary, ReportError> {
    let mut doc = Elements::new(bytes, "Cobertura XML");
    let mut root: Option<Root> = None;
    // File -> line number -> whether it ran; a file may span several classes.
    let mut files: BTreeMap<String, BTreeMap<u64, bool>> = BTreeMap::new();
    // The open elements' names, to know a line's parents.
    let mut open: Vec<String> = Vec::new();
    let mut class_file: Option<String> = None;
    while let Some(step) = doc.next_step()? {
        let (element, empty, at) = match step {
            Step::Open { element, empty, at } => (element, empty, at),
            Step::Close => {
                if open.pop().as_deref() == Some("class") {
                    class_file = None;
                }
                continue;
            }
        };
        let name = local_name(&element);
        if root.is_none() {
            if name != "coverage" {
                return Err(doc.error_at(
                    at,
                    format!(
                        "the root element is <{name}>; a Cobertura report starts with <coverage>"
                    ),
                ));
            }
            root = Some(Root {
                line_rate: doc.number(&element, at, "line-rate")?,
                lines_valid: doc.number(&element, at, "lines-valid")?,
                lines_covered: doc.number(&element, at, "lines-covered")?,
            });
        } else if name == "class" {
            let Some(file) = doc.attr(&element, at, "filename")? else {
                return Err(doc.error_at(at, "<class> has no `filename` attribute"));
            };
            files.entry(file.clone()).or_default();
            class_file = Some(file);
        } else if name == "line"
            && open.last().map(String::as_str) == Some("lines")
            && open.iter().rev().nth(1).map(String::as_str) == Some("class")
            && let Some(file) = &class_file
        {
            // A class's own `<lines>`, not the copies under `<methods>`.
            let number: Option<u64> = doc.number(&element, at, "number")?;
            let hits: Option<u64> = doc.number(&element, at, "hits")?;
            let (Some(number), Some(hits)) = (number, hits) else {
                return Err(doc.error_at(at, "<line> needs `number` and `hits` attributes"));
            };
            let ran = files
                .entry(file.clone())
                .or_default()
                .entry(number)
                .or_default();
            *ran |= hits > 0;
        }
        if !empty {
            open.push(name);
        }
    }
    let Some(root) = root else {
        return Err(ReportError::new(
            "not a Cobertura report: the file has no XML element",
        ));
    };
    let per_file: Vec<FileCoverage> = files
        .into_iter()
        .map(|(file, lines)| FileCoverage {
            file,
            lines_valid: lines.len() as u64,
            lines_covered: lines.values().filter(|ran| **ran).count() as u64,
        })
        .collect();
    let mut summary = CoverageSummary::of_files(per_file);
    match (root.lines_valid, root.lines_covered, root.line_rate) {
        (Some(valid), Some(covered), _) if valid > 0 => {
            summary.lines_valid = valid;
            summary.lines_covered = covered.min(valid);
            summary.line_rate = summary.lines_covered as f64 / valid as f64;
        }
        (_, _, Some(rate)) if summary.lines_valid == 0 => {
            if !(0.0..=1.0).contains(&rate) {
                return Err(ReportError::new(format!(
                    "Cobertura XML: <coverage line-rate=\"{rate}\"> is not between 0 and 1"
                )));
            }
            summary.line_rate = rate;
        }
        _ => {}
    }
    Ok(summary)
}

/// The root `<coverage>` element's totals.
struct Root {
    line_rate: Option<f64>,
    lines_valid: Option<u64>,
    lines_covered: Option<u64>,
}

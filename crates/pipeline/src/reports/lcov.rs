//! LCOV tracefiles (`lcov.info`, as geninfo, cargo-llvm-cov, coverage.py, Jest and
//! c8 write them): line coverage from each record's `LF:` (lines found) and `LH:`
//! (lines hit), or from its `DA:` lines when a tool leaves those out; and the line
//! coverage summary shared with Cobertura.

use cutover_spec::Percent;
use serde::Serialize;

use super::ReportError;

/// How many of the least-covered files a summary lists.
pub const LOWEST_LISTED: usize = 10;

/// Line coverage, overall and by file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageSummary {
    /// Lines that could run.
    pub lines_valid: u64,
    /// Of those, lines that ran.
    pub lines_covered: u64,
    /// Covered over valid as a fraction (0.0 to 1.0); a Cobertura report without
    /// line counts gives only this.
    pub line_rate: f64,
    /// Files in the report.
    pub files: u64,
    /// The least-covered files, lowest first, at most [`LOWEST_LISTED`].
    pub lowest: Vec<FileCoverage>,
}

/// Line coverage of one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCoverage {
    pub file: String,
    pub lines_valid: u64,
    pub lines_covered: u64,
}

impl FileCoverage {
    /// Covered over valid; a file with no lines counts as fully covered.
    pub fn line_rate(&self) -> f64 {
        if self.lines_valid == 0 {
            1.0
        } else {
            self.lines_covered as f64 / self.lines_valid as f64
        }
    }
}

impl CoverageSummary {
    /// The summary of `files`, counted line by line.
    pub(crate) fn of_files(mut files: Vec<FileCoverage>) -> CoverageSummary {
        let lines_valid = files.iter().map(|f| f.lines_valid).sum();
        let lines_covered = files.iter().map(|f| f.lines_covered).sum();
        let line_rate = if lines_valid == 0 {
            0.0
        } else {
            lines_covered as f64 / lines_valid as f64
        };
        let count = files.len() as u64;
        files.retain(|f| f.lines_valid > 0);
        files.sort_by(|a, b| {
            a.line_rate()
                .total_cmp(&b.line_rate())
                .then_with(|| b.lines_valid.cmp(&a.lines_valid))
                .then_with(|| a.file.cmp(&b.file))
        });
        files.truncate(LOWEST_LISTED);
        CoverageSummary {
            lines_valid,
            lines_covered,
            line_rate,
            files: count,
            lowest: files,
        }
    }

    pub(crate) fn problems(&self, min: Percent) -> Vec<String> {
        if self.lines_valid == 0 && self.line_rate == 0.0 {
            return vec!["the report counts no lines: nothing was measured".to_owned()];
        }
        // A hair of slack, so that 4 of 5 lines meets 80% whatever the rounding.
        if self.line_rate + 1e-9 < min.fraction() {
            return vec![format!(
                "line coverage {} is below the {min} required (`min_coverage`)",
                percent(self.line_rate)
            )];
        }
        Vec::new()
    }

    pub(crate) fn headline(&self) -> String {
        if self.lines_valid == 0 {
            format!("{} line coverage", percent(self.line_rate))
        } else {
            format!(
                "{} line coverage ({} of {} lines, {} files)",
                percent(self.line_rate),
                self.lines_covered,
                self.lines_valid,
                self.files
            )
        }
    }

    pub(crate) fn details(&self) -> Vec<String> {
        if self.lowest.is_empty() {
            return Vec::new();
        }
        let heading = if self.lowest.len() == LOWEST_LISTED {
            format!(
                "- the {LOWEST_LISTED} least covered of {} files:",
                self.files
            )
        } else {
            "- least covered files:".to_owned()
        };
        let mut lines = vec![heading];
        lines.extend(self.lowest.iter().map(|f| {
            format!(
                "  - `{}`: {} ({} of {} lines)",
                f.file,
                percent(f.line_rate()),
                f.lines_covered,
                f.lines_valid
            )
        }));
        lines
    }
}

/// `85.7%`.
fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// Read an LCOV tracefile.
///
/// # Errors
/// Not text, a malformed `SF:`, `DA:`, `LF:` or `LH:` line, or no `SF:` record at all.
pub fn read(bytes: &[u8]) -> Result<CoverageSummary, ReportError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ReportError::new(format!("not an LCOV tracefile: not UTF-8 text ({e})")))?;
    let mut files = Vec::new();
    let mut record: Option<Record> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        let bad = |what: &str| {
            ReportError::new(format!(
                "LCOV line {n}: `{}`: {what}",
                super::one_line(line, 80)
            ))
        };
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        match key {
            "" => {}
            "SF" => {
                if let Some(open) = record.take() {
                    files.push(open.finish());
                }
                if value.is_empty() {
                    return Err(bad("`SF:` must name the source file"));
                }
                record = Some(Record::new(value));
            }
            "end_of_record" => match record.take() {
                Some(open) => files.push(open.finish()),
                None => return Err(bad("`end_of_record` without an `SF:` line before it")),
            },
            "DA" | "LF" | "LH" => {
                let Some(open) = record.as_mut() else {
                    return Err(bad("outside a record: an `SF:` line must come first"));
                };
                match key {
                    "DA" => {
                        let mut parts = value.split(',');
                        let line_no = parts.next().and_then(|p| p.trim().parse::<u64>().ok());
                        // Hits may be negative in gcov's output of some compilers; any
                        // hit count above zero is "ran".
                        let hits = parts.next().and_then(|p| p.trim().parse::<i64>().ok());
                        let (Some(line_no), Some(hits)) = (line_no, hits) else {
                            return Err(bad("expected `DA:<line>,<hits>`"));
                        };
                        open.da.insert(line_no, hits > 0);
                    }
                    "LF" => {
                        open.found =
                            Some(number(value).ok_or_else(|| bad("expected `LF:<count>`"))?)
                    }
                    _ => {
                        open.hit = Some(number(value).ok_or_else(|| bad("expected `LH:<count>`"))?)
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(open) = record.take() {
        files.push(open.finish());
    }
    if files.is_empty() {
        return Err(ReportError::new(
            "not an LCOV tracefile: it has no `SF:` record",
        ));
    }
    Ok(CoverageSummary::of_files(files))
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// One `SF:` ... `end_of_record`.
struct Record {
    file: String,
    /// `DA:` lines: line number -> whether it ran.
    da: std::collections::BTreeMap<u64, bool>,
    found: Option<u64>,
    hit: Option<u64>,
}

impl Record {
    fn new(file: &str) -> Record {
        Record {
            file: file.to_owned(),
            da: Default::default(),
            found: None,
            hit: None,
        }
    }

    fn finish(self) -> FileCoverage {
        let da_valid = self.da.len() as u64;
        let da_covered = self.da.values().filter(|ran| **ran).count() as u64;
        let lines_valid = self.found.unwrap_or(da_valid);
        FileCoverage {
            file: self.file,
            lines_valid,
            lines_covered: self.hit.unwrap_or(da_covered).min(lines_valid),
        }
    }
}

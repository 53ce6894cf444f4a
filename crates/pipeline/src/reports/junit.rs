//! JUnit XML, as cargo-nextest, pytest, Maven Surefire, Jest and most test runners
//! write it: `<testsuites>` or a single `<testsuite>`, suites nested at any depth,
//! and `<testcase>` elements that count.
//!
//! Each test case is one of: failed (a `<failure>` child; Surefire and nextest add
//! `<rerunFailure>`s when retries failed too), errored (`<error>`), skipped
//! (`<skipped>`), flaky (only `<flakyFailure>` or `<flakyError>`: it failed, then
//! passed on a rerun) or passed. The counts come from the test cases, not from the
//! suites' `tests=`/`failures=` attributes, which tools fill in differently.

use serde::Serialize;

use super::xml::{Elements, Step, local_name};
use super::{MAX_LISTED, ReportError, count, more, one_line};

/// What a JUnit report says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JunitSummary {
    /// Test cases in the report, skipped ones included.
    pub tests: u64,
    /// Passed, flaky ones included.
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    /// Passed on a rerun after failing.
    pub flaky: u64,
    /// The failed and errored tests, at most [`MAX_LISTED`].
    pub failures: Vec<TestCase>,
    /// The flaky tests, at most [`MAX_LISTED`].
    pub flaky_tests: Vec<TestCase>,
}

/// One test case that did not simply pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestCase {
    /// `classname` and `name`, joined by a space when both are there.
    pub name: String,
    pub outcome: TestOutcome,
    /// The failure's `message` attribute, if any (for a flaky test, its first
    /// failure's).
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    Passed,
    Failed,
    Errored,
    Skipped,
    Flaky,
}

/// Read a JUnit XML report.
///
/// # Errors
/// Not well-formed XML, a root other than `<testsuites>` or `<testsuite>`, or a
/// `<testcase>` without a name.
pub fn read(bytes: &[u8]) -> Result<JunitSummary, ReportError> {
    let mut doc = Elements::new(bytes, "JUnit XML");
    let mut summary = JunitSummary {
        tests: 0,
        passed: 0,
        failed: 0,
        errored: 0,
        skipped: 0,
        flaky: 0,
        failures: Vec::new(),
        flaky_tests: Vec::new(),
    };
    let mut depth = 0usize;
    let mut root_seen = false;
    // The test case being read, and the depth of its element.
    let mut open_case: Option<(usize, Case)> = None;
    while let Some(step) = doc.next_step()? {
        match step {
            Step::Open { element, empty, at } => {
                let name = local_name(&element);
                if !root_seen {
                    root_seen = true;
                    if name != "testsuites" && name != "testsuite" {
                        return Err(doc.error_at(
                            at,
                            format!(
                                "the root element is <{name}>; a JUnit report starts with \
                                 <testsuites> or <testsuite>"
                            ),
                        ));
                    }
                }
                if let Some((case_depth, case)) = &mut open_case {
                    if depth == *case_depth + 1 {
                        let message = doc.attr(&element, at, "message")?;
                        case.saw(&name, message);
                    }
                } else if name == "testcase" {
                    let case = Case::new(&doc, &element, at)?;
                    if empty {
                        summary.add(case);
                    } else {
                        open_case = Some((depth, case));
                    }
                }
                if !empty {
                    depth += 1;
                }
            }
            Step::Close => {
                depth = depth.saturating_sub(1);
                if let Some((case_depth, _)) = &open_case
                    && *case_depth == depth
                {
                    let (_, case) = open_case.take().expect("checked just above");
                    summary.add(case);
                }
            }
        }
    }
    if !root_seen {
        return Err(ReportError::new(
            "not a JUnit report: the file has no XML element",
        ));
    }
    Ok(summary)
}

/// A test case as read so far.
struct Case {
    name: String,
    failure: Option<Option<String>>,
    error: Option<Option<String>>,
    skipped: bool,
    flaky: Option<Option<String>>,
}

impl Case {
    fn new(
        doc: &Elements<'_>,
        element: &quick_xml::events::BytesStart<'_>,
        at: u64,
    ) -> Result<Case, ReportError> {
        let Some(name) = doc.attr(element, at, "name")? else {
            return Err(doc.error_at(at, "<testcase> has no `name` attribute"));
        };
        let name = match doc.attr(element, at, "classname")? {
            Some(class) if !class.is_empty() => format!("{class} {name}"),
            _ => name,
        };
        Ok(Case {
            name,
            failure: None,
            error: None,
            skipped: false,
            flaky: None,
        })
    }

    /// A child element `name` of the test case, with its `message`.
    fn saw(&mut self, name: &str, message: Option<String>) {
        let first = |slot: &mut Option<Option<String>>| {
            if slot.is_none() {
                *slot = Some(message.clone());
            }
        };
        match name {
            "failure" => first(&mut self.failure),
            "error" => first(&mut self.error),
            "skipped" => self.skipped = true,
            "flakyFailure" | "flakyError" => first(&mut self.flaky),
            // `rerunFailure`/`rerunError` follow a `failure` or `error`, which decides.
            _ => {}
        }
    }

    fn outcome(&self) -> (TestOutcome, Option<String>) {
        if let Some(message) = &self.failure {
            (TestOutcome::Failed, message.clone())
        } else if let Some(message) = &self.error {
            (TestOutcome::Errored, message.clone())
        } else if self.skipped {
            (TestOutcome::Skipped, None)
        } else if let Some(message) = &self.flaky {
            (TestOutcome::Flaky, message.clone())
        } else {
            (TestOutcome::Passed, None)
        }
    }
}

impl TestOutcome {
    /// `passed`, `failed`, `errored`, `skipped` or `flaky`.
    pub fn as_str(self) -> &'static str {
        match self {
            TestOutcome::Passed => "passed",
            TestOutcome::Failed => "failed",
            TestOutcome::Errored => "errored",
            TestOutcome::Skipped => "skipped",
            TestOutcome::Flaky => "flaky",
        }
    }
}

impl JunitSummary {
    fn add(&mut self, case: Case) {
        self.tests += 1;
        let (outcome, message) = case.outcome();
        let listed = TestCase {
            name: case.name,
            outcome,
            message,
        };
        match outcome {
            TestOutcome::Passed => self.passed += 1,
            TestOutcome::Skipped => self.skipped += 1,
            TestOutcome::Failed | TestOutcome::Errored => {
                if outcome == TestOutcome::Failed {
                    self.failed += 1;
                } else {
                    self.errored += 1;
                }
                if self.failures.len() < MAX_LISTED {
                    self.failures.push(listed);
                }
            }
            TestOutcome::Flaky => {
                self.passed += 1;
                self.flaky += 1;
                if self.flaky_tests.len() < MAX_LISTED {
                    self.flaky_tests.push(listed);
                }
            }
        }
    }

    /// Tests that ran: all but the skipped ones.
    pub fn ran(&self) -> u64 {
        self.tests - self.skipped
    }

    pub(crate) fn problems(&self, min_tests: u64, allow_flaky: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.failed > 0 {
            problems.push(format!("{} failed", count(self.failed, "test")));
        }
        if self.errored > 0 {
            problems.push(format!("{} errored", count(self.errored, "test")));
        }
        if self.ran() < min_tests {
            problems.push(format!(
                "{} ran, fewer than the {min_tests} required (`min_tests`)",
                count(self.ran(), "test")
            ));
        }
        if self.flaky > 0 && !allow_flaky {
            problems.push(format!(
                "{} failed, then passed on a rerun (set `allow_flaky: true` to accept that)",
                count(self.flaky, "flaky test")
            ));
        }
        problems
    }

    pub(crate) fn headline(&self) -> String {
        let mut parts = vec![format!("{} passed", self.passed)];
        for (n, what) in [
            (self.failed, "failed"),
            (self.errored, "errored"),
            (self.skipped, "skipped"),
            (self.flaky, "flaky"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        format!("{}: {}", count(self.tests, "test"), parts.join(", "))
    }

    pub(crate) fn details(&self) -> Vec<String> {
        let listed = |cases: &[TestCase], total: u64, what: &str| -> Vec<String> {
            if cases.is_empty() {
                return Vec::new();
            }
            let mut lines = vec![format!("- {what}{}:", more(total as usize, cases.len()))];
            lines.extend(cases.iter().map(|c| match &c.message {
                Some(m) => format!(
                    "  - `{}` ({}): {}",
                    c.name,
                    c.outcome.as_str(),
                    one_line(m, 200)
                ),
                None => format!("  - `{}` ({})", c.name, c.outcome.as_str()),
            }));
            lines
        };
        let mut lines = listed(&self.failures, self.failed + self.errored, "failed tests");
        lines.extend(listed(&self.flaky_tests, self.flaky, "flaky tests"));
        lines
    }
}

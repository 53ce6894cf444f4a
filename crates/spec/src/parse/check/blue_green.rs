//! `strategy.blue_green`: when to switch, the preview address, the smoke checks run
//! against the new (green) version before the switch, and how long the old (blue)
//! one is kept after it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::Checker;
use crate::parse::node::{Entry, Node, Value};
use crate::types::{AnalysisSpec, BlueGreenSpec, SmokeCheck, defaults};

pub(super) const BLUE_GREEN: &[&str] = &[
    "auto_promote",
    "preview_listen",
    "smoke_checks",
    "preview_analysis",
    "scale_down_delay",
];
pub(super) const SMOKE_CHECK: &[&str] = &[
    "method",
    "path",
    "headers",
    "status",
    "body_contains",
    "max_latency",
];

const SMOKE_CHECK_EXAMPLE: &str = "{ path: /ready, status: 200 }";

impl Checker<'_> {
    /// `listen` is the top-level address, if valid.
    pub(super) fn blue_green(
        &mut self,
        e: &Entry,
        listen: Option<SocketAddr>,
    ) -> Option<BlueGreenSpec> {
        let f = self.fields(&e.value, "strategy.blue_green", BLUE_GREEN)?;
        let d = BlueGreenSpec::default();
        let auto_promote = self.optional(&f, "auto_promote", d.auto_promote, Self::boolean);
        let preview_listen = self.optional(&f, "preview_listen", None, |c, e| {
            c.preview_listen(e, listen).map(Some)
        });
        let smoke_checks = self.optional(&f, "smoke_checks", d.smoke_checks, Self::smoke_checks);
        let preview_analysis = self.optional(&f, "preview_analysis", None, |c, e| {
            c.positive_duration(e).map(Some)
        });
        let scale_down_delay =
            self.optional(&f, "scale_down_delay", d.scale_down_delay, Self::duration);
        Some(BlueGreenSpec {
            auto_promote: auto_promote?,
            preview_listen: preview_listen?,
            smoke_checks: smoke_checks?,
            preview_analysis: preview_analysis?,
            scale_down_delay: scale_down_delay?,
        })
    }

    fn preview_listen(&mut self, e: &Entry, listen: Option<SocketAddr>) -> Option<SocketAddr> {
        let preview = self.listen(e)?;
        let Some(listen) = listen else {
            return Some(preview);
        };
        // Port 0 is a fresh port picked by the OS each time, so two of them never clash;
        // an unspecified address (`0.0.0.0`) takes its port on every address.
        let clash = preview.port() == listen.port()
            && preview.port() != 0
            && (preview.ip() == listen.ip()
                || preview.ip().is_unspecified()
                || listen.ip().is_unspecified());
        if !clash {
            return Some(preview);
        }
        let other = match preview.port() {
            u16::MAX => u16::MAX - 1,
            port => port + 1,
        };
        self.error(
            Self::at(e),
            format!(
                "`preview_listen` must differ from `listen`: {preview} and {listen} would take the \
                 same port; give the preview a port of its own, like `{}`",
                SocketAddr::new(preview.ip(), other)
            ),
        );
        None
    }

    fn smoke_checks(&mut self, e: &Entry) -> Option<Vec<SmokeCheck>> {
        let items = match &e.value.value {
            Value::Seq(items) => items,
            // Every check commented out: none.
            Value::Null => return Some(Vec::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`smoke_checks` must be a list of checks like `- {SMOKE_CHECK_EXAMPLE}`, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let path = format!("strategy.blue_green.smoke_checks[{i}]");
            if !matches!(item.value, Value::Map(_)) {
                self.error(
                    item.pos,
                    format!(
                        "`{path}` must be a mapping like `{SMOKE_CHECK_EXAMPLE}`, got {}",
                        item.describe()
                    ),
                );
                ok = false;
                continue;
            }
            match self.smoke_check(item, &path, SMOKE_CHECK) {
                Some(check) => out.push(check),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// One smoke check at `path`, with the fields `valid` (`json` only where it is
    /// among them).
    pub(super) fn smoke_check(
        &mut self,
        item: &Node,
        path: &str,
        valid: &[&str],
    ) -> Option<SmokeCheck> {
        let f = self.fields(item, path, valid)?;
        let methods = defaults::SMOKE_METHODS.map(|m| (m, m));
        let method = self.optional(&f, "method", defaults::SMOKE_METHOD, |c, e| {
            c.keyword(e, &methods)
        });
        let url = self.require(
            &f,
            path,
            item.pos,
            "path",
            "the request path, starting with `/`, e.g. `/ready`",
        );
        let url = url.and_then(|e| self.url_path(e));
        let headers = self.optional(&f, "headers", BTreeMap::new(), Self::headers);
        let statuses = &defaults::SMOKE_STATUSES;
        let status = self.optional(&f, "status", defaults::SMOKE_STATUS, |c, e| {
            c.whole(e, (*statuses.start()).into(), (*statuses.end()).into())
                .map(|n| n as u16)
        });
        let body_contains = self.optional(&f, "body_contains", None, |c, e| {
            c.text(e, "text the response body must contain").map(Some)
        });
        let max_latency = self.optional(&f, "max_latency", None, |c, e| {
            c.positive_duration(e).map(Some)
        });
        let json = self.optional(&f, "json", BTreeMap::new(), Self::json_fields);
        Some(SmokeCheck {
            method: method?.to_owned(),
            path: url?,
            headers: headers?,
            status: status?,
            body_contains: body_contains?,
            max_latency: max_latency?,
            json: json?,
        })
    }

    pub(super) fn headers(&mut self, e: &Entry) -> Option<BTreeMap<String, String>> {
        let entries = match &e.value.value {
            Value::Map(entries) => entries,
            Value::Null => return Some(BTreeMap::new()),
            _ => {
                self.error(
                    Self::at(e),
                    format!(
                        "`headers` must be a mapping of header names to values, like \
                         `{{ Accept: application/json }}`, got {}",
                        e.value.describe()
                    ),
                );
                return None;
            }
        };
        let mut headers = BTreeMap::new();
        // By lowercased name: HTTP header names ignore case.
        let mut lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut ok = true;
        for entry in entries {
            let name = entry.key.as_str();
            if let Some(line) = lines.get(&name.to_ascii_lowercase()) {
                self.error(
                    entry.key_pos,
                    format!(
                        "duplicate header `{name}`: it is already set on line {line} \
                         (header names ignore case)"
                    ),
                );
                ok = false;
                continue;
            }
            lines.insert(name.to_ascii_lowercase(), entry.key_pos.line);
            if !is_header_name(name) {
                self.error(
                    entry.key_pos,
                    format!(
                        "invalid header name `{name}`: use letters, digits and `-`, like \
                         `X-Request-Id` (also allowed: ! # $ % & ' * + . ^ _ ` | ~; no spaces or `:`)"
                    ),
                );
                ok = false;
            }
            match entry.value.scalar_text() {
                Some(value) if value.chars().any(|c| c.is_control() && c != '\t') => {
                    self.error(
                        entry.value.pos,
                        format!(
                            "`headers.{name}` must be one line of text, without control characters"
                        ),
                    );
                    ok = false;
                }
                Some(value) => {
                    headers.insert(name.to_owned(), value);
                }
                None if entry.value.is_null() => {
                    self.error(
                        Self::at(entry),
                        format!(
                            "`headers.{name}` has no value; write `{name}: \"\"` for an empty one"
                        ),
                    );
                    ok = false;
                }
                None => {
                    self.error(
                        entry.value.pos,
                        format!(
                            "`headers.{name}` must be a string, got {}",
                            entry.value.describe()
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(headers)
    }

    /// Green's preview numbers are judged only against absolute limits; without one,
    /// a preview analysis would pass whatever green does.
    pub(super) fn preview_has_limits(&mut self, strategy: &Entry, analysis: &AnalysisSpec) {
        let m = &analysis.metrics;
        let latency = [&m.latency_p50, &m.latency_p95, &m.latency_p99];
        let absolute = m.error_rate.is_some_and(|r| r.max.is_some())
            || latency.iter().any(|l| l.is_some_and(|l| l.max.is_some()));
        if absolute {
            return;
        }
        let Some(e) = strategy
            .value
            .get("blue_green")
            .and_then(|bg| bg.value.get("preview_analysis"))
        else {
            return;
        };
        self.error(
            Self::at(e),
            "`preview_analysis` judges green against the absolute limits of `analysis.metrics` \
             (`error_rate.max`, `latency_*.max`), but none is set; add one, like \
             `error_rate: { max: 5% }`, or leave `preview_analysis` out",
        );
    }
}

/// An HTTP header name: one or more `tchar`s (RFC 9110, section 5.6.2).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

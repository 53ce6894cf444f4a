//! `proxy`: the built-in proxy's limits, with sizes in bytes (`65536`) or with a
//! binary unit (`64KiB`, `1MiB`).

use super::Checker;
use super::fields::suggestion;
use crate::parse::node::{Entry, Value};
use crate::types::{ProxySpec, defaults};

pub(super) const PROXY: &[&str] = &[
    "max_header_size",
    "header_read_timeout",
    "idle_timeout",
    "tunnel_idle_timeout",
    "max_connections",
    "max_requests_per_instance",
    "max_body_size",
    "threads",
];

/// The units a size may have, and what each is in bytes.
const UNITS: [(&str, u64); 4] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
];

const SIZE_EXPECTED: &str = "a number of bytes like `65536`, or a size like `64KiB` or `1MiB` \
                             (units: B, KiB, MiB, GiB)";

impl Checker<'_> {
    pub(super) fn proxy(&mut self, e: &Entry) -> Option<ProxySpec> {
        let f = self.fields(&e.value, "proxy", PROXY)?;
        let d = ProxySpec::default();
        let max_header_size = self.optional(&f, "max_header_size", d.max_header_size, |c, e| {
            let size = c.size(e)?;
            if defaults::HEADER_SIZES.contains(&size) {
                return Some(size);
            }
            c.error(
                Self::at(e),
                format!(
                    "`{}` must be from 1KiB to 1MiB, got {}",
                    e.key,
                    e.value.describe()
                ),
            );
            None
        });
        let header_read_timeout = self.optional(
            &f,
            "header_read_timeout",
            d.header_read_timeout,
            Self::positive_duration,
        );
        let idle_timeout =
            self.optional(&f, "idle_timeout", d.idle_timeout, Self::positive_duration);
        let tunnel_idle_timeout =
            self.optional(&f, "tunnel_idle_timeout", d.tunnel_idle_timeout, |c, e| {
                if matches!(&e.value.value, Value::Str(s) if s.trim() == "none") {
                    return Some(None);
                }
                c.positive_duration(e).map(Some)
            });
        let max_connections = self.optional(&f, "max_connections", d.max_connections, |c, e| {
            c.whole(e, 0, u32::MAX.into()).map(|n| n as u32)
        });
        let max_requests_per_instance = self.optional(
            &f,
            "max_requests_per_instance",
            d.max_requests_per_instance,
            |c, e| c.whole(e, 0, u32::MAX.into()).map(|n| n as u32),
        );
        let max_body_size = self.optional(&f, "max_body_size", d.max_body_size, |c, e| {
            if matches!(&e.value.value, Value::Str(s) if s.trim() == "none") {
                return Some(None);
            }
            let size = c.size(e)?;
            if size == 0 {
                c.error(
                    Self::at(e),
                    format!(
                        "`{}` must be `none` (no limit) or at least 1B, got {}",
                        e.key,
                        e.value.describe()
                    ),
                );
                return None;
            }
            Some(Some(size))
        });
        let threads = self.optional(&f, "threads", d.threads, |c, e| {
            c.whole(e, 0, defaults::MAX_PROXY_THREADS.into())
                .map(|n| n as u32)
        });
        Some(ProxySpec {
            max_header_size: max_header_size?,
            header_read_timeout: header_read_timeout?,
            idle_timeout: idle_timeout?,
            tunnel_idle_timeout: tunnel_idle_timeout?,
            max_connections: max_connections?,
            max_requests_per_instance: max_requests_per_instance?,
            max_body_size: max_body_size?,
            threads: threads?,
        })
    }

    /// A size in bytes: a whole number, or one with a unit of [`UNITS`].
    pub(super) fn size(&mut self, e: &Entry) -> Option<u64> {
        let parsed = match &e.value.value {
            Value::Int(i) => u64::try_from(*i).map_err(|_| String::new()),
            Value::Str(s) => parse_size(s.trim()),
            _ => Err(String::new()),
        };
        match parsed {
            Ok(size) => Some(size),
            Err(hint) => {
                self.error(
                    Self::at(e),
                    format!(
                        "`{}` must be {SIZE_EXPECTED}, got {}{hint}",
                        e.key,
                        e.value.describe()
                    ),
                );
                None
            }
        }
    }
}

/// `64KiB`, `64 KiB`, `512B` or `65536`; else a hint for the message (maybe empty).
fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let number: u64 = number.parse().map_err(|_| String::new())?;
    if unit.is_empty() {
        return Ok(number);
    }
    if let Some((_, scale)) = UNITS.iter().find(|(u, _)| *u == unit) {
        return number
            .checked_mul(*scale)
            .ok_or_else(|| "; that is too large".to_owned());
    }
    // `64KB`, `64k`: decimal or unclear units are not guessed at, but suggested.
    let binary = match unit.to_ascii_lowercase().trim_end_matches(['b', 'i']) {
        "k" => Some("KiB"),
        "m" => Some("MiB"),
        "g" => Some("GiB"),
        _ => None,
    };
    Err(match binary {
        Some(u) => format!("; did you mean `{number}{u}`?"),
        None => suggestion(unit, &UNITS.map(|(u, _)| u)),
    })
}

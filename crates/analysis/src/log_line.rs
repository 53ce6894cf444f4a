//! One log line read for analysis: its level ([`Level`]), the text its template
//! is mined from (a JSON line's message), and that text as tokens with the
//! variable parts masked as [`PARAM`] ([`mask`]), so that `took 12ms` and
//! `took 340ms` are the same line to [`crate::drain`].
//!
//! Levels are read from what programs commonly write: a JSON field (`"level":
//! "error"`, also `lvl`, `severity`), a logfmt pair (`level=error`), or a level
//! word in plain text. A plain-text word counts when it is upper case anywhere
//! (`ERROR`, `WARN`), or in any case among a line's first four words (`error:
//! cannot bind`, `[warn] slow`), so that a message merely mentioning "no error"
//! late in a sentence is not an error line. Rust's `panicked at` and Go's
//! `panic:` are errors too.

/// The token that stands for a variable part of a line, in masks and templates.
pub const PARAM: &str = "<*>";

/// How severe a line says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Anything not a warning or an error (info, debug, unmarked).
    Other,
    Warn,
    /// Errors, and worse: fatal, critical, panics.
    Error,
}

/// A line's level and the text to mine its template from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    /// The message of a JSON line (`msg`, `message`), else the line itself.
    pub text: String,
}

/// Reads one line (without its newline).
pub fn parse(line: &str) -> LogLine {
    if let Some(json) = json_line(line) {
        return json;
    }
    LogLine {
        level: plain_level(line),
        text: line.trim().to_owned(),
    }
}

/// The fields of a JSON object line that say its level and message.
fn json_line(line: &str) -> Option<LogLine> {
    let trimmed = line.trim();
    if !trimmed.starts_with('{') {
        return None;
    }
    let serde_json::Value::Object(fields) = serde_json::from_str(trimmed).ok()? else {
        return None;
    };
    let text_of = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| fields.get(*k).and_then(|v| v.as_str()))
            .map(str::to_owned)
    };
    let level = text_of(&["level", "lvl", "severity", "log.level"])
        .and_then(|word| level_word(&word))
        .unwrap_or(Level::Other);
    let text = text_of(&["msg", "message", "error", "err"]).unwrap_or_else(|| trimmed.to_owned());
    Some(LogLine { level, text })
}

/// The level of a plain-text or logfmt line.
fn plain_level(line: &str) -> Level {
    let mut found = Level::Other;
    for (i, token) in line.split_whitespace().enumerate() {
        let level = match token.split_once('=') {
            Some((key, value)) => logfmt_level(key, value),
            None => word_level(token, i),
        };
        found = found.max(level.unwrap_or(Level::Other));
        if found == Level::Error {
            return found;
        }
    }
    if line.contains("panicked at") || line.trim_start().starts_with("panic:") {
        return Level::Error;
    }
    found
}

fn logfmt_level(key: &str, value: &str) -> Option<Level> {
    let key = key.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    matches!(key, "level" | "lvl" | "severity")
        .then(|| level_word(value.trim_matches(|c| c == '"' || c == '\'')))
        .flatten()
}

/// A level word counts upper case anywhere, or in any case among the first words.
fn word_level(token: &str, position: usize) -> Option<Level> {
    let word = token.trim_matches(|c: char| !c.is_ascii_alphabetic());
    let shouted = word.len() > 2 && word.chars().all(|c| c.is_ascii_uppercase());
    if shouted || position < 4 {
        level_word(word)
    } else {
        None
    }
}

fn level_word(word: &str) -> Option<Level> {
    match word.to_ascii_lowercase().as_str() {
        "error" | "err" | "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert"
        | "severe" => Some(Level::Error),
        "warn" | "warning" => Some(Level::Warn),
        _ => None,
    }
}

/// `text` as whitespace-separated tokens, each variable part replaced by
/// [`PARAM`]: quoted strings, numbers, hexadecimal numbers and long hex ids,
/// UUIDs, IP addresses (with a port or not), durations and sizes (`12ms`, `1.5s`,
/// `10MiB`), timestamps; in `key=value` only the value. Punctuation around a
/// token is kept (`(<*>)`, `<*>,`).
pub fn mask(text: &str) -> Vec<String> {
    mask_quotes(text)
        .split_whitespace()
        .map(mask_token)
        .collect()
}

/// Replaces the inside of each quoted string (`"..."`, and `'...'` opened after a
/// space, `=` or `:`) with [`PARAM`], spaces and all.
fn mask_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(['"', '\'']) {
        let quote = rest.as_bytes()[at] as char;
        let opens = quote == '"'
            || at == 0
            || rest[..at].ends_with(|c: char| c.is_whitespace() || c == '=' || c == ':');
        let close = rest[at + 1..].find(quote).map(|i| at + 1 + i);
        match close {
            Some(close) if opens => {
                out.push_str(&rest[..at]);
                out.push(quote);
                out.push_str(PARAM);
                out.push(quote);
                rest = &rest[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=at]);
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn mask_token(token: &str) -> String {
    if token.contains(PARAM) {
        return token.to_owned();
    }
    let start = token
        .find(|c: char| !matches!(c, '(' | '[' | '{' | '<'))
        .unwrap_or(token.len());
    let end = token
        .rfind(|c: char| !matches!(c, ')' | ']' | '}' | '>' | ',' | ';' | '.' | ':' | '!'))
        .map_or(start, |i| {
            i + token[i..].chars().next().map_or(1, char::len_utf8)
        })
        .max(start);
    let (before, core, after) = (&token[..start], &token[start..end], &token[end..]);
    let masked = match core.split_once('=') {
        Some((key, value)) if !key.is_empty() && is_variable(value) => format!("{key}={PARAM}"),
        _ if is_variable(core) => PARAM.to_owned(),
        _ => return token.to_owned(),
    };
    format!("{before}{masked}{after}")
}

/// Whether a token (without surrounding punctuation) is a value rather than a word.
fn is_variable(token: &str) -> bool {
    if !token.bytes().any(|b| b.is_ascii_digit()) {
        return false;
    }
    token.parse::<f64>().is_ok()
        || token.parse::<std::net::IpAddr>().is_ok()
        || token.parse::<std::net::SocketAddr>().is_ok()
        || is_hex(token)
        || is_uuid(token)
        || is_quantity(token)
        || token
            .bytes()
            .all(|b| b.is_ascii_digit() || b"-:.,/+TZ".contains(&b))
}

fn is_hex(token: &str) -> bool {
    let digits = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"));
    match digits {
        Some(d) => !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()),
        None => token.len() >= 8 && token.bytes().all(|b| b.is_ascii_hexdigit()),
    }
}

fn is_uuid(token: &str) -> bool {
    let groups: Vec<&str> = token.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A number with a unit, or several (`12ms`, `1.5s`, `1h30m`, `10MiB`, `3KB`).
fn is_quantity(token: &str) -> bool {
    const UNITS: &[&str] = &[
        "ns", "us", "µs", "ms", "s", "m", "h", "d", "b", "kb", "kib", "mb", "mib", "gb", "gib",
    ];
    let lower = token.to_ascii_lowercase();
    let mut rest = lower.as_str();
    while !rest.is_empty() {
        let number = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number == 0 {
            return false;
        }
        let after = &rest[number..];
        let unit = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        if !UNITS.contains(&&after[..unit]) {
            return false;
        }
        rest = &after[unit..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        mask(text).join(" ")
    }

    #[test]
    fn masks_values_and_keeps_words() {
        assert_eq!(
            masked("request 42 failed after 12ms from 127.0.0.1:5432 (id=0xdeadbeef)"),
            "request <*> failed after <*> from <*> (id=<*>)"
        );
        assert_eq!(
            masked(
                "user \"Ada Lovelace\" logged in, session 123e4567-e89b-12d3-a456-426614174000."
            ),
            "user \"<*>\" logged in, session <*>."
        );
        assert_eq!(
            masked("at 2026-12-02T01:02:03Z took 1m30s, 10MiB, ::1 and 5f3a9c2e1b"),
            "at <*> took <*>, <*>, <*> and <*>"
        );
        assert_eq!(
            masked("don't touch v2 or user42"),
            "don't touch v2 or user42"
        );
        assert_eq!(
            masked("retry=3 key='a b' n=-1.5"),
            "retry=<*> key='<*>' n=<*>"
        );
    }

    #[test]
    fn masking_twice_changes_nothing() {
        let once = masked("GET /items/17 500 in 3.2ms \"bad thing\" 10.0.0.1");
        assert_eq!(masked(&once), once);
    }

    #[test]
    fn levels_from_plain_text_logfmt_and_json() {
        let level = |line| parse(line).level;
        assert_eq!(level("2026-12-02 01:02:03 ERROR db down"), Level::Error);
        assert_eq!(level("error: cannot bind"), Level::Error);
        assert_eq!(level("[warn] slow request"), Level::Warn);
        assert_eq!(level("ts=1 level=error msg=\"db down\""), Level::Error);
        assert_eq!(level("ts=1 lvl=\"warning\" msg=slow"), Level::Warn);
        assert_eq!(
            level("thread 'main' panicked at src/main.rs:3:5"),
            Level::Error
        );
        assert_eq!(
            level("panic: runtime error: index out of range"),
            Level::Error
        );
        assert_eq!(
            level("GET /x served fine with no error at all"),
            Level::Other
        );
        assert_eq!(level("listening on 127.0.0.1:8080"), Level::Other);
        let json = parse(r#"{"ts":1,"level":"ERROR","msg":"db down after 3 tries"}"#);
        assert_eq!(json.level, Level::Error);
        assert_eq!(json.text, "db down after 3 tries");
        assert_eq!(
            parse(r#"{"severity":"info","message":"ok"}"#).level,
            Level::Other
        );
    }
}

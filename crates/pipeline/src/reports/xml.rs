//! What the XML readers share: walking the elements of a document with
//! quick-xml (its plain reader, without serde), their attributes, and where in
//! the text an element starts, for errors.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ReportError;

/// One step through a document: an element opens (`empty` when it also closes at
/// once, `<a/>`), or closes.
pub(crate) enum Step<'a> {
    Open {
        element: BytesStart<'a>,
        empty: bool,
        /// Byte offset of its `<`.
        at: u64,
    },
    Close,
}

/// The elements of an XML document, in order; text, comments and declarations are
/// skipped.
pub(crate) struct Elements<'a> {
    reader: Reader<&'a [u8]>,
    src: &'a [u8],
    format: &'static str,
}

impl<'a> Elements<'a> {
    /// `format` names the report in errors (`JUnit XML`).
    pub(crate) fn new(src: &'a [u8], format: &'static str) -> Self {
        Elements {
            reader: Reader::from_reader(src),
            src,
            format,
        }
    }

    /// The next step, or `None` at the end of the document.
    pub(crate) fn next_step(&mut self) -> Result<Option<Step<'a>>, ReportError> {
        loop {
            let before = self.reader.buffer_position();
            let event = self.reader.read_event().map_err(|e| {
                let at = self.reader.error_position();
                ReportError::new(format!(
                    "not valid {}: {}: {e}",
                    self.format,
                    position(self.src, at)
                ))
            })?;
            let at = skip_space(self.src, before);
            return Ok(Some(match event {
                Event::Start(element) => Step::Open {
                    element,
                    empty: false,
                    at,
                },
                Event::Empty(element) => Step::Open {
                    element,
                    empty: true,
                    at,
                },
                Event::End(_) => Step::Close,
                Event::Eof => return Ok(None),
                _ => continue,
            }));
        }
    }

    /// An error about the element at byte offset `at`.
    pub(crate) fn error_at(&self, at: u64, message: impl std::fmt::Display) -> ReportError {
        ReportError::new(format!(
            "{} {}: {message}",
            self.format,
            position(self.src, at)
        ))
    }

    /// The attribute `name` of `element`, unescaped, if present.
    pub(crate) fn attr(
        &self,
        element: &BytesStart<'_>,
        at: u64,
        name: &str,
    ) -> Result<Option<String>, ReportError> {
        let attr = element
            .try_get_attribute(name)
            .map_err(|e| self.error_at(at, format!("bad attributes: {e}")))?;
        attr.map(|a| {
            a.unescape_value()
                .map(|v| v.into_owned())
                .map_err(|e| self.error_at(at, format!("bad `{name}` attribute: {e}")))
        })
        .transpose()
    }

    /// The attribute `name` of `element` as a number, if present.
    pub(crate) fn number<T: std::str::FromStr>(
        &self,
        element: &BytesStart<'_>,
        at: u64,
        name: &str,
    ) -> Result<Option<T>, ReportError> {
        match self.attr(element, at, name)? {
            None => Ok(None),
            Some(text) => text.trim().parse().map(Some).map_err(|_| {
                self.error_at(
                    at,
                    format!(
                        "<{}> has `{name}=\"{text}\"`, which is not a number",
                        local_name(element)
                    ),
                )
            }),
        }
    }
}

/// The element's name without a namespace prefix.
pub(crate) fn local_name(element: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(element.local_name().as_ref()).into_owned()
}

/// `line 3, column 7` (1-based; columns count characters) of byte offset `at`.
fn position(src: &[u8], at: u64) -> String {
    let at = usize::try_from(at).unwrap_or(usize::MAX).min(src.len());
    let before = &src[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    format!("line {line}, column {column}")
}

/// The offset of the first non-space byte at or after `at`.
fn skip_space(src: &[u8], at: u64) -> u64 {
    let start = usize::try_from(at).unwrap_or(usize::MAX).min(src.len());
    let skipped = src[start..]
        .iter()
        .take_while(|b| b.is_ascii_whitespace())
        .count();
    at + skipped as u64
}

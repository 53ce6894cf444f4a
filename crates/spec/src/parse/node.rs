//! The YAML document as a tree of nodes that remember where they came from.
//!
//! serde-saphyr reads the text into this tree (syntax errors stop it at the first
//! one); [`super::check`] then walks the tree and reports every semantic mistake
//! with the exact line and column, which a derived `Deserialize` could not do: it
//! stops at the first unknown field or wrong type.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Location, MessageFormatter, NonFiniteFloatPolicy, Spanned};

/// A 1-based line and column (in characters). Line 0 means "unknown".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub const START: Pos = Pos { line: 1, col: 1 };

    fn from_location(loc: &Location) -> Pos {
        Pos {
            line: loc.line() as usize,
            col: loc.column() as usize,
        }
    }

    fn is_known(self) -> bool {
        self.line > 0
    }

    /// `self` if known, else `fallback`.
    fn or(self, fallback: Pos) -> Pos {
        if self.is_known() { self } else { fallback }
    }
}

/// One YAML node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub value: Value,
    /// Where the node is used (for an alias `*a`, the alias).
    pub pos: Pos,
    /// The node's source text for scalars, e.g. `0x10` for what YAML reads as 16,
    /// `'it''s'` with its quotes. `None` for collections and when not available.
    pub raw: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One `key: value` of a mapping.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The first entry named `key`, if this is a mapping that has one.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|e| e.key == key),
            _ => None,
        }
    }

    /// This mapping without its entries named `key` (anything else as it is).
    pub fn without(&self, key: &str) -> Node {
        let mut out = self.clone();
        if let Value::Map(entries) = &mut out.value {
            entries.retain(|e| e.key != key);
        }
        out
    }

    /// `over` laid over this node: two mappings merge key by key (a key `over`
    /// sets to nothing is removed, so it takes its default again), and anything
    /// else in `over` replaces what is here. Every node keeps its own position, so
    /// a mistake is reported where it was written.
    pub fn overlay(&self, over: &Node) -> Node {
        let (Value::Map(base), Value::Map(changes)) = (&self.value, &over.value) else {
            return over.clone();
        };
        let mut merged = base.clone();
        for change in changes {
            let at = merged.iter().position(|e| e.key == change.key);
            match (at, change.value.is_null()) {
                (Some(_), true) => merged.retain(|e| e.key != change.key),
                (Some(i), false) => {
                    merged[i] = Entry {
                        value: merged[i].value.overlay(&change.value),
                        ..change.clone()
                    };
                }
                (None, true) => {}
                (None, false) => merged.push(change.clone()),
            }
        }
        Node {
            value: Value::Map(merged),
            ..self.clone()
        }
    }

    /// The text of a scalar: a string's value, or the source text of a number or a
    /// boolean (`0x10` stays `0x10`). `None` for null, lists and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(_) | Value::Int(_) | Value::Float(_) => Some(self.source_text()),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// How to show this node after "got": `` `150%` ``, `a list`, `nothing`.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing".to_owned(),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
            Value::Str(s) if s.is_empty() => "an empty string".to_owned(),
            Value::Str(s) if s.contains('\n') => format!("`{}`", s.escape_debug()),
            Value::Str(s) => format!("`{s}`"),
            _ => format!("`{}`", self.source_text()),
        }
    }

    /// The source text of a non-string scalar, falling back to its value.
    fn source_text(&self) -> String {
        if let Some(raw) = &self.raw {
            let raw = raw.trim();
            if !raw.is_empty() && !raw.contains('\n') {
                return raw.to_owned();
            }
        }
        match &self.value {
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            Value::Null => "null".to_owned(),
            Value::Seq(_) => "[...]".to_owned(),
            Value::Map(_) => "{...}".to_owned(),
        }
    }

    /// The exact position of `needle` inside this scalar when the scalar's source
    /// text contains it on the scalar's first line; else the scalar's position.
    pub fn pos_of(&self, needle: &str) -> Pos {
        if let Some(raw) = &self.raw
            && let Some(idx) = raw.find(needle)
            && !raw[..idx].contains('\n')
        {
            return Pos {
                line: self.pos.line,
                col: self.pos.col + raw[..idx].chars().count(),
            };
        }
        self.pos
    }
}

/// A syntax error: where, and what serde-saphyr said.
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Read `src` into a tree. Stops at the first syntax error.
pub(crate) fn read(src: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // `yes`/`no`/`on`/`off` stay strings (YAML 1.2), so `y:` is a key named `y`.
    options.strict_booleans = true;
    // We want plain messages; `file:line:col` is ours to add.
    options.with_snippet = false;
    // Repeated keys reach `check`, which reports them all, with both lines.
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    // `.inf` and `.nan` become strings, which the checks then reject with a message.
    options.non_finite_float_policy = NonFiniteFloatPolicy::AsString;

    match serde_saphyr::from_str_with_options::<RawNode>(src, options) {
        Ok(raw) => Ok(convert(raw, src, Pos::START)),
        Err(err) => {
            let pos = err
                .location()
                .map(|l| Pos::from_location(&l))
                .unwrap_or_default();
            let message: String = serde_saphyr::UserMessageFormatter
                .format_message(err.without_snippet())
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Err(SyntaxError { pos, message })
        }
    }
}

/// The source text covered by `loc`, if the span is known.
fn slice<'s>(src: &'s str, loc: &Location) -> Option<&'s str> {
    let span = loc.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    if len == 0 {
        return None;
    }
    src.get(start..start.checked_add(len)?)
}

fn convert(raw: RawNode, src: &str, parent: Pos) -> Node {
    let Spanned {
        value,
        referenced,
        defined,
    } = raw.0;
    let pos = Pos::from_location(&referenced)
        .or(Pos::from_location(&defined))
        .or(parent);
    let raw_text = match &value {
        RawValue::Seq(_) | RawValue::Map(_) => None,
        _ => slice(src, &defined)
            .or_else(|| slice(src, &referenced))
            .map(str::to_owned),
    };
    let value = match value {
        RawValue::Null => Value::Null,
        RawValue::Bool(b) => Value::Bool(b),
        RawValue::Int(i) => Value::Int(i),
        RawValue::Float(f) => Value::Float(f),
        RawValue::Str(s) => Value::Str(s),
        RawValue::Seq(items) => {
            Value::Seq(items.into_iter().map(|n| convert(n, src, pos)).collect())
        }
        RawValue::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let key_pos = Pos::from_location(&key.referenced).or(pos);
                    let key_text = match key.value {
                        RawKey::Str(s) => s,
                        RawKey::Other(shown) => slice(src, &key.defined)
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .unwrap_or(shown),
                    };
                    Entry {
                        key: key_text,
                        key_pos,
                        value: convert(value, src, key_pos),
                    }
                })
                .collect(),
        ),
    };
    Node {
        value,
        pos,
        raw: raw_text,
    }
}

// ---- the serde-facing side ----

struct RawNode(Spanned<RawValue>);

enum RawValue {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<RawNode>),
    Map(Vec<(Spanned<RawKey>, RawNode)>),
}

/// A mapping key: a string, or another scalar shown as its source text.
enum RawKey {
    Str(String),
    Other(String),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Spanned::<RawValue>::deserialize(d).map(RawNode)
    }
}

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = RawValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<RawValue, E> {
        Ok(RawValue::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawValue, D::Error> {
        RawValue::deserialize(d)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawValue, E> {
        Ok(RawValue::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawValue, E> {
        Ok(RawValue::Int(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawValue, E> {
        Ok(RawValue::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawValue, E> {
        // Beyond i128 only the source text is meaningful.
        Ok(i128::try_from(v).map_or(RawValue::Float(v as f64), RawValue::Int))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawValue, E> {
        Ok(RawValue::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawValue, E> {
        Ok(RawValue::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<RawValue, E> {
        Ok(RawValue::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<RawValue, E> {
        Ok(RawValue::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawValue, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(RawValue::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawValue, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key()? {
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(RawValue::Map(entries))
    }
}

impl<'de> Deserialize<'de> for RawKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = RawKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping key (a string)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawKey, E> {
                Ok(RawKey::Other("null".to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawKey, E> {
                Ok(RawKey::Other(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKey, E> {
                Ok(RawKey::Str(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<RawKey, E> {
                Ok(RawKey::Str(v))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

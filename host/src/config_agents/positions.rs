//! Where each field of a definition file sits, as the parsers report it:
//! serde-saphyr's `Spanned` for the YAML frontmatter, toml's spanned
//! `DeTable` for TOML. Problems found on parsed values point back into the
//! file through this map, so a position is never guessed from the layout of
//! lines (flow mappings, quoted keys, `[tables]` and dotted keys all come
//! out right because the parser read them).

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::definition::{SourceFormat, Structured, structured};

/// A byte range of the structured text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
}

/// One field: where its key is, where its value is, and where each scalar
/// item of its value starts when it is a list.
#[derive(Debug, Clone, Default)]
struct Field {
    key: Option<Range>,
    value: Option<Range>,
    /// Each item's trimmed text and where its first occurrence starts: a
    /// map, because a problem per item of a long list must not scan the
    /// list each time (that made validation quadratic).
    items: HashMap<String, usize>,
}

/// The first position of each item's trimmed text.
fn index_items(items: impl IntoIterator<Item = (String, Range)>) -> HashMap<String, usize> {
    let mut index = HashMap::new();
    for (text, range) in items {
        index.entry(text.trim().to_string()).or_insert(range.start);
    }
    index
}

/// Positions of every field (`name`, `llm.temperature`) of one file.
pub struct Positions<'a> {
    part: Structured<'a>,
    fields: HashMap<String, Field>,
    /// Byte offset of each line start in `part.text`.
    line_starts: Vec<usize>,
}

impl<'a> Positions<'a> {
    /// Positions of `part`; empty when the parser cannot read it (the
    /// syntax error is reported on its own, with the parser's position).
    pub fn new(part: Structured<'a>, format: SourceFormat) -> Self {
        let mut fields = HashMap::new();
        match format {
            SourceFormat::Markdown => yaml_fields(part.text, &mut fields),
            SourceFormat::Toml => toml_fields(part.text, &mut fields),
        }
        let line_starts = std::iter::once(0)
            .chain(part.text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Positions {
            part,
            fields,
            line_starts,
        }
    }

    /// For problems found after parsing; a file without frontmatter has
    /// no positions.
    pub fn for_source(source: &'a str, format: SourceFormat) -> Self {
        let part = structured(source, format).unwrap_or(Structured {
            text: "",
            first_line: 1,
            end_line: 1,
            body: "",
        });
        Positions::new(part, format)
    }

    /// Where a missing key would be added.
    pub fn end_line(&self) -> usize {
        self.part.end_line
    }

    /// File (line, column) of byte `offset` of the structured text.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.part.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .part
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line + self.part.first_line, column)
    }

    /// Line of `field`'s key: `tools` or, nested, `llm.temperature`.
    #[cfg(test)]
    pub fn key(&self, field: &str) -> Option<usize> {
        self.key_at(field).0
    }

    /// (line, column) of `field`'s key.
    pub fn key_at(&self, field: &str) -> (Option<usize>, Option<usize>) {
        match self.fields.get(field).and_then(|f| f.key) {
            Some(range) => {
                let (line, column) = self.line_column(range.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        }
    }

    /// (line, column) of `needle` in the value of `field`: the list item
    /// equal to it, else its first whole-word occurrence in the value's
    /// text; falls back to the start of the key's line.
    pub fn value(&self, field: &str, needle: &str) -> (Option<usize>, Option<usize>) {
        let Some(entry) = self.fields.get(field) else {
            return (None, None);
        };
        let found = entry.items.get(needle).copied().or_else(|| {
            let range = entry.value?;
            let text = self.part.text.get(range.start..range.end)?;
            find_word(text, needle).map(|at| range.start + at)
        });
        match (found, entry.key) {
            (Some(offset), _) => {
                let (line, column) = self.line_column(offset);
                (Some(line), Some(column))
            }
            (None, Some(key)) => (Some(self.line_column(key.start).0), Some(1)),
            (None, None) => (None, None),
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Byte offset of `needle` in `hay`, not inside a longer word.
pub(super) fn find_word(hay: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    let check_before = needle.starts_with(is_word);
    let check_after = needle.ends_with(is_word);
    hay.match_indices(needle).map(|(i, _)| i).find(|&i| {
        let before_ok = !check_before || !hay[..i].ends_with(is_word);
        let after_ok = !check_after || !hay[i + needle.len()..].starts_with(is_word);
        before_ok && after_ok
    })
}

// ---- YAML -----------------------------------------------------------------

/// A YAML node with the positions of everything inside it.
enum Node {
    Scalar(String),
    Seq(Vec<Spanned<Node>>),
    Map(Vec<(Spanned<KeyText>, Spanned<Node>)>),
}

/// A mapping key as text, whatever scalar it is.
struct KeyText(String);

struct ScalarText;

impl<'de> Visitor<'de> for ScalarText {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_unit<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
    fn visit_none<E: de::Error>(self) -> Result<String, E> {
        Ok(String::new())
    }
}

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarText).map(KeyText)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        ScalarText.visit_bool(v).map(Node::Scalar)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        ScalarText.visit_i64(v).map(Node::Scalar)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        ScalarText.visit_u64(v).map(Node::Scalar)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        ScalarText.visit_f64(v).map(Node::Scalar)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(String::new()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(String::new()))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Node::Map(entries))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// The byte range a saphyr location covers, when the parser knows it.
fn saphyr_range(location: &serde_saphyr::Location) -> Option<Range> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len().unwrap_or(0)).ok()?;
    (location.line() > 0).then_some(Range {
        start,
        end: start + len,
    })
}

fn yaml_fields(text: &str, fields: &mut HashMap<String, Field>) {
    let Ok(Spanned {
        value: Node::Map(entries),
        ..
    }) = serde_saphyr::from_str::<Spanned<Node>>(text)
    else {
        return;
    };
    for (key, value) in entries {
        let nested: Vec<(String, Field)> = match &value.value {
            Node::Map(inner) => inner
                .iter()
                .map(|(k, v)| (k.value.0.clone(), yaml_field(k, v)))
                .collect(),
            _ => Vec::new(),
        };
        let parent = key.value.0.clone();
        for (name, field) in nested {
            fields.entry(format!("{parent}.{name}")).or_insert(field);
        }
        fields
            .entry(parent)
            .or_insert_with(|| yaml_field(&key, &value));
    }
}

fn yaml_field(key: &Spanned<KeyText>, value: &Spanned<Node>) -> Field {
    let items = match &value.value {
        Node::Seq(items) => index_items(items.iter().filter_map(|item| match &item.value {
            Node::Scalar(text) => Some((text.clone(), saphyr_range(&item.referenced)?)),
            _ => None,
        })),
        _ => HashMap::new(),
    };
    Field {
        key: saphyr_range(&key.referenced),
        value: saphyr_range(&value.referenced),
        items,
    }
}

// ---- TOML -----------------------------------------------------------------

fn toml_fields(text: &str, fields: &mut HashMap<String, Field>) {
    use toml::de::{DeTable, DeValue};
    let Ok(table) = DeTable::parse(text) else {
        return;
    };
    let range = |span: std::ops::Range<usize>| Range {
        start: span.start,
        end: span.end,
    };
    let scalar = |value: &DeValue<'_>| -> Option<String> {
        match value {
            DeValue::String(s) => Some(s.to_string()),
            DeValue::Integer(i) => Some(i.as_str().to_string()),
            DeValue::Float(f) => Some(f.as_str().to_string()),
            DeValue::Boolean(b) => Some(b.to_string()),
            DeValue::Datetime(d) => Some(d.to_string()),
            DeValue::Array(_) | DeValue::Table(_) => None,
        }
    };
    let field = |key: &toml::Spanned<toml::de::DeString<'_>>,
                 value: &toml::Spanned<DeValue<'_>>| {
        let items = match value.get_ref() {
            DeValue::Array(items) => index_items(
                items
                    .iter()
                    .filter_map(|item| Some((scalar(item.get_ref())?, range(item.span())))),
            ),
            _ => HashMap::new(),
        };
        Field {
            key: Some(range(key.span())),
            value: Some(range(value.span())),
            items,
        }
    };
    for (key, value) in table.get_ref() {
        if let DeValue::Table(inner) = value.get_ref() {
            for (k, v) in inner {
                fields
                    .entry(format!("{}.{}", key.get_ref(), k.get_ref()))
                    .or_insert_with(|| field(k, v));
            }
        }
        fields
            .entry(key.get_ref().to_string())
            .or_insert_with(|| field(key, value));
    }
}

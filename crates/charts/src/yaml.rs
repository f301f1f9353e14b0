//! The flat YAML mapping model and its format-preserving line editor.
//!
//! A real YAML parser (yaml-rust2's event parser) reads the file into a list
//! of top-level [`Entry`]s with their positions. Edits are made on the text,
//! one line per edited key, by [`edit_scalars`]; the result is parsed again
//! and compared with the original so that only the intended keys changed.

use std::fmt;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A position in a file: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column number (in characters).
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl Pos {
    fn from_marker(m: &Marker) -> Self {
        // yaml-rust2 markers: line is 1-based, col is 0-based.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// How a scalar is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'...'`
    SingleQuoted,
    /// `"..."`
    DoubleQuoted,
    /// `|` or `>` block scalar.
    Block,
}

impl From<TScalarStyle> for Style {
    fn from(s: TScalarStyle) -> Self {
        match s {
            TScalarStyle::Plain => Style::Plain,
            TScalarStyle::SingleQuoted => Style::SingleQuoted,
            TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
            TScalarStyle::Literal | TScalarStyle::Folded => Style::Block,
        }
    }
}

/// The value of a top-level key, as the parser saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A scalar.
    Scalar {
        /// Its text after unquoting.
        text: String,
        /// How it is written.
        style: Style,
        /// Whether it carries an anchor (`&a`).
        anchored: bool,
        /// Whether it carries a tag (`!!str`).
        tagged: bool,
    },
    /// An alias (`*a`).
    Alias,
    /// A sequence or mapping, kept as a canonical dump of its events so that
    /// two parses can be compared.
    Collection(String),
}

/// One top-level `key: value` pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Where the key starts.
    pub key_pos: Pos,
    /// Whether the key carries an anchor or tag.
    pub key_decorated: bool,
    /// Where the value starts.
    pub value_pos: Pos,
    /// The value.
    pub value: Value,
}

/// A YAML problem at a position of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl fmt::Display for YamlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

fn err(pos: Pos, message: impl Into<String>) -> YamlError {
    YamlError {
        pos,
        message: message.into(),
    }
}

#[derive(Default)]
struct Collector {
    events: Vec<(Event, Marker)>,
}

impl MarkedEventReceiver for Collector {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        self.events.push((ev, mark));
    }
}

fn dump_event(ev: &Event, out: &mut String) {
    use std::fmt::Write;
    match ev {
        Event::Scalar(v, style, anchor, tag) => {
            let _ = write!(out, "S({v:?},{style:?},{anchor},{tag:?})");
        }
        Event::Alias(a) => {
            let _ = write!(out, "A({a})");
        }
        Event::SequenceStart(a, t) => {
            let _ = write!(out, "[({a},{t:?})");
        }
        Event::SequenceEnd => out.push(']'),
        Event::MappingStart(a, t) => {
            let _ = write!(out, "{{({a},{t:?})");
        }
        Event::MappingEnd => out.push('}'),
        _ => {}
    }
}

/// Parses `text` as one YAML document whose root is a mapping, and returns
/// its top-level entries in file order. Duplicate keys, non-scalar keys,
/// several documents and syntax errors are errors.
pub fn parse_mapping(text: &str) -> Result<Vec<Entry>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut collector = Collector::default();
    parser.load(&mut collector, true).map_err(|e| {
        err(
            Pos::from_marker(e.marker()),
            format!("not valid YAML: {}", e.info()),
        )
    })?;
    let events = collector.events;
    let docs = events
        .iter()
        .filter(|(e, _)| matches!(e, Event::DocumentStart))
        .count();
    if docs != 1 {
        let pos = events
            .iter()
            .filter(|(e, _)| matches!(e, Event::DocumentStart))
            .nth(1)
            .map(|(_, m)| Pos::from_marker(m))
            .unwrap_or(Pos { line: 1, col: 1 });
        return Err(err(
            pos,
            format!("expected exactly one YAML document, found {docs}"),
        ));
    }
    let mut i = events
        .iter()
        .position(|(e, _)| matches!(e, Event::DocumentStart))
        .unwrap_or(0)
        + 1;
    match events.get(i) {
        Some((Event::MappingStart(anchor, tag), m)) => {
            if *anchor != 0 || tag.is_some() {
                return Err(err(
                    Pos::from_marker(m),
                    "the top-level mapping must carry no anchor or tag",
                ));
            }
        }
        Some((_, m)) => {
            return Err(err(
                Pos::from_marker(m),
                "the document is not a mapping of keys to values",
            ))
        }
        None => return Err(err(Pos { line: 1, col: 1 }, "empty document")),
    }
    i += 1;
    let mut entries: Vec<Entry> = Vec::new();
    loop {
        let (ev, m) = &events[i];
        let key_pos = Pos::from_marker(m);
        let (key, key_decorated) = match ev {
            Event::MappingEnd => break,
            Event::Scalar(k, _, anchor, tag) => (k.clone(), *anchor != 0 || tag.is_some()),
            _ => return Err(err(key_pos, "keys must be plain scalars")),
        };
        if let Some(first) = entries.iter().find(|e| e.key == key) {
            return Err(err(
                key_pos,
                format!(
                    "duplicate key `{key}` (first defined at {}); refusing to edit an ambiguous file",
                    first.key_pos
                ),
            ));
        }
        i += 1;
        let (ev, m) = &events[i];
        let value_pos = Pos::from_marker(m);
        let value = match ev {
            Event::Scalar(v, style, anchor, tag) => Value::Scalar {
                text: v.clone(),
                style: (*style).into(),
                anchored: *anchor != 0,
                tagged: tag.is_some(),
            },
            Event::Alias(_) => Value::Alias,
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let mut depth = 0usize;
                let mut dump = String::new();
                loop {
                    let ev = &events[i].0;
                    match ev {
                        Event::SequenceStart(..) | Event::MappingStart(..) => depth += 1,
                        Event::SequenceEnd | Event::MappingEnd => depth -= 1,
                        _ => {}
                    }
                    dump_event(ev, &mut dump);
                    if depth == 0 {
                        break;
                    }
                    i += 1;
                }
                Value::Collection(dump)
            }
            _ => return Err(err(value_pos, "unexpected YAML event")),
        };
        entries.push(Entry {
            key,
            key_pos,
            key_decorated,
            value_pos,
            value,
        });
        i += 1;
    }
    Ok(entries)
}

/// The value of a top-level key when it is a scalar, with its style.
pub fn scalar<'a>(entries: &'a [Entry], key: &str) -> Option<(&'a str, Style)> {
    entries
        .iter()
        .find(|e| e.key == key)
        .and_then(|e| match &e.value {
            Value::Scalar { text, style, .. } => Some((text.as_str(), *style)),
            _ => None,
        })
}

/// One intended edit: give `key` the scalar `token` (already quoted as it
/// must appear in the file, e.g. `'20250117.2'`), whose parsed text is
/// `expected`.
#[derive(Debug, Clone)]
pub struct ScalarEdit {
    /// The top-level key to edit.
    pub key: String,
    /// The replacement text as written in the file.
    pub token: String,
    /// What the parser must read back.
    pub expected: String,
    /// The style the parser must read back.
    pub expected_style: Style,
}

/// Splits text into lines, each with its own line terminator.
fn split_lines(text: &str) -> Vec<&str> {
    text.split_inclusive('\n').collect()
}

/// Finds the byte range of the scalar value on a `key: value` line, starting
/// the search after the key's colon. Returns the range and the decoded text.
fn value_span(line: &str, value_col: usize) -> Option<(usize, usize, String)> {
    // value_col is 1-based in characters.
    let start = line
        .char_indices()
        .nth(value_col - 1)
        .map(|(b, _)| b)
        .unwrap_or(line.len());
    let body = line.trim_end_matches(['\n', '\r']);
    let rest = &body[start..];
    let (len, decoded) = if let Some(inner) = rest.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = inner.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                    out.push('\'');
                } else {
                    end = Some(i + 2);
                    break;
                }
            } else {
                out.push(c);
            }
        }
        (end?, out)
    } else if let Some(inner) = rest.strip_prefix('"') {
        if inner.contains('\\') {
            return None;
        }
        let close = inner.find('"')?;
        (close + 2, inner[..close].to_string())
    } else {
        if rest.starts_with(['&', '*', '!', '|', '>', '[', '{']) {
            return None;
        }
        let mut end = rest.len();
        let bytes = rest.as_bytes();
        for i in 0..bytes.len() {
            if bytes[i] == b'#' && i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                end = i;
                break;
            }
        }
        let v = rest[..end].trim_end();
        (v.len(), v.to_string())
    };
    let after = rest[len..].trim_start_matches([' ', '\t']);
    if !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    Some((start, start + len, decoded))
}

/// Applies `edits` to `text`, changing only the value token on each edited
/// key's line, then parses the result again and checks that every other key
/// kept its value and each edited key reads back as intended.
///
/// Refuses (with the file untouched, since this only returns a new text):
/// unknown keys, keys or values with anchors, aliases or tags, values that
/// are not single-line scalars on the key's line.
pub fn edit_scalars(text: &str, edits: &[ScalarEdit]) -> Result<String, YamlError> {
    let entries = parse_mapping(text)?;
    let mut lines: Vec<String> = split_lines(text).into_iter().map(String::from).collect();
    for edit in edits {
        let Some(entry) = entries.iter().find(|e| e.key == edit.key) else {
            return Err(err(
                Pos { line: 1, col: 1 },
                format!("no key `{}` in the file", edit.key),
            ));
        };
        if entry.key_decorated {
            return Err(err(
                entry.key_pos,
                format!(
                    "key `{}` carries an anchor or tag; refusing to edit it",
                    edit.key
                ),
            ));
        }
        match &entry.value {
            Value::Scalar {
                anchored: true, ..
            } => {
                return Err(err(
                    entry.value_pos,
                    format!(
                        "the value of `{}` carries an anchor (other keys may refer to it); refusing to edit it",
                        edit.key
                    ),
                ))
            }
            Value::Scalar { tagged: true, .. } => {
                return Err(err(
                    entry.value_pos,
                    format!("the value of `{}` carries a tag; refusing to edit it", edit.key),
                ))
            }
            Value::Alias => {
                return Err(err(
                    entry.value_pos,
                    format!(
                        "the value of `{}` is an alias; refusing to edit it",
                        edit.key
                    ),
                ))
            }
            Value::Collection(_) => {
                return Err(err(
                    entry.value_pos,
                    format!("the value of `{}` is not a scalar", edit.key),
                ))
            }
            Value::Scalar { .. } => {}
        }
        let Value::Scalar { text: current, .. } = &entry.value else {
            unreachable!("checked above")
        };
        if entry.value_pos.line != entry.key_pos.line {
            return Err(err(
                entry.value_pos,
                format!(
                    "the value of `{}` is not on the line of its key; refusing to edit it",
                    edit.key
                ),
            ));
        }
        let line = &lines[entry.value_pos.line - 1];
        let Some((start, end, decoded)) = value_span(line, entry.value_pos.col) else {
            return Err(err(
                entry.value_pos,
                format!(
                    "cannot delimit the value of `{}` on its line; refusing to edit it",
                    edit.key
                ),
            ));
        };
        if &decoded != current {
            return Err(err(
                entry.value_pos,
                format!(
                    "the value of `{}` spans several lines or uses escapes; refusing to edit it",
                    edit.key
                ),
            ));
        }
        let mut new_line = String::with_capacity(line.len() + edit.token.len());
        new_line.push_str(&line[..start]);
        new_line.push_str(&edit.token);
        new_line.push_str(&line[end..]);
        lines[entry.value_pos.line - 1] = new_line;
    }
    let new_text: String = lines.concat();
    verify(&entries, &new_text, edits)?;
    Ok(new_text)
}

/// Re-parses `new_text` and checks it against the original `entries`: same
/// keys in the same order, same values except for the edited keys, which
/// read back as intended.
pub fn verify(entries: &[Entry], new_text: &str, edits: &[ScalarEdit]) -> Result<(), YamlError> {
    let after = parse_mapping(new_text).map_err(|e| YamlError {
        pos: e.pos,
        message: format!(
            "the edited file does not parse ({}); nothing written",
            e.message
        ),
    })?;
    let before_keys: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    let after_keys: Vec<&str> = after.iter().map(|e| e.key.as_str()).collect();
    let added: Vec<&ScalarEdit> = edits
        .iter()
        .filter(|e| !before_keys.contains(&e.key.as_str()))
        .collect();
    for a in &after {
        let edit = edits.iter().find(|e| e.key == a.key);
        match (entries.iter().find(|b| b.key == a.key), edit) {
            (_, Some(edit)) => match &a.value {
                Value::Scalar {
                    text,
                    style,
                    anchored: false,
                    tagged: false,
                } if *text == edit.expected && *style == edit.expected_style => {}
                other => {
                    return Err(err(
                        a.value_pos,
                        format!(
                            "after the edit, `{}` reads back as {other:?} instead of {:?}; nothing written",
                            a.key, edit.expected
                        ),
                    ))
                }
            },
            (Some(b), None) if b.value == a.value => {}
            (Some(_), None) => {
                return Err(err(
                    a.value_pos,
                    format!("the edit changed `{}` unexpectedly; nothing written", a.key),
                ))
            }
            (None, None) => {
                return Err(err(
                    a.key_pos,
                    format!("the edit added `{}` unexpectedly; nothing written", a.key),
                ))
            }
        }
    }
    let expected_len = before_keys.len() + added.len();
    if after_keys.len() != expected_len || before_keys.iter().any(|k| !after_keys.contains(k)) {
        return Err(err(
            Pos { line: 1, col: 1 },
            "the edit lost or added keys; nothing written",
        ));
    }
    Ok(())
}

/// Appends `key: token` lines at the end of `text` (adding a final newline
/// first if the file lacks one), keeping the file's line terminator style.
pub fn append_entries(text: &str, lines: &[(String, String)]) -> String {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut out = text.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push_str(eol);
    }
    for (k, v) in lines {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str(eol);
    }
    out
}

/// Inserts `key: token` lines (`lines`) into `text` at their sorted
/// positions among the file's top-level `entries` (byte order, the order of
/// a file sorted with `sort` in the C locale): each new line goes just
/// before the line of the first existing key greater than it, or at the end
/// when none is. Everything else is kept byte for byte; a missing final
/// newline is added before a line appended at the end. Returns the new text
/// and, for each inserted key, its 1-based line in the new text.
pub fn insert_sorted(
    text: &str,
    entries: &[Entry],
    lines: &[(String, String)],
) -> (String, Vec<(String, usize)>) {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let src = split_lines(text);
    let mut plan: Vec<(usize, &str, &str)> = lines
        .iter()
        .map(|(k, v)| {
            let at = entries
                .iter()
                .find(|e| e.key.as_str() > k.as_str())
                .filter(|e| e.key_pos.col == 1)
                .map(|e| e.key_pos.line - 1)
                .unwrap_or(src.len());
            (at, k.as_str(), v.as_str())
        })
        .collect();
    plan.sort();
    let mut out = String::with_capacity(text.len() + 128);
    let mut placed = Vec::new();
    let mut line_no = 0usize;
    let mut next = plan.iter().peekable();
    for i in 0..=src.len() {
        while let Some((_, k, v)) = next.next_if(|(at, _, _)| *at == i) {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str(eol);
            line_no += 1;
            placed.push((k.to_string(), line_no));
        }
        if let Some(l) = src.get(i) {
            out.push_str(l);
            line_no += 1;
        }
    }
    (out, placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let e = parse_mapping("a: 1\nbb: 'x'\n").unwrap();
        assert_eq!(e[1].key_pos, Pos { line: 2, col: 1 });
        assert_eq!(e[1].value_pos, Pos { line: 2, col: 5 });
    }

    #[test]
    fn value_span_handles_quotes_and_comments() {
        let (s, e, d) = value_span("k: 'it''s' # c\n", 4).unwrap();
        assert_eq!((s, e, d.as_str()), (3, 10, "it's"));
        let (s, e, d) = value_span("k: plain value  # c\n", 4).unwrap();
        assert_eq!((s, e, d.as_str()), (3, 14, "plain value"));
        let (s, e, d) = value_span("k: a#b\n", 4).unwrap();
        assert_eq!((s, e, d.as_str()), (3, 6, "a#b"));
        assert!(value_span("k: 'open\n", 4).is_none());
    }
}

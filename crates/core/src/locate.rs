//! Field paths, and finding where a field sits in a TOML or JSON text so every validation
//! error can name its line and column. Pure text scanning, no I/O.

use std::fmt;

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// A path such as `nodes[2].instance_type` (TOML style) or `/container/docker/image` (JSON
/// pointer style, used for app files so it matches what Marathon prints).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.push(Segment::Key(key.into()));
        self
    }

    pub fn index(mut self, index: usize) -> Self {
        self.0.push(Segment::Index(index));
        self
    }

    pub fn from_serde(path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment as S;
        let segments = path
            .iter()
            .filter_map(|segment| match segment {
                S::Seq { index } => Some(Segment::Index(*index)),
                S::Map { key } => Some(Segment::Key(key.clone())),
                S::Enum { variant } => Some(Segment::Key(variant.clone())),
                S::Unknown => None,
            })
            .collect();
        Self(segments)
    }

    /// `nodes[2].instance_type`
    pub fn dotted(&self) -> String {
        let mut out = String::new();
        for segment in &self.0 {
            match segment {
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
            }
        }
        out
    }

    /// `/container/docker/image`
    pub fn pointer(&self) -> String {
        if self.0.is_empty() {
            return "/".into();
        }
        let mut out = String::new();
        for segment in &self.0 {
            out.push('/');
            match segment {
                Segment::Key(key) => out.push_str(&key.replace('~', "~0").replace('/', "~1")),
                Segment::Index(index) => out.push_str(&index.to_string()),
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dotted())
    }
}

/// 1-based line and column of a byte offset.
pub fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let column = text[line_start..offset].chars().count() + 1;
    (to_u32(line), to_u32(column))
}

fn to_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// Where `path` is written in a TOML document: the key or table header of the deepest part of
/// the path that appears literally. Handles tables, arrays of tables, dotted and quoted keys;
/// for values inside inline tables or arrays it points at the enclosing key.
pub fn locate_toml(text: &str, path: &FieldPath) -> Option<(u32, u32)> {
    let mut best: Option<(usize, usize)> = None;
    for entry in toml_entries(text) {
        if path.0.starts_with(&entry.path.0)
            && best.is_none_or(|(depth, _)| entry.path.0.len() >= depth)
        {
            best = Some((entry.path.0.len(), entry.offset));
        }
    }
    best.map(|(_, position)| line_column(text, position))
}

/// A table header or `key = value` line of a TOML document, with the full path it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TomlEntry {
    pub path: FieldPath,
    /// Byte offset of the line's first non-blank character.
    pub offset: usize,
    /// `[table]` or `[[array]]` rather than `key = value`.
    pub header: bool,
}

/// Every header and assignment line of a TOML document, top to bottom, by a line scan that
/// needs no valid document (so it also serves to explain a parse error).
pub fn toml_entries(text: &str) -> Vec<TomlEntry> {
    let mut table: Vec<Segment> = Vec::new();
    let mut array_counts: Vec<(Vec<Segment>, usize)> = Vec::new();
    let mut entries = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        let position = offset + indent;
        offset += line.len();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (path, header) = if let Some(header) = trimmed.strip_prefix("[[") {
            let mut keys = split_keys(header.split("]]").next().unwrap_or_default());
            let last = keys.pop().unwrap_or_default();
            let mut resolved = resolve_table(&keys, &array_counts);
            resolved.push(Segment::Key(last));
            let index = match array_counts.iter_mut().find(|(path, _)| *path == resolved) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    array_counts.push((resolved.clone(), 1));
                    0
                }
            };
            table = resolved;
            table.push(Segment::Index(index));
            (table.clone(), true)
        } else if let Some(header) = trimmed.strip_prefix('[') {
            let keys = split_keys(header.split(']').next().unwrap_or_default());
            table = resolve_table(&keys, &array_counts);
            (table.clone(), true)
        } else if let Some((key, _)) = split_assignment(trimmed) {
            let mut full = table.clone();
            full.extend(split_keys(key).into_iter().map(Segment::Key));
            (full, false)
        } else {
            continue;
        };
        entries.push(TomlEntry {
            path: FieldPath(path),
            offset: position,
            header,
        });
    }
    entries
}

/// Inserts the current index after every prefix that names an array of tables, so
/// `[nodes.policy]` after the third `[[nodes]]` resolves to `nodes[2].policy`.
fn resolve_table(keys: &[String], array_counts: &[(Vec<Segment>, usize)]) -> Vec<Segment> {
    let mut resolved = Vec::new();
    for key in keys {
        resolved.push(Segment::Key(key.clone()));
        if let Some((_, count)) = array_counts.iter().find(|(path, _)| *path == resolved) {
            resolved.push(Segment::Index(count - 1));
        }
    }
    resolved
}

fn split_assignment(line: &str) -> Option<(&str, &str)> {
    let mut in_quotes = None;
    for (index, ch) in line.char_indices() {
        match (ch, in_quotes) {
            ('"' | '\'', None) => in_quotes = Some(ch),
            (c, Some(q)) if c == q => in_quotes = None,
            ('=', None) => return Some((&line[..index], &line[index + 1..])),
            _ => {}
        }
    }
    None
}

fn split_keys(text: &str) -> Vec<String> {
    text.split('.')
        .map(|key| key.trim().trim_matches('"').trim_matches('\'').to_owned())
        .collect()
}

/// Where `path` is written in a JSON document: the member key (or array element) of the
/// deepest part of the path that exists.
pub fn locate_json(text: &str, path: &FieldPath) -> Option<(u32, u32)> {
    let bytes = text.as_bytes();
    let mut scanner = JsonScanner { bytes, at: 0 };
    scanner.skip_ws();
    let mut found = scanner.at;
    for segment in &path.0 {
        scanner.skip_ws();
        match (segment, scanner.peek()) {
            (Segment::Key(wanted), Some(b'{')) => {
                scanner.at += 1;
                let mut matched = false;
                loop {
                    scanner.skip_ws();
                    if scanner.peek() != Some(b'"') {
                        break;
                    }
                    let key_at = scanner.at;
                    let key = scanner.string()?;
                    scanner.skip_ws();
                    scanner.expect(b':')?;
                    scanner.skip_ws();
                    if key == *wanted {
                        found = key_at;
                        matched = true;
                        break;
                    }
                    scanner.skip_value()?;
                    scanner.skip_ws();
                    if scanner.peek() == Some(b',') {
                        scanner.at += 1;
                    }
                }
                if !matched {
                    break;
                }
            }
            (Segment::Index(wanted), Some(b'[')) => {
                scanner.at += 1;
                let mut index = 0;
                let mut matched = false;
                loop {
                    scanner.skip_ws();
                    if matches!(scanner.peek(), Some(b']') | None) {
                        break;
                    }
                    if index == *wanted {
                        found = scanner.at;
                        matched = true;
                        break;
                    }
                    scanner.skip_value()?;
                    scanner.skip_ws();
                    if scanner.peek() == Some(b',') {
                        scanner.at += 1;
                    }
                    index += 1;
                }
                if !matched {
                    break;
                }
            }
            _ => break,
        }
    }
    Some(line_column(text, found))
}

/// A key written twice in one JSON object (serde_json keeps the last silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// The path of the key, e.g. `/container/docker/image`.
    pub path: FieldPath,
    /// Byte offsets of the first and the repeated occurrence of the key.
    pub first: usize,
    pub repeated: usize,
}

/// Every key repeated within one object, at any depth, in document order. Meant for text that
/// parsed as JSON; on anything else it reports what it found before the text stopped making
/// sense.
pub fn json_duplicate_keys(text: &str) -> Vec<DuplicateKey> {
    let mut scanner = JsonScanner {
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut found = Vec::new();
    scanner.find_duplicates(&mut FieldPath::default(), &mut found);
    found
}

struct JsonScanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonScanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek() == Some(byte)).then(|| self.at += 1)
    }

    fn string(&mut self) -> Option<String> {
        self.expect(b'"')?;
        let start = self.at;
        while let Some(byte) = self.peek() {
            match byte {
                b'\\' => self.at += 2,
                b'"' => {
                    let raw = std::str::from_utf8(&self.bytes[start..self.at]).ok()?;
                    self.at += 1;
                    return serde_json::from_str(&format!("\"{raw}\"")).ok();
                }
                _ => self.at += 1,
            }
        }
        None
    }

    /// Walks one value, recording every key an object repeats. The nesting depth is bounded
    /// by the JSON parser that accepted the text first (128 levels).
    fn find_duplicates(
        &mut self,
        path: &mut FieldPath,
        found: &mut Vec<DuplicateKey>,
    ) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                self.at += 1;
                let mut seen: std::collections::HashMap<String, usize> =
                    std::collections::HashMap::new();
                loop {
                    self.skip_ws();
                    if self.peek()? == b'}' {
                        self.at += 1;
                        return Some(());
                    }
                    let key_at = self.at;
                    let key = self.string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    path.0.push(Segment::Key(key.clone()));
                    match seen.get(&key) {
                        Some(first) => found.push(DuplicateKey {
                            path: path.clone(),
                            first: *first,
                            repeated: key_at,
                        }),
                        None => {
                            seen.insert(key, key_at);
                        }
                    }
                    let walked = self.find_duplicates(path, found);
                    path.0.pop();
                    walked?;
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.at += 1;
                    }
                }
            }
            b'[' => {
                self.at += 1;
                let mut index = 0;
                loop {
                    self.skip_ws();
                    if self.peek()? == b']' {
                        self.at += 1;
                        return Some(());
                    }
                    path.0.push(Segment::Index(index));
                    let walked = self.find_duplicates(path, found);
                    path.0.pop();
                    walked?;
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.at += 1;
                    }
                    index += 1;
                }
            }
            _ => self.skip_value(),
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.skip_ws();
                    if self.peek()? == close {
                        self.at += 1;
                        return Some(());
                    }
                    if open == b'{' {
                        self.string()?;
                        self.skip_ws();
                        self.expect(b':')?;
                    }
                    self.skip_value()?;
                    self.skip_ws();
                    if self.peek() == Some(b',') {
                        self.at += 1;
                    }
                }
            }
            _ => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
                ) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str = r#"[cluster]
name = "c"

[[nodes]]
name = "a"
roles = ["zookeeper"]

[[nodes]]
name = "b"
instance_type = "t2.micro"
attributes = { env = "x" }

[nodes.policy]
allow_resize = true

[dns]
zone = "z."
[[dns.records]]
name = "r1"
[[dns.records]]
"name" = "r2"
"#;

    fn path(dotted: &[Segment]) -> FieldPath {
        FieldPath(dotted.to_vec())
    }

    fn key(k: &str) -> Segment {
        Segment::Key(k.into())
    }

    #[test]
    fn toml_paths_resolve_to_their_lines() {
        let cases = [
            (vec![key("cluster"), key("name")], (2, 1)),
            (
                vec![
                    key("nodes"),
                    Segment::Index(0),
                    key("roles"),
                    Segment::Index(0),
                ],
                (6, 1),
            ),
            (
                vec![key("nodes"), Segment::Index(1), key("instance_type")],
                (10, 1),
            ),
            (
                vec![
                    key("nodes"),
                    Segment::Index(1),
                    key("attributes"),
                    key("env"),
                ],
                (11, 1),
            ),
            (
                vec![
                    key("nodes"),
                    Segment::Index(1),
                    key("policy"),
                    key("allow_resize"),
                ],
                (14, 1),
            ),
            (vec![key("nodes"), Segment::Index(1), key("ami")], (8, 1)),
            (
                vec![key("dns"), key("records"), Segment::Index(1), key("name")],
                (21, 1),
            ),
            (vec![key("dns"), key("ttl")], (16, 1)),
        ];
        for (segments, expected) in cases {
            let p = path(&segments);
            assert_eq!(locate_toml(TOML, &p), Some(expected), "{p}");
        }
        assert_eq!(locate_toml(TOML, &path(&[key("absent")])), None);
    }

    const JSON: &str = "{\n  \"id\": \"/a\",\n  \"container\": {\n    \"docker\": {\"image\": \"x\", \"network\": \"HOST\"}\n  },\n  \"constraints\": [[\"env\", \"CLUSTER\", \"a\"], [\"hostname\", \"UNIQUE\"]],\n  \"s\": \"a\\\"b\"\n}";

    #[test]
    fn json_pointers_resolve_to_their_positions() {
        let cases = [
            (vec![key("id")], (2, 3)),
            (
                vec![key("container"), key("docker"), key("network")],
                (4, 30),
            ),
            (
                vec![key("constraints"), Segment::Index(1), Segment::Index(0)],
                (6, 45),
            ),
            (vec![key("s")], (7, 3)),
            (vec![key("container"), key("missing")], (3, 3)),
        ];
        for (segments, expected) in cases {
            let p = path(&segments);
            assert_eq!(locate_json(JSON, &p), Some(expected), "{}", p.pointer());
        }
    }

    /// A repeated key's pointer, and the line and column of its first and repeated occurrence.
    type Repeat<'a> = (&'a str, (u32, u32), (u32, u32));

    #[test]
    fn repeated_json_keys_are_found_at_every_depth() {
        let cases: [(&str, &[Repeat]); 5] = [
            ("{\"a\": 1, \"b\": 2}", &[]),
            (
                "{\n  \"instances\": 1,\n  \"instances\": 2\n}",
                &[("/instances", (2, 3), (3, 3))],
            ),
            (
                "{\"c\": {\"d\": {\"x\": 1, \"x\": [1, {\"y\": 1, \"y\": 2}]}}}",
                &[
                    ("/c/d/x", (1, 14), (1, 22)),
                    ("/c/d/x/1/y", (1, 32), (1, 40)),
                ],
            ),
            (
                "[{\"k\": 1}, {\"k\": 1, \"k\": 2}]",
                &[("/1/k", (1, 13), (1, 21))],
            ),
            // The same key in sibling objects is no repetition.
            (
                "{\"a\": {\"k\": 1}, \"b\": {\"k\": 1}, \"s\": \"{\\\"k\\\"\"}",
                &[],
            ),
        ];
        for (text, expected) in cases {
            let found = json_duplicate_keys(text);
            let pointers: Vec<String> = found.iter().map(|d| d.path.pointer()).collect();
            let found: Vec<Repeat> = found
                .iter()
                .zip(&pointers)
                .map(|(d, pointer)| {
                    (
                        pointer.as_str(),
                        line_column(text, d.first),
                        line_column(text, d.repeated),
                    )
                })
                .collect();
            assert_eq!(found, expected, "{text}");
        }
    }

    #[test]
    fn toml_entries_name_full_paths_and_headers() {
        let entries = toml_entries(TOML);
        let header_lines: Vec<(String, u32)> = entries
            .iter()
            .filter(|e| e.header)
            .map(|e| (e.path.dotted(), line_column(TOML, e.offset).0))
            .collect();
        assert_eq!(
            header_lines,
            [
                ("cluster".to_owned(), 1),
                ("nodes[0]".to_owned(), 4),
                ("nodes[1]".to_owned(), 8),
                ("nodes[1].policy".to_owned(), 13),
                ("dns".to_owned(), 16),
                ("dns.records[0]".to_owned(), 18),
                ("dns.records[1]".to_owned(), 20),
            ]
        );
        assert!(
            entries
                .iter()
                .any(|e| !e.header && e.path.dotted() == "dns.records[1].name")
        );
    }

    #[test]
    fn paths_print_in_both_styles() {
        let p = FieldPath::default()
            .key("nodes")
            .index(2)
            .key("instance_type");
        assert_eq!(p.dotted(), "nodes[2].instance_type");
        assert_eq!(p.pointer(), "/nodes/2/instance_type");
        assert_eq!(FieldPath::default().key("a/b").pointer(), "/a~1b");
    }

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }
}

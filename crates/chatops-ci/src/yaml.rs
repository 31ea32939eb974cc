//! Phase one: the raw YAML tree.
//!
//! The text is parsed into [`Raw`], an ordered tree close to what GitLab's Ruby loader (Psych)
//! builds: anchors and aliases expanded, merge keys (`<<`) applied with Psych's rules, duplicate
//! keys resolved last-wins (Psych accepts them; a strict parser would refuse real files), and
//! custom tags such as `!reference` kept as [`Raw::Tagged`] for phase two.
//!
//! Why not `serde_yaml::Value` + `apply_merge()`: `apply_merge` leaves the `<<` of a mapping that
//! was itself merged through an alias (`.b: &b {<<: *a}` then `job: {<<: *b}`), its typed
//! `Mapping` refuses duplicate keys, and it gives explicit keys precedence where Psych lets a
//! later `<<` override earlier keys. Building our own tree during deserialisation applies each
//! merge exactly once, in document order, as Psych does.
//!
//! Defences: a [`Budget`] bounds the expanded size in values *and* in bytes of text, counting
//! an alias every time it is used and checked before the text is copied: a "billion laughs"
//! file, or one 1 MiB string aliased 10,000 times, fails in milliseconds without allocating
//! what it would expand to. The same budget is drawn on by every later step that copies
//! values (`extends`, `!reference`, `default:`, inputs). Nesting is limited to GitLab's 100
//! levels.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};

/// Nesting limit, GitLab's `MAX_YAML_DEPTH`.
pub(crate) const MAX_DEPTH: usize = 100;
/// Most nodes one configuration (all its files) may expand to, aliases counted every time they
/// are used. Real CI files are far below this; alias bombs reach it at once.
pub(crate) const MAX_NODES: usize = 1_000_000;
/// Most bytes of text (scalars and keys) one configuration may expand to, aliases counted
/// every time they are used, and copies made by `extends`, `!reference`, `default:` and
/// inputs counted too. Real CI files are a few hundred KiB at most once expanded; a 1 MB
/// file aliasing a 1 MiB string 10,000 times would be 10 GB.
pub(crate) const MAX_EXPANDED_BYTES: usize = 32 * 1024 * 1024;
/// Largest CI file accepted, in bytes.
pub(crate) const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Raw {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Raw>),
    Map(RawMap),
    /// A value with a custom tag (`!reference [job, key]`); the tag is stored without `!`.
    Tagged(String, Box<Raw>),
}

impl Raw {
    /// The mapping, if this is one.
    pub(crate) fn as_map(&self) -> Option<&RawMap> {
        match self {
            Raw::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Raw::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar as the string Ruby's `to_s` would give (numbers, booleans); `None` for
    /// null, collections and tagged values.
    pub(crate) fn scalar_string(&self) -> Option<String> {
        match self {
            Raw::Str(s) => Some(s.clone()),
            Raw::Int(i) => Some(i.to_string()),
            Raw::Float(f) => Some(ruby_float(*f)),
            Raw::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// A short name of the value's kind, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Raw::Null => "null",
            Raw::Bool(_) => "a boolean",
            Raw::Int(_) | Raw::Float(_) => "a number",
            Raw::Str(_) => "a string",
            Raw::Seq(_) => "an array",
            Raw::Map(_) => "a hash",
            Raw::Tagged(..) => "a tagged value",
        }
    }
}

/// Formats a float as Ruby's `Float#to_s` does for the common cases (`1.0`, `1.5`, `1.0e+20`).
fn ruby_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f.fract() == 0.0 && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    if f.abs() >= 1e16 {
        let s = format!("{f:e}");
        // Rust: "1e20"; Ruby: "1.0e+20".
        if let Some((mant, exp)) = s.split_once('e') {
            let mant = if mant.contains('.') {
                mant.to_string()
            } else {
                format!("{mant}.0")
            };
            let exp = if exp.starts_with('-') {
                exp.to_string()
            } else {
                format!("+{exp}")
            };
            return format!("{mant}e{exp}");
        }
    }
    f.to_string()
}

/// An insertion-ordered mapping with string keys. Re-inserting a key replaces its value in
/// place (Ruby's `Hash#[]=`), which is what Psych and `deep_merge` do.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawMap {
    entries: Vec<(String, Raw)>,
    index: HashMap<String, usize>,
}

impl PartialEq for RawMap {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl RawMap {
    pub(crate) fn new() -> Self {
        RawMap::default()
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Raw> {
        self.index
            .get(key)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, v)| v)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Raw> {
        match self.index.get(key) {
            Some(&i) => self.entries.get_mut(i).map(|(_, v)| v),
            None => None,
        }
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// Sets `key`, keeping its position when it exists.
    pub(crate) fn insert(&mut self, key: String, value: Raw) {
        match self.index.get(&key) {
            Some(&i) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    slot.1 = value;
                }
            }
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Raw> {
        let i = self.index.remove(key)?;
        let (_, v) = self.entries.remove(i);
        for (_, idx) in self.index.iter_mut() {
            if *idx > i {
                *idx -= 1;
            }
        }
        Some(v)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Raw)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// ActiveSupport's `deep_merge!`: hashes merge recursively, anything else in `other`
    /// replaces the value here (arrays are replaced, not concatenated).
    pub(crate) fn deep_merge(&mut self, other: RawMap) {
        for (k, v) in other.entries {
            match (self.get_mut(&k), v) {
                (Some(Raw::Map(mine)), Raw::Map(theirs)) => mine.deep_merge(theirs),
                (_, v) => self.insert(k, v),
            }
        }
    }
}

impl IntoIterator for RawMap {
    type Item = (String, Raw);
    type IntoIter = std::vec::IntoIter<(String, Raw)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

/// Why a text could not become a tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct YamlError {
    pub line: Option<usize>,
    pub message: String,
}

/// The documents of one file, each a [`Raw`], with a fresh budget.
#[cfg(test)]
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Raw>, YamlError> {
    parse_documents_within(text, &Budget::new())
}

/// The documents of one file, each a [`Raw`], drawing on `budget` (shared by every file of
/// one configuration, so 150 includes cannot multiply the limit).
pub(crate) fn parse_documents_within(text: &str, budget: &Budget) -> Result<Vec<Raw>, YamlError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(YamlError {
            line: None,
            message: format!(
                "the file is {} bytes; at most {} are accepted",
                text.len(),
                MAX_FILE_BYTES
            ),
        });
    }
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let raw = RawSeed { budget, depth: 0 }
            .deserialize(doc)
            .map_err(convert_error)?;
        docs.push(raw);
    }
    Ok(docs)
}

/// Splits serde_norway's " at line N column M" off its message and keeps the line.
fn convert_error(e: serde_yaml::Error) -> YamlError {
    let line = e.location().map(|l| l.line());
    let mut message = e.to_string();
    if let Some(pos) = message.rfind(" at line ") {
        message.truncate(pos);
    }
    if message == "repetition limit exceeded" {
        // serde_norway's own guard: more alias uses than 100 per event of the file.
        message = "the document uses its aliases too many times (are aliases nested into a \
                   \"billion laughs\"?); use fewer aliases"
            .into();
    }
    YamlError { line, message }
}

/// What one configuration may still expand to: values and bytes of text. Shared by every
/// file of the configuration (150 includes cannot multiply the limit) and by every step
/// that copies values, so the sum of all copies is bounded, not each one.
pub(crate) struct Budget {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget::new()
    }
}

impl Budget {
    /// The full budget: [`MAX_NODES`] values and [`MAX_EXPANDED_BYTES`] bytes.
    pub(crate) fn new() -> Self {
        Budget {
            nodes: Cell::new(MAX_NODES),
            bytes: Cell::new(MAX_EXPANDED_BYTES),
        }
    }

    fn take<E: de::Error>(&self) -> Result<(), E> {
        let left = self.nodes.get();
        if left == 0 {
            return Err(E::custom(format!(
                "the document expands to more than {MAX_NODES} values (are aliases nested \
                 into a \"billion laughs\"?); simplify it"
            )));
        }
        self.nodes.set(left - 1);
        Ok(())
    }

    /// Takes the bytes of one scalar about to be copied out of the parser: an alias of a
    /// large string is refused here, before its copy is allocated.
    fn take_text<E: de::Error>(&self, len: usize) -> Result<(), E> {
        if self.take_bytes(len).is_err() {
            return Err(E::custom(format!(
                "the document expands to more than {} MiB of text once its aliases are \
                 expanded (every `*alias` repeats its anchor's whole content); use fewer \
                 aliases of large values",
                MAX_EXPANDED_BYTES / (1024 * 1024)
            )));
        }
        Ok(())
    }

    /// Takes what a copy of `raw` costs (its values, and its text in bytes) before the copy
    /// is made. Walks at most what is left of the budget, so a refused copy costs little.
    /// `Err` holds the limit that was passed, for the caller's message.
    pub(crate) fn take_copy(&self, raw: &Raw) -> Result<(), String> {
        let mut nodes = self.nodes.get();
        let mut bytes = self.bytes.get();
        let exceeded = exceeded_message;
        // An explicit stack: resolved `!reference`s can nest deeper than the parser allows.
        let mut stack = vec![raw];
        while let Some(r) = stack.pop() {
            nodes = nodes.checked_sub(1).ok_or_else(exceeded)?;
            let text = match r {
                Raw::Str(s) => s.len(),
                Raw::Seq(items) => {
                    stack.extend(items.iter());
                    0
                }
                Raw::Map(m) => {
                    let mut keys = 0;
                    for (k, v) in m.iter() {
                        keys += k.len();
                        stack.push(v);
                    }
                    keys
                }
                Raw::Tagged(tag, inner) => {
                    stack.push(inner);
                    tag.len()
                }
                Raw::Null | Raw::Bool(_) | Raw::Int(_) | Raw::Float(_) => 0,
            };
            bytes = bytes.checked_sub(text).ok_or_else(exceeded)?;
        }
        self.nodes.set(nodes);
        self.bytes.set(bytes);
        Ok(())
    }

    /// Takes `len` bytes of text (an input interpolated into a string, or a scalar read).
    /// `Err` as [`Budget::take_copy`].
    pub(crate) fn take_bytes(&self, len: usize) -> Result<(), String> {
        let left = self.bytes.get();
        if len > left {
            return Err(exceeded_message());
        }
        self.bytes.set(left - len);
        Ok(())
    }
}

fn exceeded_message() -> String {
    format!(
        "the configuration expands to more than {MAX_NODES} values or {} MiB of text",
        MAX_EXPANDED_BYTES / (1024 * 1024)
    )
}

#[derive(Clone, Copy)]
struct RawSeed<'a> {
    budget: &'a Budget,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for RawSeed<'_> {
    type Value = Raw;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }
}

impl RawSeed<'_> {
    fn child<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom(format!(
                "the document nests deeper than {MAX_DEPTH} levels"
            )));
        }
        Ok(RawSeed {
            budget: self.budget,
            depth: self.depth + 1,
        })
    }
}

/// A mapping key as the string GitLab would see.
fn key_string(k: Raw) -> String {
    match k {
        Raw::Null => String::new(),
        Raw::Str(s) => s,
        other => other
            .scalar_string()
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

impl<'de> Visitor<'de> for RawSeed<'_> {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(Raw::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(match i64::try_from(v) {
            Ok(i) => Raw::Int(i),
            Err(_) => Raw::Str(v.to_string()),
        })
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(Raw::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        self.budget.take()?;
        // Before `to_string`: an alias hands us its anchor's text again, borrowed from the
        // parser's events; copying it is the expansion the budget is about.
        self.budget.take_text(v.len())?;
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Raw, E> {
        self.budget.take()?;
        self.budget.take_text(v.len())?;
        Ok(Raw::Str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(Raw::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        self.budget.take()?;
        Ok(Raw::Null)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        self.budget.take()?;
        let child = self.child()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(Raw::Seq(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        self.budget.take()?;
        let child = self.child()?;
        let mut out = RawMap::new();
        while let Some(k) = map.next_key_seed(child)? {
            let v = map.next_value_seed(child)?;
            let key = key_string(k);
            if key == "<<" {
                merge_psych(&mut out, v);
            } else {
                out.insert(key, v);
            }
        }
        Ok(Raw::Map(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Raw, A::Error> {
        self.budget.take()?;
        let (tag, variant) = data.variant::<String>()?;
        let value = variant.newtype_variant_seed(self.child()?)?;
        Ok(Raw::Tagged(tag, Box::new(value)))
    }
}

/// Psych's merge key: a mapping is merged over what is there so far (`Hash#merge!`, so a `<<`
/// overrides keys above it and keys below it override the merge); a list of mappings is
/// merged with the earlier ones winning; anything else stays as a plain `<<` key.
fn merge_psych(out: &mut RawMap, value: Raw) {
    match value {
        Raw::Map(m) => {
            for (k, v) in m {
                out.insert(k, v);
            }
        }
        Raw::Seq(items) if items.iter().all(|i| matches!(i, Raw::Map(_))) => {
            let mut merged = RawMap::new();
            for item in items.into_iter().rev() {
                if let Raw::Map(m) = item {
                    for (k, v) in m {
                        merged.insert(k, v);
                    }
                }
            }
            for (k, v) in merged {
                out.insert(k, v);
            }
        }
        other => out.insert("<<".to_string(), other),
    }
}

/// Finds the 1-based line of a key path (`["build", "script"]`) in a YAML text, by indentation.
/// A best effort for messages: flow style and anchors can hide a key, then `None`.
pub(crate) fn find_line(text: &str, path: &[&str]) -> Option<usize> {
    let mut want = path.iter();
    let mut current = want.next()?;
    let mut min_indent: Option<usize> = None;
    for (no, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if let Some(min) = min_indent {
            if indent <= min {
                // Left the block of the previous key without finding the next.
                return None;
            }
        } else if indent != 0 {
            continue;
        }
        let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if key_matches(trimmed, current) {
            match want.next() {
                Some(next) => {
                    current = next;
                    min_indent = Some(indent);
                }
                None => return Some(no + 1),
            }
        }
    }
    None
}

fn key_matches(line: &str, key: &str) -> bool {
    for quote in ["", "\"", "'"] {
        if let Some(rest) = line.strip_prefix(quote) {
            if let Some(rest) = rest.strip_prefix(key) {
                if let Some(rest) = rest.strip_prefix(quote) {
                    if rest.starts_with(':') {
                        return true;
                    }
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Raw {
        let docs = parse_documents(text);
        assert!(docs.is_ok(), "{docs:?}");
        docs.unwrap_or_default()
            .into_iter()
            .next()
            .unwrap_or(Raw::Null)
    }

    fn map(raw: &Raw) -> &RawMap {
        raw.as_map().expect("test input is a mapping")
    }

    #[test]
    fn nested_merges_through_aliases_are_applied() {
        let raw = one(".a: &a {x: 1}\n.b: &b\n  <<: *a\n  y: 2\njob:\n  <<: *b\n  z: 3\n");
        let job = map(map(&raw).get("job").unwrap_or(&Raw::Null));
        assert_eq!(job.get("x"), Some(&Raw::Int(1)));
        assert_eq!(job.get("y"), Some(&Raw::Int(2)));
        assert_eq!(job.get("z"), Some(&Raw::Int(3)));
        assert!(job.get("<<").is_none());
    }

    #[test]
    fn merge_follows_psych_order() {
        // A `<<` overrides keys above it; keys below it override the merge.
        let raw = one(".a: &a {k: from_a, j: from_a}\njob:\n  k: mine\n  <<: *a\n  j: mine\n");
        let job = map(map(&raw).get("job").unwrap_or(&Raw::Null));
        assert_eq!(job.get("k"), Some(&Raw::Str("from_a".into())));
        assert_eq!(job.get("j"), Some(&Raw::Str("mine".into())));
        // In a list, earlier mappings win.
        let raw = one(".a: &a {k: a}\n.b: &b {k: b, m: b}\njob:\n  <<: [*a, *b]\n");
        let job = map(map(&raw).get("job").unwrap_or(&Raw::Null));
        assert_eq!(job.get("k"), Some(&Raw::Str("a".into())));
        assert_eq!(job.get("m"), Some(&Raw::Str("b".into())));
    }

    #[test]
    fn duplicate_keys_last_wins_first_position() {
        let raw = one("a: 1\nb: 2\na: 3\n");
        let m = map(&raw);
        assert_eq!(m.keys().cloned().collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(m.get("a"), Some(&Raw::Int(3)));
    }

    #[test]
    fn reference_tag_is_kept() {
        let raw = one("job:\n  script: !reference [.a, script]\n");
        let job = map(map(&raw).get("job").unwrap_or(&Raw::Null));
        match job.get("script") {
            Some(Raw::Tagged(tag, inner)) => {
                assert_eq!(tag, "reference");
                assert_eq!(
                    **inner,
                    Raw::Seq(vec![Raw::Str(".a".into()), Raw::Str("script".into())])
                );
            }
            other => panic!("expected a tagged value, got {other:?}"),
        }
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse_documents("a: 1\nb: c: d\n").err();
        let err = err.expect("invalid YAML must fail");
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("mapping values"), "{}", err.message);
        assert!(!err.message.contains(" at line "));
    }

    #[test]
    fn billion_laughs_is_refused_fast() {
        let mut text = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            let list = vec![prev; 9].join(",");
            text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
        }
        let start = std::time::Instant::now();
        assert!(parse_documents(&text).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(150), "]".repeat(150));
        assert!(parse_documents(&text).is_err());
    }

    #[test]
    fn floats_print_like_ruby() {
        assert_eq!(ruby_float(1.1), "1.1");
        assert_eq!(ruby_float(3.0), "3.0");
        assert_eq!(ruby_float(1e20), "1.0e+20");
    }

    #[test]
    fn deep_merge_merges_hashes_and_replaces_arrays() {
        let mut a = map(&one("v: {x: 1, y: 2}\ns: [a]\nk: 1\n")).clone();
        let b = map(&one("v: {y: 3, z: 4}\ns: [b]\n")).clone();
        a.deep_merge(b);
        let v = a
            .get("v")
            .and_then(Raw::as_map)
            .cloned()
            .unwrap_or_default();
        assert_eq!(v.keys().cloned().collect::<Vec<_>>(), vec!["x", "y", "z"]);
        assert_eq!(v.get("y"), Some(&Raw::Int(3)));
        assert_eq!(a.get("s"), Some(&Raw::Seq(vec![Raw::Str("b".into())])));
        assert_eq!(a.get("k"), Some(&Raw::Int(1)));
    }

    #[test]
    fn find_line_follows_indentation() {
        let text = "# c\nbuild:\n  stage: b\n  script:\n    - x\ntest:\n  script: y\n";
        assert_eq!(find_line(text, &["build"]), Some(2));
        assert_eq!(find_line(text, &["build", "script"]), Some(4));
        assert_eq!(find_line(text, &["test", "script"]), Some(7));
        assert_eq!(find_line(text, &["nope"]), None);
    }
}

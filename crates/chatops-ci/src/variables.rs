//! [`Variables`]: an ordered set of CI/CD variables, and `$VAR` / `${VAR}` expansion as GitLab
//! does it inside variable values.

use std::collections::HashMap;

/// Ordered `name -> value` pairs. Inserting an existing name replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    entries: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Variables {
    /// An empty set.
    pub fn new() -> Self {
        Variables::default()
    }

    /// Sets `name` to `value`; an existing name keeps its position.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.index.get(&name) {
            Some(&i) => {
                if let Some(slot) = self.entries.get_mut(i) {
                    slot.1 = value;
                }
            }
            None => {
                self.index.insert(name.clone(), self.entries.len());
                self.entries.push((name, value));
            }
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.index
            .get(name)
            .and_then(|&i| self.entries.get(i))
            .map(|(_, v)| v.as_str())
    }

    /// Whether `name` is set (possibly to an empty value).
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The pairs, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Expands `$NAME`, `${NAME}` and `%NAME%` references to variables of this set; references
    /// to unknown names are left as written (GitLab's `expand_existing`: the runner expands
    /// them later, with the job's full environment), and `$$` stays `$$`.
    pub fn expand(&self, text: &str) -> String {
        expand_with(text, &|name| self.get(name).map(str::to_string))
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Variables {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut vars = Variables::new();
        vars.extend(iter);
        vars
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Variables {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The references (`$A`, `${A}`, `%A%`) in `text`, in order.
pub(crate) fn references(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    scan(text, &mut |name| {
        out.push(name.to_string());
        None
    });
    out
}

/// Expands references with `lookup`; unknown names are kept as written.
pub(crate) fn expand_with(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    scan(text, &mut |name| lookup(name))
}

/// Walks `text`, calling `f` for each reference and replacing it when `f` answers.
fn scan(text: &str, f: &mut dyn FnMut(&str) -> Option<String>) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b == b'$' {
            let next = bytes.get(i + 1).copied();
            if next == Some(b'$') {
                i += 2;
                continue;
            }
            if next == Some(b'{') {
                let start = i + 2;
                let mut j = start;
                while bytes.get(j).is_some_and(|c| is_name_char(*c)) {
                    j += 1;
                }
                if j > start
                    && bytes.get(j) == Some(&b'}')
                    && bytes.get(start).is_some_and(|c| is_name_start(*c))
                {
                    let name = text.get(start..j).unwrap_or("");
                    if let Some(v) = f(name) {
                        out.push_str(text.get(copied..i).unwrap_or(""));
                        out.push_str(&v);
                        copied = j + 1;
                    }
                    i = j + 1;
                    continue;
                }
            } else if next.is_some_and(is_name_start) {
                let start = i + 1;
                let mut j = start;
                while bytes.get(j).is_some_and(|c| is_name_char(*c)) {
                    j += 1;
                }
                let name = text.get(start..j).unwrap_or("");
                if let Some(v) = f(name) {
                    out.push_str(text.get(copied..i).unwrap_or(""));
                    out.push_str(&v);
                    copied = j;
                }
                i = j;
                continue;
            }
        } else if b == b'%' && bytes.get(i + 1).is_some_and(|c| is_name_start(*c)) {
            let start = i + 1;
            let mut j = start;
            while bytes.get(j).is_some_and(|c| is_name_char(*c)) {
                j += 1;
            }
            if bytes.get(j) == Some(&b'%') {
                let name = text.get(start..j).unwrap_or("");
                if let Some(v) = f(name) {
                    out.push_str(text.get(copied..i).unwrap_or(""));
                    out.push_str(&v);
                    copied = j + 1;
                }
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(text.get(copied..).unwrap_or(""));
    out
}

/// One variable as the CI file defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VarDef {
    pub name: String,
    pub value: String,
    /// `expand: false` keeps the value raw.
    pub expand: bool,
}

/// Expands a list of file variables (later definitions of a name replace earlier ones) against
/// each other and `overrides` (project and predefined variables, which win over the file),
/// in dependency order as GitLab's `sort_and_expand_all`. Returns the effective pairs in the
/// order names first appear, or an error naming a circular reference.
pub(crate) fn expand_all(
    defs: &[VarDef],
    overrides: &Variables,
) -> Result<Vec<(String, String)>, String> {
    // Last definition wins, first position kept.
    let mut order: Vec<&str> = Vec::new();
    let mut by_name: HashMap<&str, &VarDef> = HashMap::new();
    for d in defs {
        if by_name.insert(d.name.as_str(), d).is_none() {
            order.push(d.name.as_str());
        }
    }
    let mut done: HashMap<String, String> = HashMap::new();
    let mut out = Vec::with_capacity(order.len());
    for name in order {
        let value = resolve(name, &by_name, overrides, &mut done, &mut Vec::new())?;
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn resolve(
    name: &str,
    defs: &HashMap<&str, &VarDef>,
    overrides: &Variables,
    done: &mut HashMap<String, String>,
    stack: &mut Vec<String>,
) -> Result<String, String> {
    if let Some(v) = overrides.get(name) {
        return Ok(v.to_string());
    }
    if let Some(v) = done.get(name) {
        return Ok(v.clone());
    }
    let Some(def) = defs.get(name) else {
        return Err(format!("{name} is not defined"));
    };
    if !def.expand {
        done.insert(name.to_string(), def.value.clone());
        return Ok(def.value.clone());
    }
    if stack.iter().any(|s| s == name) {
        stack.push(name.to_string());
        return Err(format!(
            "circular variable reference detected: {}",
            stack.join(", ")
        ));
    }
    stack.push(name.to_string());
    let mut values: HashMap<String, String> = HashMap::new();
    for r in references(&def.value) {
        if r == name {
            // `PATH: $PATH:/x` refers to the outer value, which the file does not know.
            continue;
        }
        if overrides.contains(&r) || defs.contains_key(r.as_str()) {
            let v = resolve(&r, defs, overrides, done, stack)?;
            values.insert(r, v);
        }
    }
    stack.pop();
    let expanded = expand_with(&def.value, &|n| values.get(n).cloned());
    done.insert(name.to_string(), expanded.clone());
    Ok(expanded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(name: &str, value: &str) -> VarDef {
        VarDef {
            name: name.into(),
            value: value.into(),
            expand: true,
        }
    }

    #[test]
    fn insert_get_keeps_order() {
        let mut v: Variables = [("A", "1"), ("B", "2")].into_iter().collect();
        v.insert("A", "3");
        assert_eq!(v.get("A"), Some("3"));
        assert_eq!(v.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec!["A", "B"]);
        assert_eq!(v.len(), 2);
        assert!(v.contains("B"));
        assert!(!v.contains("C"));
    }

    #[test]
    fn expand_known_keeps_unknown() {
        let v: Variables = [("HOST", "example.com"), ("P", "8080")]
            .into_iter()
            .collect();
        assert_eq!(
            v.expand("https://$HOST:${P}/x?$CHAT_INPUT %P% $$HOST"),
            "https://example.com:8080/x?$CHAT_INPUT 8080 $$HOST"
        );
        assert_eq!(v.expand("${HOST"), "${HOST");
        assert_eq!(v.expand("100% $"), "100% $");
    }

    #[test]
    fn references_are_listed() {
        assert_eq!(references("$A ${B} %C% $$D $"), vec!["A", "B", "C"]);
    }

    #[test]
    fn expand_all_resolves_in_dependency_order() {
        let defs = vec![
            def("URL", "$HOST/$PATHX"),
            def("HOST", "h"),
            def("PATHX", "p"),
        ];
        let out = expand_all(&defs, &Variables::new());
        assert_eq!(
            out,
            Ok(vec![
                ("URL".into(), "h/p".into()),
                ("HOST".into(), "h".into()),
                ("PATHX".into(), "p".into())
            ])
        );
    }

    #[test]
    fn overrides_win_and_feed_expansion() {
        let defs = vec![def("HOST", "file"), def("URL", "$HOST/x")];
        let over: Variables = [("HOST", "project")].into_iter().collect();
        let out = expand_all(&defs, &over).unwrap_or_default();
        assert_eq!(out[0], ("HOST".into(), "project".into()));
        assert_eq!(out[1], ("URL".into(), "project/x".into()));
    }

    #[test]
    fn raw_values_are_not_expanded() {
        let defs = vec![
            def("A", "a"),
            VarDef {
                name: "B".into(),
                value: "$A".into(),
                expand: false,
            },
        ];
        let out = expand_all(&defs, &Variables::new()).unwrap_or_default();
        assert_eq!(out[1].1, "$A");
    }

    #[test]
    fn cycles_are_reported() {
        let defs = vec![def("A", "$B"), def("B", "$A")];
        let err = expand_all(&defs, &Variables::new())
            .err()
            .unwrap_or_default();
        assert!(err.contains("circular"), "{err}");
    }

    #[test]
    fn self_reference_is_left_for_the_runner() {
        let defs = vec![def("PATH", "$PATH:/opt/bin")];
        let out = expand_all(&defs, &Variables::new()).unwrap_or_default();
        assert_eq!(out[0].1, "$PATH:/opt/bin");
    }
}

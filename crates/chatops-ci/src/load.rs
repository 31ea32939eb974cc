//! Reading files into one raw tree: the `spec:` header and its inputs, and `include:`.
//!
//! GitLab's order (`Gitlab::Ci::Config::External::Processor`): each file's includes are read
//! (recursively) and deep-merged in order, then the file's own content is deep-merged over
//! them; so jobs from includes come first, and the including file wins on conflicts.

use std::collections::{HashMap, HashSet};

use regex::Regex;

use crate::glob::include_glob_matches;
use crate::job::KeyPath;
use crate::rules::{first_match, parse_rules, EvalCtx, RuleKind, RulesOutcome};
use crate::variables::expand_with;
use crate::yaml::{find_line, parse_documents_within, Budget, Raw, RawMap};
use crate::{CiError, Source, Variables};

/// Most files one configuration may include (GitLab's default limit).
const MAX_INCLUDES: usize = 150;
/// Deepest include nesting.
const MAX_INCLUDE_DEPTH: usize = 100;

/// One file read, kept for line lookups.
#[derive(Debug, Clone)]
pub(crate) struct FileText {
    pub path: String,
    pub text: String,
}

/// The merged raw tree and what was learned reading it.
pub(crate) struct Loaded {
    pub root: RawMap,
    pub files: Vec<FileText>,
    /// Which file (index into `files`) last defined each top-level key.
    pub origins: HashMap<String, usize>,
    pub warnings: Vec<String>,
    /// Includes chatops cannot read, described ("include: remote https://...").
    pub unsupported: Vec<String>,
    /// Jobs that cannot run, with why (filled by later resolution steps).
    pub broken: HashMap<String, String>,
    /// The repository's file list, when something needed it.
    pub listing: Option<Vec<String>>,
    /// Top-level keys in reading order: a file's own keys, then its includes' (recursively),
    /// first occurrence kept. Values merge as GitLab does (includes first, the including file
    /// over them); this is only the order jobs are listed in.
    pub order: Vec<String>,
    /// Jobs of local includes that `include: rules` left out of a chat pipeline, with why:
    /// listed so a user asking for one learns why it cannot run.
    pub placeholders: HashMap<String, String>,
    /// What is left of the expansion budget: later steps that copy values draw on it.
    pub budget: Budget,
}

/// One local file an `include:` names.
struct Target {
    path: String,
    inputs: Option<RawMap>,
    /// Set when `include: rules` exclude it: the reason.
    excluded: Option<String>,
}

struct Loader<'a> {
    source: &'a dyn Source,
    vars: &'a Variables,
    files: Vec<FileText>,
    origins: HashMap<String, usize>,
    warnings: Vec<String>,
    unsupported: Vec<String>,
    listing: Option<Vec<String>>,
    seen: HashSet<String>,
    included: usize,
    budget: Budget,
    order: Vec<String>,
    ordered: HashSet<String>,
    placeholders: HashMap<String, String>,
}

/// Reads `ci_file` (whose text is `text`) and everything it includes.
pub(crate) fn load_tree(
    source: &dyn Source,
    ci_file: &str,
    text: &str,
    vars: &Variables,
) -> Result<Loaded, CiError> {
    let mut loader = Loader {
        source,
        vars,
        files: Vec::new(),
        origins: HashMap::new(),
        warnings: Vec::new(),
        unsupported: Vec::new(),
        listing: None,
        seen: HashSet::new(),
        included: 0,
        budget: Budget::new(),
        order: Vec::new(),
        ordered: HashSet::new(),
        placeholders: HashMap::new(),
    };
    loader
        .seen
        .insert(seen_key(ci_file.trim_start_matches('/'), None));
    let root = loader.load_file(ci_file, text.to_string(), None, 0)?;
    Ok(Loaded {
        root,
        files: loader.files,
        origins: loader.origins,
        warnings: loader.warnings,
        unsupported: loader.unsupported,
        broken: HashMap::new(),
        listing: loader.listing,
        order: loader.order,
        placeholders: loader.placeholders,
        budget: loader.budget,
    })
}

/// A repository-relative path as sources expect it: no leading `/` or `./`.
fn normalize_path(path: &str) -> String {
    let mut p = path.trim();
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            return p.to_string();
        }
    }
}

fn seen_key(path: &str, inputs: Option<&RawMap>) -> String {
    format!("{path}\u{0}{inputs:?}")
}

fn yaml_error(file: &str, e: crate::yaml::YamlError) -> CiError {
    CiError::Yaml {
        file: file.to_string(),
        line: e.line,
        message: e.message,
    }
}

impl Loader<'_> {
    fn list(&mut self) -> Result<&[String], CiError> {
        if self.listing.is_none() {
            let files = self.source.list().map_err(|e| CiError::Read {
                file: "(the repository's file list)".into(),
                reason: e.to_string(),
            })?;
            self.listing = Some(files);
        }
        Ok(self.listing.as_deref().unwrap_or(&[]))
    }

    fn load_file(
        &mut self,
        path: &str,
        text: String,
        inputs: Option<RawMap>,
        depth: usize,
    ) -> Result<RawMap, CiError> {
        let docs = parse_documents_within(&text, &self.budget).map_err(|e| yaml_error(path, e))?;
        let index = self.files.len();
        self.files.push(FileText {
            path: path.to_string(),
            text: text.clone(),
        });
        let text = text.as_str();
        let invalid = |line: Option<usize>, msg: String| CiError::invalid(path, line, msg);

        // Documents: the configuration, or a `spec:` header then the configuration.
        let mut docs: Vec<Raw> = docs;
        while docs.len() > 1 && matches!(docs.last(), Some(Raw::Null)) {
            docs.pop();
        }
        let (header, content) = match docs.len() {
            0 => (None, Raw::Null),
            1 => {
                let only = docs.pop().unwrap_or(Raw::Null);
                let is_header = only
                    .as_map()
                    .is_some_and(|m| m.len() == 1 && m.contains_key("spec"));
                if is_header {
                    (Some(only), Raw::Map(RawMap::new()))
                } else {
                    (None, only)
                }
            }
            2 => {
                let content = docs.pop().unwrap_or(Raw::Null);
                let first = docs.pop().unwrap_or(Raw::Null);
                let is_header = first
                    .as_map()
                    .is_some_and(|m| m.len() == 1 && m.contains_key("spec"));
                if !is_header {
                    return Err(invalid(
                        None,
                        "the file holds two YAML documents but the first is not a `spec:` header; \
                         keep one document, or put only `spec:` before `---`"
                            .into(),
                    ));
                }
                (Some(first), content)
            }
            n => {
                return Err(invalid(
                    None,
                    format!(
                        "the file holds {n} YAML documents; a CI file is one document, optionally \
                         after a `spec:` header document"
                    ),
                ))
            }
        };

        let content = match header {
            Some(h) => {
                let values = input_values(&h, inputs.as_ref())
                    .map_err(|m| invalid(find_line(text, &["spec"]), m))?;
                interpolate(content, &values, self.vars, &self.budget)
                    .map_err(|m| invalid(None, m))?
            }
            None => {
                if inputs.as_ref().is_some_and(|i| !i.is_empty()) {
                    return Err(invalid(
                        None,
                        "Given inputs not defined in the `spec` section of the included configuration file"
                            .into(),
                    ));
                }
                content
            }
        };

        let mut content = match content {
            Raw::Map(m) => m,
            Raw::Null if depth > 0 => RawMap::new(),
            Raw::Null => {
                return Err(invalid(
                    None,
                    "the file is empty; define at least one job".into(),
                ))
            }
            other => {
                return Err(invalid(
                    Some(1),
                    format!(
                        "Invalid configuration format: the top level should be a hash of jobs and keywords, not {}",
                        other.kind()
                    ),
                ))
            }
        };

        let include = content.remove("include");
        for key in content.keys() {
            self.note_order(key);
        }
        let mut merged = RawMap::new();
        if let Some(include) = include {
            let line = find_line(text, &["include"]);
            let targets = self.include_targets(&include, path, line)?;
            for target in targets {
                if let Some(reason) = target.excluded {
                    self.note_placeholders(&target.path, &reason);
                    continue;
                }
                let key = seen_key(&target.path, target.inputs.as_ref());
                if !self.seen.insert(key) {
                    continue;
                }
                self.included += 1;
                if self.included > MAX_INCLUDES {
                    return Err(invalid(
                        line,
                        format!("Maximum of {MAX_INCLUDES} nested includes are allowed!"),
                    ));
                }
                if depth + 1 > MAX_INCLUDE_DEPTH {
                    return Err(invalid(
                        line,
                        format!(
                            "Maximum of {MAX_INCLUDE_DEPTH} levels of nested includes are allowed!"
                        ),
                    ));
                }
                let text = match self.source.read(&target.path) {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        // GitLab refuses the whole file here; chatops runs the jobs that do
                        // not need it and says which file is missing.
                        self.unsupported(format!(
                            "include: local file `{}` (included from {path}) does not exist",
                            target.path
                        ));
                        continue;
                    }
                    Err(e) => {
                        return Err(CiError::Read {
                            file: target.path,
                            reason: e.to_string(),
                        })
                    }
                };
                let included = self.load_file(&target.path, text, target.inputs, depth + 1)?;
                merged.deep_merge(included);
            }
        }
        for key in content.keys() {
            self.origins.insert(key.clone(), index);
        }
        merged.deep_merge(content);
        Ok(merged)
    }

    /// The local files an `include:` names, in order, with their inputs; other include kinds
    /// are recorded as unsupported.
    fn include_targets(
        &mut self,
        include: &Raw,
        from: &str,
        line: Option<usize>,
    ) -> Result<Vec<Target>, CiError> {
        let items: Vec<Raw> = match include {
            Raw::Seq(items) => {
                let mut flat = Vec::new();
                for i in items {
                    match i {
                        Raw::Seq(inner) => flat.extend(inner.iter().cloned()),
                        other => flat.push(other.clone()),
                    }
                }
                flat
            }
            Raw::Null => Vec::new(),
            other => vec![other.clone()],
        };
        let invalid = |msg: String| CiError::invalid(from, line, msg);
        let mut out = Vec::new();
        for item in items {
            let mut excluded = None;
            let (location, inputs) = match &item {
                Raw::Str(s) => {
                    if s.contains("://") {
                        self.unsupported(format!("include: remote is not supported: {s}"));
                        continue;
                    }
                    (s.clone(), None)
                }
                Raw::Map(m) => {
                    if let Some(rules) = m.get("rules") {
                        let rules =
                            parse_rules(rules, &KeyPath::root("include:rules"), RuleKind::Include)
                                .map_err(invalid)?;
                        let needs = crate::rules::needs_files(&rules);
                        let files = if needs {
                            Some(self.list()?.to_vec())
                        } else {
                            None
                        };
                        let vars = self.vars;
                        let lookup = |n: &str| -> Option<String> {
                            vars.get(n)
                                .map(str::to_string)
                                .or_else(|| (n == "CI_PIPELINE_SOURCE").then(|| "chat".to_string()))
                        };
                        let ctx = EvalCtx {
                            lookup: &lookup,
                            files: files.as_deref(),
                        };
                        match first_match(&rules, &ctx) {
                            RulesOutcome::Matched(r) if r.when.as_deref() != Some("never") => {}
                            RulesOutcome::Matched(_) | RulesOutcome::NoMatch => {
                                let what = m
                                    .get("local")
                                    .and_then(Raw::scalar_string)
                                    .unwrap_or_else(|| "an include".into());
                                excluded = Some(format!(
                                    "include: rules exclude {what} from chat pipelines"
                                ));
                            }
                            RulesOutcome::Error(e) => return Err(invalid(format!("include: {e}"))),
                        }
                    }
                    if excluded.is_some() && !m.contains_key("local") {
                        continue;
                    }
                    let inputs = match m.get("inputs").or_else(|| m.get("with")) {
                        None | Some(Raw::Null) => None,
                        Some(Raw::Map(i)) => Some(i.clone()),
                        Some(_) => return Err(invalid("include:inputs should be a hash".into())),
                    };
                    if let Some(local) = m.get("local") {
                        let Some(local) = local.as_str() else {
                            return Err(invalid("include:local should be a string".into()));
                        };
                        (local.to_string(), inputs)
                    } else if let Some(remote) = m.get("remote") {
                        let what = remote.scalar_string().unwrap_or_default();
                        self.unsupported(format!("include: remote is not supported: {what}"));
                        continue;
                    } else if let Some(t) = m.get("template") {
                        let what = t.scalar_string().unwrap_or_default();
                        self.unsupported(format!("include: template is not supported: {what}"));
                        continue;
                    } else if let Some(p) = m.get("project") {
                        let what = p.scalar_string().unwrap_or_default();
                        let files = m
                            .get("file")
                            .and_then(crate::rules::string_list)
                            .map(|f| f.join(", "))
                            .unwrap_or_default();
                        self.unsupported(format!(
                            "include: project is not supported: {what} ({files})"
                        ));
                        continue;
                    } else if let Some(c) = m.get("component") {
                        let what = c.scalar_string().unwrap_or_default();
                        self.unsupported(format!("include: component is not supported: {what}"));
                        continue;
                    } else if let Some(a) = m.get("artifact") {
                        let what = a.scalar_string().unwrap_or_default();
                        self.unsupported(format!("include: artifact is not supported: {what}"));
                        continue;
                    } else {
                        return Err(invalid(format!(
                            "include config should contain one of local, remote, template, project, component; found {:?}",
                            m.keys().collect::<Vec<_>>()
                        )));
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "include config should be a string, a hash or an array, not {}",
                        other.kind()
                    )))
                }
            };
            let vars = self.vars;
            let location = expand_with(&location, &|n| vars.get(n).map(str::to_string));
            let location = normalize_path(&location);
            if location.contains('*') {
                let matched: Vec<String> = self
                    .list()?
                    .iter()
                    .filter(|f| include_glob_matches(&location, f))
                    .cloned()
                    .collect();
                if matched.is_empty() {
                    self.warnings
                        .push(format!("include: local {location:?} matches no file"));
                }
                for m in matched {
                    out.push(Target {
                        path: m,
                        inputs: inputs.clone(),
                        excluded: excluded.clone(),
                    });
                }
            } else {
                out.push(Target {
                    path: location,
                    inputs,
                    excluded,
                });
            }
        }
        Ok(out)
    }

    fn note_order(&mut self, key: &str) {
        if self.ordered.insert(key.to_string()) {
            self.order.push(key.to_string());
        }
    }

    /// Lists the visible jobs of an include that rules left out, so that asking for one says
    /// why it cannot run. Its content is not merged (GitLab does not read it either).
    fn note_placeholders(&mut self, path: &str, reason: &str) {
        let Ok(Some(text)) = self.source.read(path) else {
            return;
        };
        let Ok(docs) = parse_documents_within(&text, &self.budget) else {
            return;
        };
        let Some(Raw::Map(content)) = docs.into_iter().last() else {
            return;
        };
        for key in content.keys() {
            if key.starts_with('.') || crate::config::RESERVED.contains(&key.as_str()) {
                continue;
            }
            if !self.ordered.contains(key) {
                self.placeholders.insert(key.clone(), reason.to_string());
            }
            self.note_order(key);
        }
    }

    fn unsupported(&mut self, what: String) {
        if !self.unsupported.contains(&what) {
            self.warnings.push(what.clone());
            self.unsupported.push(what);
        }
    }
}

/// The values of a file's inputs: given ones checked against the `spec:`, defaults for the rest.
fn input_values(header: &Raw, given: Option<&RawMap>) -> Result<HashMap<String, Raw>, String> {
    let spec = header.as_map().and_then(|m| m.get("spec"));
    let inputs = match spec {
        Some(Raw::Map(s)) => match s.get("inputs") {
            None | Some(Raw::Null) => RawMap::new(),
            Some(Raw::Map(i)) => i.clone(),
            Some(_) => return Err("spec:inputs should be a hash".into()),
        },
        None | Some(Raw::Null) => RawMap::new(),
        Some(_) => return Err("spec should be a hash".into()),
    };
    let empty = RawMap::new();
    let given = given.unwrap_or(&empty);
    let unknown: Vec<&str> = given
        .keys()
        .filter(|k| !inputs.contains_key(k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!("unknown input arguments: {}", unknown.join(", ")));
    }
    let mut out = HashMap::new();
    for (name, def) in inputs.iter() {
        let def = def.as_map();
        let value = match given
            .get(name)
            .or_else(|| def.and_then(|d| d.get("default")))
        {
            Some(v) => v.clone(),
            None => {
                return Err(format!(
                    "`{name}` input: required value has not been provided"
                ))
            }
        };
        let ty = def
            .and_then(|d| d.get("type"))
            .and_then(Raw::as_str)
            .unwrap_or("string");
        let ok = match ty {
            "string" => matches!(value, Raw::Str(_)),
            "number" => matches!(value, Raw::Int(_) | Raw::Float(_)),
            "boolean" => matches!(value, Raw::Bool(_)),
            "array" => matches!(value, Raw::Seq(_)),
            other => return Err(format!("`{name}` input: unknown input type `{other}`")),
        };
        if !ok {
            return Err(format!("`{name}` input: provided value is not a {ty}"));
        }
        if let Some(Raw::Seq(options)) = def.and_then(|d| d.get("options")) {
            if !options.contains(&value) {
                let shown = value.scalar_string().unwrap_or_default();
                return Err(format!(
                    "`{name}` input: `{shown}` cannot be used because it is not in the list of allowed options"
                ));
            }
        }
        if let (Some(Raw::Str(re)), Raw::Str(v)) = (def.and_then(|d| d.get("regex")), &value) {
            let compiled = crate::expr::compile_ruby_regex(&format!("/{re}/"))
                .ok_or_else(|| format!("`{name}` input: invalid regular expression"))?;
            if !compiled.is_match(v) {
                return Err(format!(
                    "`{name}` input: provided value does not match required RegEx pattern"
                ));
            }
        }
        out.insert(name.clone(), value);
    }
    Ok(out)
}

fn block_regex() -> &'static Regex {
    static RE: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        #[allow(clippy::unwrap_used)] // a fixed, tested pattern
        Regex::new(r"\$\[\[\s*(.*?)\s*\]\]").unwrap()
    })
}

/// Replaces `$[[ inputs.x ]]` (with optional `| expand_vars`, `| truncate(a,b)`,
/// `| posix_escape`) in every key and string; a string that is exactly one block takes the
/// input's type.
///
/// Every input value copied in is taken from `budget` first: 10,000 uses of a 1 MiB input
/// would otherwise be 10 GB.
fn interpolate(
    raw: Raw,
    inputs: &HashMap<String, Raw>,
    vars: &Variables,
    budget: &Budget,
) -> Result<Raw, String> {
    Ok(match raw {
        Raw::Str(s) => interpolate_str(&s, inputs, vars, budget)?,
        Raw::Seq(items) => Raw::Seq(
            items
                .into_iter()
                .map(|i| interpolate(i, inputs, vars, budget))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(m) => {
            let mut out = RawMap::new();
            for (k, v) in m {
                let key = match interpolate_str(&k, inputs, vars, budget)? {
                    Raw::Str(s) => s,
                    other => other.scalar_string().unwrap_or(k),
                };
                out.insert(key, interpolate(v, inputs, vars, budget)?);
            }
            Raw::Map(out)
        }
        Raw::Tagged(t, v) => Raw::Tagged(t, Box::new(interpolate(*v, inputs, vars, budget)?)),
        other => other,
    })
}

fn interpolate_str(
    s: &str,
    inputs: &HashMap<String, Raw>,
    vars: &Variables,
    budget: &Budget,
) -> Result<Raw, String> {
    if !s.contains("$[[") {
        return Ok(Raw::Str(s.to_string()));
    }
    let re = block_regex();
    // A whole-string block keeps the input's type (a number stays a number).
    if let Some(m) = re.find(s) {
        if m.start() == 0 && m.end() == s.len() {
            let inner = re
                .captures(s)
                .and_then(|c| c.get(1))
                .map(|g| g.as_str())
                .unwrap_or("");
            return block_value(inner, inputs, vars, budget);
        }
    }
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let (Some(whole), Some(inner)) = (caps.get(0), caps.get(1)) else {
            continue;
        };
        out.push_str(s.get(last..whole.start()).unwrap_or(""));
        let value = block_value(inner.as_str(), inputs, vars, budget)?;
        match value {
            Raw::Seq(_) | Raw::Map(_) => {
                return Err(format!(
                    "interpolation of an array or hash inside a string is not allowed: {}",
                    whole.as_str()
                ))
            }
            other => out.push_str(&other.scalar_string().unwrap_or_default()),
        }
        last = whole.end();
    }
    out.push_str(s.get(last..).unwrap_or(""));
    Ok(Raw::Str(out))
}

fn block_value(
    inner: &str,
    inputs: &HashMap<String, Raw>,
    vars: &Variables,
    budget: &Budget,
) -> Result<Raw, String> {
    let mut parts = inner.split('|').map(str::trim);
    let access = parts.next().unwrap_or("");
    let Some(name) = access.strip_prefix("inputs.") else {
        return Err(format!("unknown interpolation key: `{access}`"));
    };
    let value = inputs
        .get(name)
        .ok_or_else(|| format!("unknown interpolation key: `{name}`"))?;
    budget
        .take_copy(value)
        .map_err(|e| format!("$[[ inputs.{name} ]]: copying the inputs: {e}"))?;
    let mut value = value.clone();
    for f in parts {
        let text = value.scalar_string().unwrap_or_default();
        value = if f == "expand_vars" {
            Raw::Str(expand_with(&text, &|n| vars.get(n).map(str::to_string)))
        } else if f == "posix_escape" {
            Raw::Str(posix_escape(&text))
        } else if let Some(args) = f
            .strip_prefix("truncate(")
            .and_then(|a| a.strip_suffix(')'))
        {
            let nums: Vec<usize> = args
                .split(',')
                .map(|n| n.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| format!("invalid function arguments: {f}"))?;
            let (offset, len) = match nums.as_slice() {
                [o, l] => (*o, *l),
                _ => return Err(format!("invalid function arguments: {f}")),
            };
            Raw::Str(text.chars().skip(offset).take(len).collect())
        } else {
            return Err(format!("no function matching `{f}`: check that the function name, arguments, and types are correct"));
        };
    }
    Ok(value)
}

/// Escapes a string for a POSIX shell, as Ruby's `Shellwords.escape`.
fn posix_escape(s: &str) -> String {
    if s.is_empty() {
        return "''".into();
    }
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || "_-.,:+/@".contains(c) {
            out.push(c);
        } else if c == '\n' {
            out.push_str("'\n'");
        } else {
            out.push('\\');
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(pairs: &[(&str, Raw)]) -> HashMap<String, Raw> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn interpolation_keeps_types_and_formats_strings() {
        let i = inputs(&[("n", Raw::Int(3)), ("env", Raw::Str("prod".into()))]);
        let v = Variables::new();
        let budget = Budget::new();
        assert_eq!(
            interpolate_str("$[[ inputs.n ]]", &i, &v, &budget),
            Ok(Raw::Int(3))
        );
        assert_eq!(
            interpolate_str("deploy-$[[ inputs.env ]]-$[[inputs.n]]", &i, &v, &budget),
            Ok(Raw::Str("deploy-prod-3".into()))
        );
        assert_eq!(
            interpolate_str("$[[ inputs.env | truncate(1,2) ]]", &i, &v, &budget),
            Ok(Raw::Str("ro".into()))
        );
        assert!(interpolate_str("$[[ inputs.nope ]]", &i, &v, &budget).is_err());
        assert!(interpolate_str("$[[ inputs.env | shout ]]", &i, &v, &budget).is_err());
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(normalize_path("/ci/a.yml"), "ci/a.yml");
        assert_eq!(normalize_path("./ci/a.yml"), "ci/a.yml");
        assert_eq!(normalize_path(".//ci/a.yml"), "ci/a.yml");
        assert_eq!(normalize_path("ci/./a.yml"), "ci/./a.yml");
    }

    #[test]
    fn posix_escape_like_shellwords() {
        assert_eq!(posix_escape("a b"), "a\\ b");
        assert_eq!(posix_escape("it's"), "it\\'s");
        assert_eq!(posix_escape(""), "''");
    }
}

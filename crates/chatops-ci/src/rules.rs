//! `rules:` (job, workflow and include rules) and `only`/`except` policies: their typed form
//! and how a chat pipeline evaluates them.

use std::time::Duration;

use crate::expr::{compile_ruby_regex, Expr};
use crate::glob::fnmatch;
use crate::job::{parse_variables, KeyPath};
use crate::variables::{expand_with, VarDef};
use crate::yaml::{Raw, RawMap};
use crate::{parse_duration, When};

/// One `rules:` entry.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// `if:` as written and parsed (a parse error is kept: it excludes the job, not the file).
    pub cond_if: Option<(String, Result<Expr, String>)>,
    /// `exists:` globs.
    pub exists: Option<Vec<String>>,
    /// `when:` of the rule (`None`: the job's own).
    pub when: Option<String>,
    pub allow_failure: Option<bool>,
    pub variables: Vec<VarDef>,
    pub start_in: Option<Duration>,
}

/// What a matched rule list answered.
pub(crate) enum RulesOutcome<'a> {
    Matched(&'a Rule),
    NoMatch,
    /// An `if:` that does not parse: the expression and the parser's message.
    Error(String),
}

/// Context for evaluating conditions: variable lookup and the repository's files.
pub(crate) struct EvalCtx<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub files: Option<&'a [String]>,
}

impl Rule {
    fn matches(&self, ctx: &EvalCtx<'_>) -> Result<bool, String> {
        if let Some((text, parsed)) = &self.cond_if {
            match parsed {
                Ok(expr) => {
                    if !expr.truthful(ctx.lookup) {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(format!("rules:if {text:?} does not parse: {e}")),
            }
        }
        if let Some(globs) = &self.exists {
            let files = ctx.files.unwrap_or(&[]);
            let found = globs.iter().any(|g| {
                let g = expand_with(g, &|n| (ctx.lookup)(n));
                let g = g.trim_start_matches("./");
                files.iter().any(|f| fnmatch(g, f))
            });
            if !found {
                return Ok(false);
            }
        }
        // `changes:` holds for pipelines not created by a push, chat ones included.
        Ok(true)
    }
}

/// First match wins; no match means excluded.
pub(crate) fn first_match<'a>(rules: &'a [Rule], ctx: &EvalCtx<'_>) -> RulesOutcome<'a> {
    for rule in rules {
        match rule.matches(ctx) {
            Ok(true) => return RulesOutcome::Matched(rule),
            Ok(false) => {}
            Err(e) => return RulesOutcome::Error(e),
        }
    }
    RulesOutcome::NoMatch
}

/// Whether any rule needs the repository's file list.
pub(crate) fn needs_files(rules: &[Rule]) -> bool {
    rules.iter().any(|r| r.exists.is_some())
}

/// Rules as an array, with nested arrays (from `!reference`) flattened.
fn flatten_rules(raw: &Raw, out: &mut Vec<Raw>, depth: usize) -> bool {
    match raw {
        Raw::Seq(items) if depth < 10 => items.iter().all(|i| flatten_rules(i, out, depth + 1)),
        Raw::Map(_) => {
            out.push(raw.clone());
            true
        }
        _ => false,
    }
}

/// Which `when:` values a list of rules may use.
#[derive(Clone, Copy)]
pub(crate) enum RuleKind {
    Job,
    Workflow,
    Include,
}

/// Parses a `rules:` array.
pub(crate) fn parse_rules(raw: &Raw, at: &KeyPath, kind: RuleKind) -> Result<Vec<Rule>, String> {
    let mut items = Vec::new();
    if !matches!(raw, Raw::Seq(_)) || !flatten_rules(raw, &mut items, 0) {
        return Err(format!("{at} config should be an array of hashes"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Raw::Map(m) => parse_rule(m, &at.index(i), kind),
            _ => Err(format!("{at} config should be an array of hashes")),
        })
        .collect()
}

fn parse_rule(m: &RawMap, at: &KeyPath, kind: RuleKind) -> Result<Rule, String> {
    let cond_if = match m.get("if") {
        None | Some(Raw::Null) => None,
        Some(Raw::Str(s)) => Some((s.clone(), Expr::parse(s))),
        Some(other) => {
            return Err(format!(
                "{}:if should be a string, not {}",
                at,
                other.kind()
            ))
        }
    };
    let exists = match m.get("exists") {
        None | Some(Raw::Null) => None,
        Some(Raw::Map(e)) => match e.get("paths") {
            Some(p) => Some(
                string_list(p)
                    .ok_or_else(|| format!("{at}:exists:paths should be an array of strings"))?,
            ),
            None => return Err(format!("{at}:exists config should contain paths")),
        },
        Some(other) => Some(
            string_list(other)
                .ok_or_else(|| format!("{at}:exists should be an array of strings"))?,
        ),
    };
    let when = match m.get("when") {
        None | Some(Raw::Null) => None,
        Some(Raw::Str(w)) => {
            let allowed: &[&str] = match kind {
                RuleKind::Job => &[
                    "on_success",
                    "on_failure",
                    "always",
                    "never",
                    "manual",
                    "delayed",
                ],
                RuleKind::Workflow => &["always", "never"],
                RuleKind::Include => &["never", "always"],
            };
            if !allowed.contains(&w.as_str()) {
                return Err(format!(
                    "{at}:when unknown value: {w} (use one of {})",
                    allowed.join(", ")
                ));
            }
            Some(w.clone())
        }
        Some(other) => {
            return Err(format!(
                "{at}:when should be a string, not {}",
                other.kind()
            ))
        }
    };
    let allow_failure = match m.get("allow_failure") {
        None | Some(Raw::Null) => None,
        Some(v) => Some(
            bool_of(v).ok_or_else(|| format!("{at}:allow_failure should be a boolean value"))?,
        ),
    };
    let variables = match m.get("variables") {
        None | Some(Raw::Null) => Vec::new(),
        Some(v) => parse_variables(v, &at.key("variables"))?,
    };
    let start_in = match m.get("start_in") {
        None | Some(Raw::Null) => None,
        Some(v) => {
            let text = v.scalar_string().unwrap_or_default();
            Some(parse_duration(&text).map_err(|e| format!("{at}:start_in: {e}"))?)
        }
    };
    if when.as_deref() == Some("delayed") && start_in.is_none() {
        return Err(format!("{at}:start_in should be specified for delayed"));
    }
    Ok(Rule {
        cond_if,
        exists,
        when,
        allow_failure,
        variables,
        start_in,
    })
}

/// A boolean as GitLab's YAML (YAML 1.1) reads it: `true`, `yes`, `on`...
pub(crate) fn bool_of(raw: &Raw) -> Option<bool> {
    match raw {
        Raw::Bool(b) => Some(*b),
        Raw::Str(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" => Some(true),
            "no" | "off" | "false" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A string or an array of strings (scalars are turned into strings).
pub(crate) fn string_list(raw: &Raw) -> Option<Vec<String>> {
    match raw {
        Raw::Seq(items) => items.iter().map(Raw::scalar_string).collect(),
        other => other.scalar_string().map(|s| vec![s]),
    }
}

/// An `only:` / `except:` policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub refs: Option<Vec<String>>,
    pub variables: Option<Vec<(String, Result<Expr, String>)>>,
    pub changes: bool,
    pub kubernetes: bool,
}

/// Parses `only:`/`except:` (array of refs, or the `refs`/`variables`/`changes`/`kubernetes`
/// hash).
pub(crate) fn parse_policy(raw: &Raw, at: &KeyPath) -> Result<Policy, String> {
    match raw {
        Raw::Map(m) => {
            let mut p = Policy::default();
            for (k, v) in m.iter() {
                match k.as_str() {
                    // `kinds` is an early spelling of `refs` limited to keywords; accept it.
                    "refs" | "kinds" => {
                        p.refs =
                            Some(string_list(v).ok_or_else(|| {
                                format!("{at}:refs should be an array of strings")
                            })?)
                    }
                    "variables" => {
                        let list = string_list(v).ok_or_else(|| {
                            format!("{at}:variables should be an array of strings")
                        })?;
                        p.variables = Some(
                            list.into_iter()
                                .map(|s| {
                                    let e = Expr::parse(&s);
                                    (s, e)
                                })
                                .collect(),
                        );
                    }
                    "changes" => p.changes = true,
                    "kubernetes" => p.kubernetes = true,
                    other => return Err(format!("{at} config contains unknown keys: {other}")),
                }
            }
            Ok(p)
        }
        other => {
            let refs = string_list(other)
                .ok_or_else(|| format!("{at} has to be either an array of conditions or a hash"))?;
            Ok(Policy {
                refs: Some(refs),
                ..Policy::default()
            })
        }
    }
}

/// The pipeline a chat command creates, as `only`/`except` see it.
pub(crate) struct PipelineFacts<'a> {
    pub source: &'a str,
    pub ref_name: Option<&'a str>,
    pub tag: bool,
    pub project_path: Option<&'a str>,
}

/// Whether one `only`/`except` ref pattern matches this pipeline (GitLab's
/// `Build::Policy::Refs#matches_pattern?`).
pub(crate) fn ref_matches(pattern: &str, p: &PipelineFacts<'_>) -> bool {
    let (pattern, path) = match pattern.rsplit_once('@') {
        Some((pat, path)) if !pat.starts_with('/') || pat.ends_with('/') => (pat, Some(path)),
        _ => (pattern, None),
    };
    if let (Some(path), Some(project)) = (path, p.project_path) {
        if path != project {
            return false;
        }
    }
    if p.tag && pattern == "tags" {
        return true;
    }
    if !p.tag && pattern == "branches" {
        return true;
    }
    let source = if p.source == "push" {
        "pushes"
    } else {
        p.source
    };
    if pattern == source || pattern == pluralize(source) {
        return true;
    }
    let Some(ref_name) = p.ref_name else {
        return false;
    };
    if pattern.starts_with('/') {
        if let Some(re) = compile_ruby_regex(pattern) {
            return re.is_match(ref_name);
        }
    }
    pattern == ref_name
}

fn pluralize(source: &str) -> String {
    if source.ends_with('s') {
        source.to_string()
    } else {
        format!("{source}s")
    }
}

/// Why a policy did or did not hold, for the reason text.
pub(crate) enum PolicyResult {
    Satisfied(String),
    NotSatisfied(String),
    Error(String),
}

/// GitLab's `only`: every specified part must hold; `except`: any part holding excludes.
/// Returns, per part, whether it holds and a description.
pub(crate) fn policy_parts(
    policy: &Policy,
    facts: &PipelineFacts<'_>,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Vec<PolicyResult> {
    let mut out = Vec::new();
    if let Some(refs) = &policy.refs {
        match refs.iter().find(|r| ref_matches(r, facts)) {
            Some(r) => out.push(PolicyResult::Satisfied(r.clone())),
            None => out.push(PolicyResult::NotSatisfied(format!(
                "refs do not include {}",
                facts.source
            ))),
        }
    }
    if let Some(vars) = &policy.variables {
        let mut result = PolicyResult::NotSatisfied("variables did not match".into());
        for (text, expr) in vars {
            match expr {
                Ok(e) if e.truthful(lookup) => {
                    result = PolicyResult::Satisfied(format!("variables {text}"));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    result = PolicyResult::Error(format!("variables {text:?} does not parse: {e}"));
                    break;
                }
            }
        }
        out.push(result);
    }
    if policy.changes {
        // Pipelines not created by a push count every path as changed.
        out.push(PolicyResult::Satisfied("changes".into()));
    }
    if policy.kubernetes {
        // chatops has no Kubernetes integration, so `kubernetes: active` never holds.
        out.push(PolicyResult::NotSatisfied(
            "kubernetes is not active".into(),
        ));
    }
    out
}

/// A rule's effective `when` (falling back to the job's).
pub(crate) fn rule_when(rule: &Rule, job_when: &When, start_in: Option<Duration>) -> When {
    match rule.when.as_deref() {
        None => job_when.clone(),
        Some(w) => When::from_name(w, rule.start_in.or(start_in)).unwrap_or(When::OnSuccess),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(source: &'a str, ref_name: &'a str) -> PipelineFacts<'a> {
        PipelineFacts {
            source,
            ref_name: Some(ref_name),
            tag: false,
            project_path: None,
        }
    }

    #[test]
    fn refs_keywords_for_chat() {
        let f = facts("chat", "main");
        assert!(ref_matches("chat", &f));
        assert!(ref_matches("branches", &f));
        assert!(!ref_matches("tags", &f));
        assert!(!ref_matches("pushes", &f));
        assert!(!ref_matches("merge_requests", &f));
        assert!(!ref_matches("schedules", &f));
        assert!(ref_matches("main", &f));
        assert!(!ref_matches("develop", &f));
        assert!(ref_matches("/^ma/", &f));
        assert!(!ref_matches("/^dev/", &f));
        assert!(ref_matches("main@group/project", &f));
        let with_path = PipelineFacts {
            project_path: Some("group/project"),
            ..facts("chat", "main")
        };
        assert!(ref_matches("main@group/project", &with_path));
        assert!(!ref_matches("main@other/project", &with_path));
        assert!(ref_matches("pushes", &facts("push", "main")));
    }

    #[test]
    fn rule_parsing_errors() {
        let at = KeyPath::root("jobs:x:rules");
        assert!(parse_rules(&Raw::Str("x".into()), &at, RuleKind::Job).is_err());
        let mut m = RawMap::new();
        m.insert("when".into(), Raw::Str("sometimes".into()));
        let r = parse_rules(&Raw::Seq(vec![Raw::Map(m)]), &at, RuleKind::Job);
        assert!(r.err().unwrap_or_default().contains("sometimes"));
    }

    #[test]
    fn yaml11_booleans() {
        assert_eq!(bool_of(&Raw::Str("yes".into())), Some(true));
        assert_eq!(bool_of(&Raw::Str("Off".into())), Some(false));
        assert_eq!(bool_of(&Raw::Bool(true)), Some(true));
        assert_eq!(bool_of(&Raw::Str("maybe".into())), None);
    }
}

//! Phase two, per job: [`Job`], [`When`], and the typed reading of a job's hash (scripts,
//! variables, `inherit`, `rules`/`only`/`except`) after `default:` is applied.

use std::fmt;
use std::time::Duration;

use crate::parse_duration;
use crate::rules::{bool_of, parse_policy, parse_rules, Policy, Rule, RuleKind};
use crate::variables::VarDef;
use crate::yaml::{Budget, Raw, RawMap};

/// When a job runs, GitLab's `when:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// Runs when earlier stages succeeded (the default).
    OnSuccess,
    /// Waits to be played.
    Manual,
    /// Runs whatever earlier stages did.
    Always,
    /// Runs only when an earlier stage failed.
    OnFailure,
    /// Runs after `start_in`.
    Delayed {
        /// How long after the pipeline starts.
        start_in: Duration,
    },
    /// Never runs (only meaningful in `rules:`).
    Never,
}

impl When {
    /// GitLab's name for it: `"on_success"`, `"manual"`, `"always"`, `"on_failure"`,
    /// `"delayed"`, `"never"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            When::OnSuccess => "on_success",
            When::Manual => "manual",
            When::Always => "always",
            When::OnFailure => "on_failure",
            When::Delayed { .. } => "delayed",
            When::Never => "never",
        }
    }

    /// From GitLab's name; `delayed` takes `start_in` (zero when absent).
    pub(crate) fn from_name(name: &str, start_in: Option<Duration>) -> Option<When> {
        Some(match name {
            "on_success" => When::OnSuccess,
            "manual" => When::Manual,
            "always" => When::Always,
            "on_failure" => When::OnFailure,
            "delayed" => When::Delayed {
                start_in: start_in.unwrap_or_default(),
            },
            "never" => When::Never,
            _ => return None,
        })
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A visible job, resolved: `include`, `extends`, `!reference`, `default:` and `inherit`
/// applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The job's name (its top-level key).
    pub name: String,
    /// `before_script` after `default:`/`inherit` resolution, flattened.
    pub before_script: Vec<String>,
    /// `script`, flattened (empty for trigger jobs).
    pub script: Vec<String>,
    /// `after_script` after `default:`/`inherit` resolution, flattened.
    pub after_script: Vec<String>,
    /// `timeout` (job, else `default:`), if any.
    pub timeout: Option<Duration>,
    /// `resource_group`, if any.
    pub resource_group: Option<String>,
    /// `when` as declared (default `on_success`); rules may change it per pipeline.
    pub when: When,
    /// `allow_failure` as declared; `true` by default for `when: manual` jobs.
    pub allow_failure: bool,
    /// `stage` as declared; `None` means GitLab's default, `test`.
    pub stage: Option<String>,
    /// What the job does, for `help`: the job's own `CHAT_DESCRIPTION` variable (its
    /// `description:`, else its value), else the comment lines directly above the job's key in
    /// the file that defines it. `None` when neither is there.
    pub description: Option<String>,
}

/// The job variable whose text describes the job in `help`. A job-level variable, because
/// GitLab accepts `description:` only on pipeline-level variables (where it describes the
/// variable, for the "Run pipeline" form), and a plain `CHAT_DESCRIPTION: "..."` is valid in
/// GitLab too; the `{value:, description:}` form is read as well.
pub const DESCRIPTION_VARIABLE: &str = "CHAT_DESCRIPTION";

/// Longest description kept, in characters (a help line, not a manual).
const MAX_DESCRIPTION_CHARS: usize = 200;

/// Whitespace (newlines too) collapsed to single spaces and the length bounded, so a
/// description always fits on one help line.
pub(crate) fn tidy_description(text: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return None;
    }
    let joined = words.join(" ");
    if joined.chars().count() <= MAX_DESCRIPTION_CHARS {
        return Some(joined);
    }
    let cut: String = joined.chars().take(MAX_DESCRIPTION_CHARS - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

/// The description a job's `variables:` hash gives: `CHAT_DESCRIPTION`'s `description:` (map
/// form), else its value.
fn description_variable(variables: Option<&Raw>) -> Option<String> {
    let raw = variables?.as_map()?.get(DESCRIPTION_VARIABLE)?;
    let text = match raw {
        Raw::Map(m) => m
            .get("description")
            .and_then(Raw::scalar_string)
            .or_else(|| m.get("value").and_then(Raw::scalar_string)),
        other => other.scalar_string(),
    }?;
    tidy_description(&text)
}

/// The comment lines directly above line `line` (1-based) of `text`: the run of column-0 `#`
/// lines that ends right before it (a blank line ends the run), `#` removed, joined. The
/// raw tree keeps no comments; the file's text (kept for error lines) still has them.
pub(crate) fn comment_above(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line.saturating_sub(1)).collect();
    let mut run = Vec::new();
    for l in lines.iter().rev() {
        // At the job key's own level (column 0): an indented comment belongs to the body of
        // the job before.
        match l.trim_end().strip_prefix('#') {
            Some(rest) => run.push(rest.trim()),
            None => break,
        }
    }
    run.reverse();
    tidy_description(&run.join(" "))
}

/// A dotted position in the configuration for messages, GitLab style: `jobs:build:script`.
#[derive(Debug, Clone)]
pub(crate) struct KeyPath(String);

impl KeyPath {
    pub(crate) fn root(s: &str) -> Self {
        KeyPath(s.to_string())
    }
    pub(crate) fn key(&self, k: &str) -> Self {
        KeyPath(format!("{}:{}", self.0, k))
    }
    pub(crate) fn index(&self, i: usize) -> Self {
        KeyPath(format!("{}:{}", self.0, i))
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys every job may have (GitLab's `Processable::PROCESSABLE_ALLOWED_KEYS`).
const PROCESSABLE_KEYS: &[&str] = &[
    "extends",
    "stage",
    "only",
    "except",
    "rules",
    "variables",
    "inherit",
    "allow_failure",
    "when",
    "needs",
    "resource_group",
    "environment",
    "interruptible",
];

/// Keys of a job that runs a script (`Entry::Job::ALLOWED_KEYS`, with EE's
/// `dast_configuration`, `identity` and `secrets`, and `inputs`, the job inputs of
/// `Entry::JobInput`).
const SCRIPT_JOB_KEYS: &[&str] = &[
    "tags",
    "script",
    "image",
    "services",
    "start_in",
    "artifacts",
    "cache",
    "dependencies",
    "before_script",
    "after_script",
    "hooks",
    "coverage",
    "retry",
    "parallel",
    "timeout",
    "release",
    "id_tokens",
    "publish",
    "pages",
    "manual_confirmation",
    "run",
    "dast_configuration",
    "identity",
    "secrets",
    "inputs",
];

/// Keys of a trigger job (`Entry::Bridge::ALLOWED_KEYS`).
const TRIGGER_JOB_KEYS: &[&str] = &["trigger"];

/// A job's keys that no job may have, as GitLab reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnknownKeys {
    /// GitLab's message, with a suggestion where a key looks misspelt:
    /// `jobs:build config contains unknown keys: excpet (did you mean except?)`.
    pub message: String,
    /// The first unknown key, for its line.
    pub first: String,
    /// Whether one of them looks like a misspelt job keyword.
    pub misspelt: bool,
}

/// The job keyword closest to `key`, when `key` looks like a misspelling of it.
fn misspelling_of(key: &str) -> Option<&'static str> {
    [PROCESSABLE_KEYS, SCRIPT_JOB_KEYS, TRIGGER_JOB_KEYS]
        .iter()
        .flat_map(|list| list.iter().copied())
        .map(|known| (strsim::damerau_levenshtein(key, known), known))
        .filter(|(d, known)| *d <= 2 && *d < known.len() / 2 + 1)
        .min()
        .map(|(_, known)| known)
}

/// GitLab's check of a visible job's keys, after `extends` is applied. GitLab checks a job
/// with `script:`/`run:` against the script job's keys and one with `trigger:` against the
/// trigger job's; chatops accepts the keys of either for every job, because a job's
/// `script:` often comes from an include chatops cannot read (so which list GitLab would use
/// is unknown), and GitLab's own schema accepts both. Hidden jobs are templates: GitLab does
/// not check them.
///
/// A misspelt key (`excpet: [chat]`) would otherwise be ignored and the job run from chat.
pub(crate) fn check_keys(name: &str, map: &RawMap) -> Result<(), UnknownKeys> {
    let known = |k: &str| {
        [PROCESSABLE_KEYS, SCRIPT_JOB_KEYS, TRIGGER_JOB_KEYS]
            .iter()
            .any(|list| list.contains(&k))
    };
    let unknown: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| !known(k))
        .collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let guesses: Vec<String> = unknown
        .iter()
        .filter_map(|k| misspelling_of(k))
        .map(str::to_string)
        .collect();
    let mut message = format!(
        "jobs:{name} config contains unknown keys: {}",
        unknown.join(", ")
    );
    if !guesses.is_empty() {
        message.push_str(&format!(" (did you mean {}?)", guesses.join(", ")));
    }
    Err(UnknownKeys {
        message,
        first: first.to_string(),
        misspelt: !guesses.is_empty(),
    })
}

/// GitLab allows scripts nested up to 10 levels (from `!reference` and anchors).
const MAX_SCRIPT_NESTING: usize = 10;

/// A script: a string or an array of strings and nested arrays, flattened.
pub(crate) fn parse_script(raw: &Raw, at: &KeyPath) -> Result<Vec<String>, String> {
    fn walk(raw: &Raw, depth: usize, out: &mut Vec<String>) -> bool {
        match raw {
            Raw::Seq(items) if depth < MAX_SCRIPT_NESTING => {
                items.iter().all(|i| walk(i, depth + 1, out))
            }
            Raw::Str(s) => {
                out.push(s.clone());
                true
            }
            // Psych would make these numbers; GitLab then refuses them. Accept their text:
            // `- 42` as a command is harmless and people write `- true`.
            Raw::Int(_) | Raw::Float(_) | Raw::Bool(_) => {
                out.extend(raw.scalar_string());
                true
            }
            _ => false,
        }
    }
    let mut out = Vec::new();
    if walk(raw, 0, &mut out) {
        Ok(out)
    } else {
        Err(format!(
            "{at} config should be a string or a nested array of strings up to {MAX_SCRIPT_NESTING} levels deep"
        ))
    }
}

/// `variables:` (global, job or rule): `NAME: value` or `NAME: {value:, description:,
/// options:, expand:}`.
pub(crate) fn parse_variables(raw: &Raw, at: &KeyPath) -> Result<Vec<VarDef>, String> {
    let map = match raw {
        Raw::Map(m) => m,
        Raw::Null => return Ok(Vec::new()),
        _ => {
            return Err(format!(
                "{at} config should be a hash of key value pairs, value can be a hash"
            ))
        }
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map.iter() {
        let (value, expand) = match value {
            Raw::Map(m) => {
                let v = match m.get("value") {
                    None | Some(Raw::Null) => String::new(),
                    Some(v) => v
                        .scalar_string()
                        .ok_or_else(|| format!("{at}:{name}:value should be a string"))?,
                };
                let expand = match m.get("expand") {
                    None => true,
                    Some(e) => bool_of(e)
                        .ok_or_else(|| format!("{at}:{name}:expand should be a boolean value"))?,
                };
                (v, expand)
            }
            Raw::Null => (String::new(), true),
            other => (
                other.scalar_string().ok_or_else(|| {
                    format!("{at} config should be a hash of key value pairs, value can be a hash")
                })?,
                true,
            ),
        };
        out.push(VarDef {
            name: name.clone(),
            value,
            expand,
        });
    }
    Ok(out)
}

/// `inherit: default:` / `inherit: variables:`: everything, nothing, or a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inherit {
    All,
    Nothing,
    Only(Vec<String>),
}

impl Inherit {
    fn parse(raw: Option<&Raw>, at: &KeyPath) -> Result<Inherit, String> {
        match raw {
            None | Some(Raw::Null) => Ok(Inherit::All),
            Some(Raw::Seq(_)) => raw
                .and_then(crate::rules::string_list)
                .map(Inherit::Only)
                .ok_or_else(|| {
                    format!("{at} config should be a boolean value or an array of strings")
                }),
            Some(other) => match bool_of(other) {
                Some(true) => Ok(Inherit::All),
                Some(false) => Ok(Inherit::Nothing),
                None => Err(format!(
                    "{at} config should be a boolean value or an array of strings"
                )),
            },
        }
    }

    pub(crate) fn allows(&self, name: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Nothing => false,
            Inherit::Only(list) => list.iter().any(|n| n == name),
        }
    }
}

/// How a job decides whether a pipeline contains it.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    Rules(Vec<Rule>),
    OnlyExcept {
        only: Option<Policy>,
        except: Option<Policy>,
    },
}

/// Everything about a job that `evaluate` needs beyond the public [`Job`].
#[derive(Debug, Clone)]
pub(crate) struct JobSpec {
    pub variables: Vec<VarDef>,
    pub inherit_variables: Inherit,
    pub filter: Filter,
    /// `allow_failure` as written (rules distinguish "unset" from `false`).
    pub allow_failure_declared: Option<bool>,
    pub start_in: Option<Duration>,
    /// Set when the job cannot run from chat, with the reason (e.g. its script comes from an
    /// include chatops cannot read).
    pub broken: Option<String>,
}

/// The `default:` entries jobs inherit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Defaults {
    pub before_script: Option<Vec<String>>,
    pub after_script: Option<Vec<String>>,
    pub timeout: Option<Duration>,
}

/// Reads one job hash. `unsupported` names the includes chatops could not read: a job
/// lacking a script then is marked broken instead of failing the whole file. Scripts
/// inherited from `default:` are copies taken from `budget`.
pub(crate) fn parse_job(
    name: &str,
    map: &RawMap,
    defaults: &Defaults,
    unsupported: &[String],
    budget: &Budget,
) -> Result<(Job, JobSpec), (String, Vec<String>)> {
    let at = KeyPath::root("jobs").key(name);
    let err = |key: &str, msg: String| (msg, vec![name.to_string(), key.to_string()]);

    let inherit = map.get("inherit");
    let inherit_map = match inherit {
        None | Some(Raw::Null) => None,
        Some(Raw::Map(m)) => Some(m),
        Some(_) => {
            return Err(err(
                "inherit",
                format!("{at}:inherit config should be a hash"),
            ))
        }
    };
    let inherit_default = Inherit::parse(
        inherit_map.and_then(|m| m.get("default")),
        &at.key("inherit:default"),
    )
    .map_err(|e| err("inherit", e))?;
    let inherit_variables = Inherit::parse(
        inherit_map.and_then(|m| m.get("variables")),
        &at.key("inherit:variables"),
    )
    .map_err(|e| err("inherit", e))?;

    let script_of = |key: &str| -> Result<Option<Vec<String>>, (String, Vec<String>)> {
        match map.get(key) {
            None => Ok(None),
            Some(Raw::Null) => Ok(Some(Vec::new())),
            Some(raw) => parse_script(raw, &at.key(key))
                .map(Some)
                .map_err(|e| err(key, e)),
        }
    };
    let mut broken = None;
    let script = match script_of("script")? {
        Some(s) if !s.is_empty() => s,
        _ => {
            if map.contains_key("trigger") {
                Vec::new()
            } else if map.contains_key("run") {
                broken = Some("run: (CI/CD steps) is not supported by chatops".to_string());
                Vec::new()
            } else if !unsupported.is_empty() {
                broken = Some(format!(
                    "no script: (it may come from an include chatops cannot read: {})",
                    unsupported.join(", ")
                ));
                Vec::new()
            } else {
                // GitLab refuses the whole file; only this job is unusable, so only it fails.
                broken = Some(format!(
                    "{at} config should implement the script:, run:, or trigger: keyword"
                ));
                Vec::new()
            }
        }
    };
    // A copy of `default:`'s script per job: 10,000 jobs inheriting a 1 MiB one would be
    // 10 GB, so each copy is taken from the budget first.
    let inherit = |key: &str, script: &Option<Vec<String>>| {
        let script = script.as_deref().unwrap_or_default();
        let bytes = script.iter().map(|l| l.len() + 1).sum();
        budget.take_bytes(bytes).map_err(|e| {
            (
                format!(
                    "{at}: {e} once every job gets its copy of `default:{key}`; make it \
                     smaller (a script file in the repository) or set `inherit: default: \
                     false` where it is not needed"
                ),
                vec![name.to_string()],
            )
        })?;
        Ok(script.to_vec())
    };
    let before_script = match script_of("before_script")? {
        Some(s) => s,
        None if inherit_default.allows("before_script") => {
            inherit("before_script", &defaults.before_script)?
        }
        None => Vec::new(),
    };
    let after_script = match script_of("after_script")? {
        Some(s) => s,
        None if inherit_default.allows("after_script") => {
            inherit("after_script", &defaults.after_script)?
        }
        None => Vec::new(),
    };
    let timeout = match map.get("timeout") {
        None | Some(Raw::Null) => {
            if inherit_default.allows("timeout") {
                defaults.timeout
            } else {
                None
            }
        }
        Some(raw) => {
            let text = raw.scalar_string().unwrap_or_default();
            Some(parse_duration(&text).map_err(|e| err("timeout", format!("{at}:timeout {e}")))?)
        }
    };
    let start_in = match map.get("start_in") {
        None | Some(Raw::Null) => None,
        Some(raw) => {
            let text = raw.scalar_string().unwrap_or_default();
            Some(parse_duration(&text).map_err(|e| err("start_in", format!("{at}:start_in {e}")))?)
        }
    };
    let when = match map.get("when") {
        None | Some(Raw::Null) => When::OnSuccess,
        Some(Raw::Str(w)) => When::from_name(w, start_in).ok_or_else(|| {
            err(
                "when",
                format!(
                    "{at}:when should be one of: on_success, on_failure, always, manual, delayed"
                ),
            )
        })?,
        Some(_) => return Err(err("when", format!("{at}:when should be a string"))),
    };
    if matches!(when, When::Delayed { .. }) && start_in.is_none() && !map.contains_key("rules") {
        return Err(err(
            "when",
            format!("{at}:start_in should be specified for delayed job"),
        ));
    }
    let allow_failure_declared = match map.get("allow_failure") {
        None | Some(Raw::Null) => None,
        // `allow_failure: {exit_codes: [...]}` allows failure only for those codes; a chat
        // reply cannot tell, so the job counts as not allowed to fail.
        Some(Raw::Map(_)) => Some(false),
        Some(raw) => Some(bool_of(raw).ok_or_else(|| {
            err(
                "allow_failure",
                format!("{at}:allow_failure should be a boolean value"),
            )
        })?),
    };
    let allow_failure = allow_failure_declared.unwrap_or(when == When::Manual);
    let stage = match map.get("stage") {
        None | Some(Raw::Null) => None,
        Some(Raw::Str(s)) => Some(s.clone()),
        Some(_) => {
            return Err(err(
                "stage",
                format!("{at}:stage config should be a string"),
            ))
        }
    };
    let resource_group = map.get("resource_group").and_then(Raw::scalar_string);
    let description = description_variable(map.get("variables"));
    let variables = match map.get("variables") {
        None => Vec::new(),
        Some(raw) => parse_variables(raw, &at.key("variables")).map_err(|e| err("variables", e))?,
    };

    let has_rules = map.get("rules").is_some_and(|r| !matches!(r, Raw::Null));
    let only = match map.get("only") {
        None | Some(Raw::Null) => None,
        Some(raw) => Some(parse_policy(raw, &at.key("only")).map_err(|e| err("only", e))?),
    };
    let except = match map.get("except") {
        None | Some(Raw::Null) => None,
        Some(raw) => Some(parse_policy(raw, &at.key("except")).map_err(|e| err("except", e))?),
    };
    let filter = if has_rules {
        if only.is_some() || except.is_some() {
            return Err(err(
                "rules",
                format!("{at} config key may not be used with `rules`: only, except"),
            ));
        }
        let raw = map.get("rules").unwrap_or(&Raw::Null);
        Filter::Rules(
            parse_rules(raw, &at.key("rules"), RuleKind::Job).map_err(|e| err("rules", e))?,
        )
    } else {
        Filter::OnlyExcept { only, except }
    };

    let job = Job {
        name: name.to_string(),
        before_script,
        script,
        after_script,
        timeout,
        resource_group,
        when,
        allow_failure,
        stage,
        description,
    };
    let spec = JobSpec {
        variables,
        inherit_variables,
        filter,
        allow_failure_declared,
        start_in,
        broken,
    };
    Ok((job, spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Raw {
        Raw::Str(x.into())
    }

    #[test]
    fn scripts_flatten_nested_lists() {
        let raw = Raw::Seq(vec![
            s("a"),
            Raw::Seq(vec![s("b"), Raw::Seq(vec![s("c")])]),
            s("d"),
        ]);
        assert_eq!(
            parse_script(&raw, &KeyPath::root("x")),
            Ok(vec!["a".into(), "b".into(), "c".into(), "d".into()])
        );
        assert_eq!(
            parse_script(&s("one\ntwo"), &KeyPath::root("x")),
            Ok(vec!["one\ntwo".into()])
        );
        let mut m = RawMap::new();
        m.insert("k".into(), s("v"));
        assert!(parse_script(&Raw::Seq(vec![Raw::Map(m)]), &KeyPath::root("x")).is_err());
        // Eleven levels are too many.
        let mut deep = s("x");
        for _ in 0..11 {
            deep = Raw::Seq(vec![deep]);
        }
        assert!(parse_script(&deep, &KeyPath::root("x")).is_err());
    }

    #[test]
    fn variable_forms() {
        let mut full = RawMap::new();
        full.insert("value".into(), s("v"));
        full.insert("description".into(), s("d"));
        full.insert("expand".into(), Raw::Bool(false));
        let mut m = RawMap::new();
        m.insert("A".into(), s("x"));
        m.insert("B".into(), Raw::Int(5));
        m.insert("C".into(), Raw::Map(full));
        m.insert("D".into(), Raw::Float(1.10));
        let vars = parse_variables(&Raw::Map(m), &KeyPath::root("variables")).unwrap_or_default();
        let got: Vec<(String, String, bool)> = vars
            .into_iter()
            .map(|v| (v.name, v.value, v.expand))
            .collect();
        assert_eq!(
            got,
            vec![
                ("A".into(), "x".into(), true),
                ("B".into(), "5".into(), true),
                ("C".into(), "v".into(), false),
                ("D".into(), "1.1".into(), true),
            ]
        );
        assert!(parse_variables(&s("x"), &KeyPath::root("variables")).is_err());
    }

    #[test]
    fn when_names_round_trip() {
        for name in [
            "on_success",
            "manual",
            "always",
            "on_failure",
            "delayed",
            "never",
        ] {
            let w = When::from_name(name, None);
            assert_eq!(w.as_ref().map(When::as_str), Some(name));
        }
        assert_eq!(When::from_name("later", None), None);
    }
}

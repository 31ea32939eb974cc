//! [`CiConfig`]: the resolved configuration, job lookup and the chat-pipeline decision.

use std::collections::HashMap;

use crate::job::{
    check_keys, comment_above, parse_job, parse_script, parse_variables, Defaults, Filter, JobSpec,
    KeyPath,
};
use crate::load::Loaded;
use crate::rules::{
    first_match, needs_files, parse_rules, policy_parts, rule_when, EvalCtx, PipelineFacts,
    PolicyResult, Rule, RuleKind, RulesOutcome,
};
use crate::variables::{expand_all, VarDef};
use crate::yaml::{find_line, Raw, RawMap};
use crate::{parse_duration, CiError, Job, Variables, When};

/// Top-level keys that are keywords, not jobs.
pub(crate) const RESERVED: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
    "spec",
    "types",
];

/// The stages a pipeline has when `stages:` is absent (GitLab's `Entry::Stages.default`).
const DEFAULT_STAGES: &[&str] = &["build", "test", "deploy"];

/// The pipeline's stages, as GitLab wraps them: `.pre`, the file's `stages:` (or legacy
/// `types:`, or the defaults), `.post`. `Err` is the message for a malformed list.
fn stages(root: &RawMap) -> Result<Vec<String>, String> {
    let declared = match root.get("stages").or_else(|| root.get("types")) {
        None | Some(Raw::Null) => DEFAULT_STAGES.iter().map(|s| s.to_string()).collect(),
        Some(Raw::Seq(items)) => {
            // Nested lists (from `!reference` or anchors) are flattened, as GitLab does.
            let mut flat = Vec::new();
            let mut stack: Vec<&Raw> = items.iter().rev().collect();
            while let Some(item) = stack.pop() {
                match item {
                    Raw::Seq(inner) => stack.extend(inner.iter().rev()),
                    other => flat.push(
                        other
                            .scalar_string()
                            .ok_or("stages config should be an array of strings")?,
                    ),
                }
            }
            flat
        }
        Some(_) => return Err("stages config should be an array of strings".into()),
    };
    let mut out = vec![".pre".to_string()];
    for s in declared {
        if s != ".pre" && s != ".post" && !out.contains(&s) {
            out.push(s);
        }
    }
    out.push(".post".into());
    Ok(out)
}

/// A loaded, resolved CI configuration.
#[derive(Debug, Clone)]
pub struct CiConfig {
    jobs: Vec<Job>,
    specs: Vec<JobSpec>,
    by_name: HashMap<String, usize>,
    hidden: Vec<String>,
    global_variables: Vec<VarDef>,
    workflow_rules: Option<Vec<Rule>>,
    files: Option<Vec<String>>,
    warnings: Vec<String>,
}

/// The answer of [`CiConfig::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A visible job of that name.
    Found(&'a Job),
    /// A hidden job (`.name`): a template, not runnable.
    Hidden,
    /// No such job; close names, best first, at most 3.
    Missing {
        /// Names of visible jobs close to the one asked for.
        suggestions: Vec<String>,
    },
}

/// Whether a chat pipeline would contain a job, and how it would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The pipeline contains the job.
    Run {
        /// Its effective `when` (rules may change the declared one).
        when: When,
        /// The file's effective variables for the job: global (per `inherit`), then
        /// `workflow:rules:variables`, job, and `rules:variables`, expanded (`$VAR`/`${VAR}`,
        /// references to unknown names left for the runner), one entry per name in first-
        /// definition order. A name also given in `vars` carries that value.
        variables: Vec<(String, String)>,
        /// Whether the job may fail without failing the pipeline.
        allow_failure: bool,
    },
    /// The pipeline does not contain the job.
    Excluded {
        /// Why, in a few words: `except: chat`, `only: refs do not include chat`,
        /// `rules: no rule matched`, `workflow: rules excluded the pipeline`, `when: never`,
        /// or an expression's parse error.
        reason: String,
    },
}

impl CiConfig {
    /// Visible jobs, in file order (after include/extends resolution).
    pub fn jobs(&self) -> &[Job] {
        &self.jobs
    }

    /// Hidden jobs (`.name`), in file order.
    pub fn hidden_jobs(&self) -> &[String] {
        &self.hidden
    }

    /// Finds a job by exact name.
    pub fn lookup(&self, name: &str) -> Lookup<'_> {
        if let Some(job) = self.by_name.get(name).and_then(|&i| self.jobs.get(i)) {
            return Lookup::Found(job);
        }
        if self.hidden.iter().any(|h| h == name) {
            return Lookup::Hidden;
        }
        Lookup::Missing {
            suggestions: suggest(name, self.jobs.iter().map(|j| j.name.as_str())),
        }
    }

    /// Non-fatal notes (e.g. "include: remote is not supported: https://..."), for
    /// `chatops check`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Would a chat pipeline (`CI_PIPELINE_SOURCE=chat`) contain this job? `vars` are the
    /// predefined and project variables (`CI_PIPELINE_SOURCE`, `CI_COMMIT_BRANCH`,
    /// `CI_DEFAULT_BRANCH`, `CI_PROJECT_NAME`, the project's variables...). They override the
    /// file's `variables:` of the same name. `CI_PIPELINE_SOURCE` defaults to `chat`.
    pub fn evaluate(&self, job: &Job, vars: &Variables) -> Decision {
        let excluded = |reason: String| Decision::Excluded { reason };
        let Some(spec) = self.by_name.get(&job.name).and_then(|&i| self.specs.get(i)) else {
            return excluded(format!("no job named {:?} in this CI file", job.name));
        };
        if let Some(reason) = &spec.broken {
            return excluded(reason.clone());
        }
        let mut vars = vars.clone();
        if !vars.contains("CI_PIPELINE_SOURCE") {
            vars.insert("CI_PIPELINE_SOURCE", "chat");
        }
        let files = self.files.as_deref();

        // workflow:rules see the global variables only.
        let global = match expand_all(&self.global_variables, &vars) {
            Ok(g) => g,
            Err(e) => return excluded(format!("variables: {e}")),
        };
        let mut workflow_vars: Vec<VarDef> = Vec::new();
        if let Some(rules) = &self.workflow_rules {
            let lookup = lookup_in(&global, &vars);
            let ctx = EvalCtx {
                lookup: &lookup,
                files,
            };
            match first_match(rules, &ctx) {
                RulesOutcome::Matched(rule) => {
                    if rule.when.as_deref() == Some("never") {
                        return excluded("workflow: rules excluded the pipeline".into());
                    }
                    workflow_vars = rule.variables.clone();
                }
                RulesOutcome::NoMatch => {
                    return excluded("workflow: rules excluded the pipeline".into())
                }
                RulesOutcome::Error(e) => return excluded(format!("workflow: {e}")),
            }
        }

        // The job's variables: inherited globals, workflow rule variables, its own.
        let mut defs: Vec<VarDef> = self
            .global_variables
            .iter()
            .filter(|v| spec.inherit_variables.allows(&v.name))
            .cloned()
            .collect();
        defs.extend(workflow_vars);
        defs.extend(spec.variables.iter().cloned());
        let effective = match expand_all(&defs, &vars) {
            Ok(v) => v,
            Err(e) => return excluded(format!("variables: {e}")),
        };
        let lookup = lookup_in(&effective, &vars);
        let facts = PipelineFacts {
            source: vars.get("CI_PIPELINE_SOURCE").unwrap_or("chat"),
            ref_name: vars
                .get("CI_COMMIT_TAG")
                .filter(|t| !t.is_empty())
                .or_else(|| vars.get("CI_COMMIT_BRANCH"))
                .or_else(|| vars.get("CI_COMMIT_REF_NAME"))
                .or_else(|| vars.get("CI_DEFAULT_BRANCH")),
            tag: vars.get("CI_COMMIT_TAG").is_some_and(|t| !t.is_empty()),
            project_path: vars.get("CI_PROJECT_PATH"),
        };

        let (when, allow_failure, rule_vars) = match &spec.filter {
            Filter::Rules(rules) => {
                let ctx = EvalCtx {
                    lookup: &lookup,
                    files,
                };
                match first_match(rules, &ctx) {
                    RulesOutcome::Matched(rule) => {
                        let when = rule_when(rule, &job.when, spec.start_in);
                        // With rules, `when: manual` no longer implies allow_failure.
                        let allow = rule
                            .allow_failure
                            .or(spec.allow_failure_declared)
                            .unwrap_or(false);
                        (when, allow, rule.variables.clone())
                    }
                    RulesOutcome::NoMatch => return excluded("rules: no rule matched".into()),
                    RulesOutcome::Error(e) => return excluded(e),
                }
            }
            Filter::OnlyExcept { only, except } => {
                let default_only = crate::rules::Policy {
                    refs: Some(vec!["branches".into(), "tags".into()]),
                    ..Default::default()
                };
                let only = only.as_ref().unwrap_or(&default_only);
                for part in policy_parts(only, &facts, &lookup) {
                    match part {
                        PolicyResult::Satisfied(_) => {}
                        PolicyResult::NotSatisfied(why) => return excluded(format!("only: {why}")),
                        PolicyResult::Error(e) => return excluded(format!("only: {e}")),
                    }
                }
                if let Some(except) = except {
                    for part in policy_parts(except, &facts, &lookup) {
                        match part {
                            PolicyResult::Satisfied(what) => {
                                return excluded(format!("except: {what}"))
                            }
                            PolicyResult::NotSatisfied(_) => {}
                            PolicyResult::Error(e) => return excluded(format!("except: {e}")),
                        }
                    }
                }
                (job.when.clone(), job.allow_failure, Vec::new())
            }
        };
        if when == When::Never {
            return excluded("when: never".into());
        }
        let variables = if rule_vars.is_empty() {
            effective.clone()
        } else {
            let mut all = defs;
            all.extend(rule_vars);
            match expand_all(&all, &vars) {
                Ok(v) => v,
                Err(e) => return excluded(format!("variables: {e}")),
            }
        };
        Decision::Run {
            when,
            variables,
            allow_failure,
        }
    }
}

/// Variable lookup for expressions: `vars` win over the file's expanded values.
fn lookup_in<'a>(
    file: &'a [(String, String)],
    vars: &'a Variables,
) -> impl Fn(&str) -> Option<String> + 'a {
    move |name: &str| {
        vars.get(name).map(str::to_string).or_else(|| {
            file.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// Close names, best first, at most 3.
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let lower = name.to_lowercase();
    let mut scored: Vec<(f64, &str)> = candidates
        .filter_map(|c| {
            let cl = c.to_lowercase();
            let mut score = strsim::jaro_winkler(&lower, &cl);
            if !lower.is_empty() && (cl.contains(&lower) || lower.contains(&cl)) {
                score = score.max(0.9);
            }
            let lev = strsim::levenshtein(&lower, &cl);
            if lev <= 2 {
                score = score.max(0.95 - 0.01 * lev as f64);
            }
            (score >= 0.8).then_some((score, c))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(3)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The comment directly above job `name`'s key in the file that (last) defines it.
fn comment_description(
    files: &[crate::load::FileText],
    origins: &HashMap<String, usize>,
    name: &str,
) -> Option<String> {
    let file = files.get(origins.get(name).copied().unwrap_or(0))?;
    let line = find_line(&file.text, &[name])?;
    comment_above(&file.text, line)
}

/// A job that is listed but cannot run (its definition is out of reach or unusable).
fn placeholder_job(name: &str) -> Job {
    Job {
        name: name.to_string(),
        before_script: Vec::new(),
        script: Vec::new(),
        after_script: Vec::new(),
        timeout: None,
        resource_group: None,
        when: When::OnSuccess,
        allow_failure: false,
        stage: None,
        description: None,
    }
}

fn broken_spec(reason: String) -> JobSpec {
    JobSpec {
        variables: Vec::new(),
        inherit_variables: crate::job::Inherit::All,
        filter: Filter::OnlyExcept {
            only: None,
            except: None,
        },
        allow_failure_declared: None,
        start_in: None,
        broken: Some(reason),
    }
}

/// Phase two: the resolved raw tree into a [`CiConfig`].
pub(crate) fn build(loaded: Loaded, source: &dyn crate::Source) -> Result<CiConfig, CiError> {
    let Loaded {
        root,
        files,
        origins,
        mut warnings,
        unsupported,
        broken,
        listing,
        order,
        placeholders,
        budget,
    } = loaded;
    let main_file = files.first().map(|f| f.path.clone()).unwrap_or_default();
    // The file and line of a key path, for messages.
    let locate = |path: &[&str]| -> (String, Option<usize>) {
        let idx = path
            .first()
            .and_then(|k| origins.get(*k))
            .copied()
            .unwrap_or(0);
        match files.get(idx) {
            Some(f) => (f.path.clone(), find_line(&f.text, path)),
            None => (main_file.clone(), None),
        }
    };
    let invalid = |path: &[&str], message: String| {
        let (file, line) = locate(path);
        CiError::Invalid {
            file,
            line,
            message,
        }
    };

    // default: and the legacy top-level keywords it replaces.
    let default_map = match root.get("default") {
        None | Some(Raw::Null) => RawMap::new(),
        Some(Raw::Map(m)) => m.clone(),
        Some(_) => {
            return Err(invalid(
                &["default"],
                "default config should be a hash".into(),
            ))
        }
    };
    let mut defaults = Defaults::default();
    for key in ["before_script", "after_script"] {
        let top = root.get(key);
        let def = default_map.get(key);
        if top.is_some() && def.is_some() {
            return Err(invalid(
                &[key],
                format!("root config contains conflicting keys: {key} is defined in top-level and `default:` entry"),
            ));
        }
        let (raw, at) = match (def, top) {
            (Some(d), _) => (Some(d), KeyPath::root("default").key(key)),
            (None, Some(t)) => (Some(t), KeyPath::root(key)),
            (None, None) => (None, KeyPath::root(key)),
        };
        if let Some(raw) = raw {
            let script = parse_script(raw, &at).map_err(|e| invalid(&[key], e))?;
            if key == "before_script" {
                defaults.before_script = Some(script);
            } else {
                defaults.after_script = Some(script);
            }
        }
    }
    if let Some(t) = default_map
        .get("timeout")
        .filter(|t| !matches!(t, Raw::Null))
    {
        let text = t.scalar_string().unwrap_or_default();
        defaults.timeout = Some(
            parse_duration(&text)
                .map_err(|e| invalid(&["default", "timeout"], format!("default:timeout {e}")))?,
        );
    }

    let global_variables = match root.get("variables") {
        None => Vec::new(),
        Some(raw) => parse_variables(raw, &KeyPath::root("variables"))
            .map_err(|e| invalid(&["variables"], e))?,
    };

    let workflow_rules = match root.get("workflow") {
        None | Some(Raw::Null) => None,
        Some(Raw::Map(w)) => match w.get("rules") {
            None | Some(Raw::Null) => None,
            Some(r) => Some(
                parse_rules(r, &KeyPath::root("workflow:rules"), RuleKind::Workflow)
                    .map_err(|e| invalid(&["workflow", "rules"], e))?,
            ),
        },
        Some(_) => {
            return Err(invalid(
                &["workflow"],
                "workflow config should be a hash".into(),
            ))
        }
    };

    let stages = stages(&root).map_err(|e| invalid(&["stages"], e.to_string()))?;

    let mut jobs = Vec::new();
    let mut specs = Vec::new();
    let mut by_name = HashMap::new();
    let mut hidden = Vec::new();
    for name in &order {
        if RESERVED.contains(&name.as_str()) {
            continue;
        }
        let Some(value) = root.get(name) else {
            if let Some(reason) = placeholders.get(name) {
                by_name.insert(name.clone(), jobs.len());
                jobs.push(placeholder_job(name));
                specs.push(broken_spec(reason.clone()));
            }
            continue;
        };
        if name.starts_with('.') {
            hidden.push(name.clone());
            continue;
        }
        let mut unknown_keys = None;
        let parsed = match value {
            Raw::Map(m) => {
                // Before anything else: a misspelt `except:` or `rules:` must not leave a job
                // runnable from chat, so GitLab's refusal of the file is kept. A job without
                // `script:`/`run:`/`trigger:` cannot run anyway (chatops keeps the other jobs
                // then); its unknown keys fail the file only when one looks like a misspelt
                // keyword (`scrpt:`), else they are the reason it cannot run.
                if let Err(unknown) = check_keys(name, m) {
                    let runs = ["script", "run", "trigger"]
                        .iter()
                        .any(|k| m.contains_key(k));
                    if runs || unknown.misspelt {
                        return Err(invalid(&[name, &unknown.first], unknown.message));
                    }
                    unknown_keys = Some(unknown.message);
                }
                parse_job(name, m, &defaults, &unsupported, &budget)
            }
            Raw::Null => Err((
                format!("jobs:{name} config can't be blank"),
                vec![name.clone()],
            )),
            other => Err((
                format!("jobs:{name} config should be a hash, not {}", other.kind()),
                vec![name.clone()],
            )),
        };
        let (mut job, mut spec) = match (parsed, broken.get(name)) {
            (Ok((job, mut spec)), reason) => {
                if let Some(reason) = reason {
                    spec.broken = Some(reason.clone());
                }
                (job, spec)
            }
            // The job is already known to be unusable (an unknown `extends`, a missing
            // `!reference`): what else is wrong with it should not fail the whole file.
            (Err(_), Some(reason)) => (placeholder_job(name), broken_spec(reason.clone())),
            (Err((message, path)), None) => {
                let path: Vec<&str> = path.iter().map(String::as_str).collect();
                return Err(invalid(&path, message));
            }
        };
        if let Some(message) = unknown_keys {
            spec.broken = Some(message);
        }
        if spec.broken.is_none() {
            let stage = job.stage.as_deref().unwrap_or("test");
            if !stages.iter().any(|s| s == stage) {
                let message = format!(
                    "{name} job: chosen stage {stage} does not exist; available stages are {}",
                    stages.join(", ")
                );
                if job.stage.is_none() {
                    // GitLab refuses this too (no `stage:` is `test`), but files written for
                    // chat alone often list only their own stages: the job runs the same, so
                    // `check` says it and the file still loads.
                    warnings.push(format!("{message} (the job has no `stage:`, so `test`)"));
                } else if unsupported.is_empty() {
                    return Err(invalid(&[name, "stage"], message));
                } else {
                    // `stages:` may be in an include chatops cannot read.
                    warnings.push(format!(
                        "{message} (unless `stages:` comes from an include chatops cannot read)"
                    ));
                }
            }
        }
        if job.description.is_none() {
            job.description = comment_description(&files, &origins, name);
        }
        by_name.insert(name.clone(), jobs.len());
        jobs.push(job);
        specs.push(spec);
    }
    if jobs.is_empty() && hidden.is_empty() && root.is_empty() && unsupported.is_empty() {
        return Err(CiError::invalid(
            &main_file,
            None,
            "the configuration is empty; define at least one job",
        ));
    }

    // `rules:exists` needs the repository's file list; read it once, only when used.
    let wants_files = workflow_rules.as_deref().is_some_and(needs_files)
        || specs
            .iter()
            .any(|s| matches!(&s.filter, Filter::Rules(r) if needs_files(r)));
    let files_list = match (wants_files, listing) {
        (false, _) => None,
        (true, Some(l)) => Some(l),
        (true, None) => match source.list() {
            Ok(l) => Some(l),
            Err(e) => {
                warnings.push(format!(
                    "rules:exists cannot list the repository's files ({e}); no file counts as existing"
                ));
                Some(Vec::new())
            }
        },
    };

    Ok(CiConfig {
        jobs,
        specs,
        by_name,
        hidden,
        global_variables,
        workflow_rules,
        files: files_list,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_rank_close_names() {
        let names = ["deploy", "deploy-staging", "build", "test", "lint"];
        let s = suggest("deplyo", names.iter().copied());
        assert_eq!(s.first().map(String::as_str), Some("deploy"));
        assert!(s.len() <= 3);
        assert!(!s.contains(&"lint".to_string()));
        assert!(suggest("zzzzzz", names.iter().copied()).is_empty());
    }

    #[test]
    fn durations_used_by_defaults_parse() {
        assert_eq!(
            parse_duration("10m").ok(),
            Some(std::time::Duration::from_secs(600))
        );
    }
}

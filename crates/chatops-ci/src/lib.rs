//! Reads a project's `.gitlab-ci.yml` as GitLab does and answers what a chat pipeline
//! (`CI_PIPELINE_SOURCE=chat`) for one job would contain.
//!
//! # Layout
//! Two phases (nothing downstream sees raw YAML):
//! 1. Raw tree: `yaml` parses text into an ordered tree (anchors, aliases and merge keys
//!    applied as GitLab's Psych does, `!reference` kept as a tag, alias bombs refused);
//!    `load` reads the `spec:` header and inputs and merges `include:` files; `resolve`
//!    applies `extends:` then `!reference`.
//! 2. Typed configuration: `config` builds [`CiConfig`] from the tree with `job` (scripts,
//!    variables, `default:`/`inherit`) and `rules` (`rules`, `workflow:rules`,
//!    `only`/`except`), whose conditions use the `expr` expression language.
//!
//! Support: `source` ([`Source`], [`DirSource`]), `variables` ([`Variables`], `$VAR`
//! expansion), `duration` ([`parse_duration`]), `glob` (include globs and `rules:exists`),
//! `error` ([`CiError`]).
//!
//! Where GitLab would refuse a whole file for one job's sake (an unknown `extends`, a missing
//! `!reference`, a job without `script`, a missing local include), chatops keeps the other
//! jobs: the affected job is listed and [`CiConfig::evaluate`] says why it cannot run.

mod config;
mod duration;
mod error;
mod expr;
mod glob;
mod job;
mod load;
mod resolve;
mod rules;
mod source;
mod variables;
mod yaml;

pub use config::{CiConfig, Decision, Lookup};
pub use duration::parse_duration;
pub use error::CiError;
pub use job::{Job, When, DESCRIPTION_VARIABLE};
pub use source::{DirSource, Source};
pub use variables::Variables;

/// Loads and resolves the CI file `ci_file` (repository-relative) from `source`.
///
/// Errors name the file and, for YAML errors, the line:
/// `.gitlab-ci.yml:12: mapping values are not allowed in this context`.
pub fn load(source: &dyn Source, ci_file: &str) -> Result<CiConfig, CiError> {
    load_with(source, ci_file, &Variables::new())
}

/// Same as [`load`] from text already in memory (tests, benchmarks); includes are read from
/// `source`.
pub fn load_str(source: &dyn Source, ci_file: &str, text: &str) -> Result<CiConfig, CiError> {
    load_str_with(source, ci_file, text, &Variables::new())
}

/// [`load`] with the predefined and project variables that `include:` paths and
/// `include: rules:` may use (`CI_PIPELINE_SOURCE` defaults to `chat`).
pub fn load_with(
    source: &dyn Source,
    ci_file: &str,
    vars: &Variables,
) -> Result<CiConfig, CiError> {
    let path = ci_file.trim_start_matches('/');
    let text = match source.read(path) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(CiError::NotFound {
                file: ci_file.to_string(),
                hint: "add it to the repository, or set `ci_file` in the project's configuration"
                    .into(),
            })
        }
        Err(e) => {
            return Err(CiError::Read {
                file: ci_file.to_string(),
                reason: e.to_string(),
            })
        }
    };
    load_str_with(source, ci_file, &text, vars)
}

/// Parses a `rules:if` / `only:variables` expression and evaluates it with `vars` (no other
/// variables are defined): what a rule's `if:` decides. `Err` is the parse error, in GitLab's
/// words where it has them. For tools and fuzzing; loading a file evaluates rules itself.
pub fn eval_expression(text: &str, vars: &Variables) -> Result<bool, String> {
    let expr = expr::Expr::parse(text)?;
    Ok(expr.truthful(&|name: &str| vars.get(name).map(str::to_string)))
}

/// [`load_str`] with variables, as [`load_with`].
pub fn load_str_with(
    source: &dyn Source,
    ci_file: &str,
    text: &str,
    vars: &Variables,
) -> Result<CiConfig, CiError> {
    let mut loaded = load::load_tree(source, ci_file, text, vars)?;
    resolve::resolve(&mut loaded)?;
    config::build(loaded, source)
}

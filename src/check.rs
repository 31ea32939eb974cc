//! `chatops check`: loads every project's CI file and says, job by job, whether a chat pipeline
//! would contain it (contract §1).

use crate::config::Config;
use chatops_ci::{Decision, Source};
use chatops_pipeline::cicache::include_variables;
use chatops_pipeline::git::{self, GitSource, Revision};
use chatops_pipeline::pipeline::load_ci_blocking;
use chatops_pipeline::ProjectSettings;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub projects: Vec<ProjectReport>,
    /// The config's warnings (no platform, no project, the demo secret). Additive key.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ProjectReport {
    pub name: String,
    pub command: String,
    /// git: the branch the CI file was read from; `null` for a plain folder (or when the
    /// repository could not be read). Additive key.
    pub branch: Option<String>,
    /// git: the commit the CI file was read from. Additive key.
    pub commit: Option<String>,
    pub error: Option<String>,
    pub jobs: Vec<JobReport>,
    /// Non-fatal notes (unsupported includes...). Not in the contract's example; extra keys are
    /// additive.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct JobReport {
    pub name: String,
    pub runnable: bool,
    pub when: Option<String>,
    pub reason: Option<String>,
    /// What the job does, as `help` shows it (a comment above the job, or its
    /// `CHAT_DESCRIPTION` variable); `null` when the CI file gives none. Additive to the
    /// contract's example.
    pub description: Option<String>,
}

pub fn check(config: &Config) -> CheckReport {
    let mut projects = Vec::new();
    for project in &config.projects {
        let mut report = ProjectReport {
            name: project.name.to_string(),
            command: project.command.clone(),
            branch: None,
            commit: None,
            error: None,
            jobs: Vec::new(),
            warnings: Vec::new(),
        };
        match load_ci_blocking(project) {
            Err(e) => {
                // The revision, when git can still name it, says what was read; a CI file that
                // is only in the work tree is the usual surprise.
                let revision = git::resolve(&project.repository, project.branch.as_deref()).ok();
                if let Some(revision) = &revision {
                    report.set_revision(revision);
                }
                let hint = match revision {
                    Some(r) => not_committed(project, &r),
                    None => not_committed_unborn(project),
                };
                report.error = Some(hint.unwrap_or_else(|| e.to_string()));
            }
            Ok((revision, ci)) => {
                report.set_revision(&revision);
                let vars = include_variables(project, &revision);
                report.warnings = ci.warnings().to_vec();
                for job in ci.jobs() {
                    report.jobs.push(match ci.evaluate(job, &vars) {
                        Decision::Run { when, .. } => JobReport {
                            name: job.name.clone(),
                            runnable: true,
                            when: Some(when.as_str().to_owned()),
                            reason: None,
                            description: job.description.clone(),
                        },
                        Decision::Excluded { reason } => JobReport {
                            name: job.name.clone(),
                            runnable: false,
                            when: None,
                            reason: Some(reason),
                            description: job.description.clone(),
                        },
                    });
                }
            }
        }
        projects.push(report);
    }
    CheckReport {
        ok: projects.iter().all(|p| p.error.is_none()),
        projects,
        warnings: config.warnings.clone(),
    }
}

impl ProjectReport {
    fn set_revision(&mut self, revision: &Revision) {
        if let Revision::Git { sha, branch, .. } = revision {
            self.branch = Some(branch.clone());
            self.commit = Some(sha.clone());
        }
    }
}

/// For a git repository whose default branch has no commit yet (`git init`, nothing
/// committed) but whose work tree holds the CI file: the message that says so.
fn not_committed_unborn(project: &ProjectSettings) -> Option<String> {
    let repo = &project.repository;
    let file = project.ci_file.trim_start_matches('/');
    if project.branch.is_some() || !git::is_git_repository(repo) || !repo.join(file).is_file() {
        return None;
    }
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["symbolic-ref", "--short", "HEAD"])
        .output()
        .ok()?;
    let branch = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Some(format!(
        "{file}: found in the work tree but not committed on {branch} (the branch has no commit yet): chatops reads the branch's last commit, not the work tree. Commit it (git add {file} && git commit)."
    ))
}

/// For a git project whose CI file is absent from the commit read but present in the work
/// tree: the message that says so (chatops reads the branch's HEAD, never the work tree).
fn not_committed(project: &ProjectSettings, revision: &Revision) -> Option<String> {
    let Revision::Git {
        repo, sha, branch, ..
    } = revision
    else {
        return None;
    };
    let file = project.ci_file.trim_start_matches('/');
    let in_commit = GitSource::new(repo, sha.clone()).read(file).ok()?;
    if in_commit.is_some() || !repo.join(file).is_file() {
        return None;
    }
    Some(format!(
        "{file}: found in the work tree but not committed on {branch} (commit {sha}): chatops reads the branch's last commit, not the work tree. Commit it (git add {file} && git commit), or set `branch:` to the branch that has it."
    ))
}

/// The human-readable form.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for w in &report.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    for p in &report.projects {
        match (&p.branch, &p.commit) {
            (Some(branch), Some(commit)) => out.push_str(&format!(
                "{} ({}): branch {branch}, commit {commit}\n",
                p.name, p.command
            )),
            _ => out.push_str(&format!("{} ({})\n", p.name, p.command)),
        }
        if let Some(e) = &p.error {
            out.push_str(&format!("  error: {e}\n"));
            continue;
        }
        for w in &p.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        let width = p.jobs.iter().map(|j| j.name.len()).max().unwrap_or(0);
        for j in &p.jobs {
            let (mark, why) = if j.runnable {
                ("runs ", j.when.clone().unwrap_or_default())
            } else {
                ("never", j.reason.clone().unwrap_or_default())
            };
            match &j.description {
                Some(d) => out.push_str(&format!("  {mark}  {:width$}  {why} — {d}\n", j.name)),
                None => out.push_str(&format!("  {mark}  {:width$}  {why}\n", j.name)),
            }
        }
        if p.jobs.is_empty() {
            out.push_str("  (no jobs)\n");
        }
    }
    out
}

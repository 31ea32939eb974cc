//! `chatops check`: loads every project's CI file and says, job by job, whether a chat pipeline
//! would contain it (contract §1).

use crate::config::Config;
use chatops_ci::Decision;
use chatops_pipeline::cicache::include_variables;
use chatops_pipeline::pipeline::load_ci_blocking;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub projects: Vec<ProjectReport>,
}

#[derive(Debug, Serialize)]
pub struct ProjectReport {
    pub name: String,
    pub command: String,
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
            error: None,
            jobs: Vec::new(),
            warnings: Vec::new(),
        };
        match load_ci_blocking(project) {
            Err(e) => report.error = Some(e),
            Ok((revision, ci)) => {
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
    }
}

/// The human-readable form.
pub fn render_text(report: &CheckReport) -> String {
    let mut out = String::new();
    for p in &report.projects {
        out.push_str(&format!("{} ({})\n", p.name, p.command));
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

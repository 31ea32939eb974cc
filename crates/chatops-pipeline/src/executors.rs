//! [`Executors`]: the executors a server has, and which one runs a project's jobs.

use crate::settings::{ExecutorKind, ProjectSettings};
use chatops_exec::{Executor, LocalExecutor};
use std::sync::Arc;

/// The executors this server can run jobs with; the watcher picks one per project
/// (`projects.<name>.executor`).
#[derive(Clone)]
pub struct Executors {
    /// `executor: local`: a shell on this host.
    pub local: Arc<dyn Executor>,
    /// `executor: runner`: GitLab runners polling this server; `None` when none is set up.
    pub runner: Option<Arc<dyn Executor>>,
}

impl Executors {
    /// The shell executor only: what a server without runners has.
    pub fn local_only() -> Executors {
        Executors {
            local: Arc::new(LocalExecutor),
            runner: None,
        }
    }

    /// The executor for `project`'s jobs, or what to tell the user when it has none.
    pub fn for_project(&self, project: &ProjectSettings) -> Result<Arc<dyn Executor>, String> {
        match project.executor {
            ExecutorKind::Local => Ok(Arc::clone(&self.local)),
            ExecutorKind::Runner => self.runner.clone().ok_or_else(|| {
                let name = &project.name;
                format!(
                    "project `{name}` runs its jobs on GitLab runners (`projects.{name}.executor: runner`), \
                     but this server has no runners set up: add them to the config, \
                     or set `projects.{name}.executor: local`"
                )
            }),
        }
    }
}

impl Default for Executors {
    fn default() -> Executors {
        Executors::local_only()
    }
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("local", &self.local.name())
            .field("runner", &self.runner.as_ref().map(|r| r.name()))
            .finish()
    }
}

//! [`Executors`]: the executors a server has, and which one runs a project's jobs.

use crate::error::PipelineError;
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
    pub fn for_project(
        &self,
        project: &ProjectSettings,
    ) -> Result<Arc<dyn Executor>, PipelineError> {
        match project.executor {
            ExecutorKind::Local => Ok(Arc::clone(&self.local)),
            ExecutorKind::Runner => self.runner.clone().ok_or_else(|| PipelineError::NoRunners {
                project: project.name.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use chatops_exec::{BoxFuture, ExecHandle, ExecResult, ExecSpec};

    /// An executor that never runs anything: only its name matters here.
    struct Elsewhere;

    impl Executor for Elsewhere {
        fn name(&self) -> &'static str {
            "runner"
        }

        fn needs_workdir(&self) -> bool {
            false
        }

        fn start(
            &self,
            _spec: ExecSpec,
        ) -> std::io::Result<(ExecHandle, BoxFuture<'static, ExecResult>)> {
            Err(std::io::Error::other("not in this test"))
        }
    }

    fn project(executor: ExecutorKind) -> ProjectSettings {
        ProjectSettings {
            executor,
            tags: vec!["linux".into()],
            ..ProjectSettings::for_tests("ops", std::path::Path::new("."))
        }
    }

    #[test]
    fn each_project_gets_the_executor_it_names() {
        let mut executors = Executors::local_only();
        let local = executors
            .for_project(&project(ExecutorKind::Local))
            .expect("local is always there");
        assert_eq!((local.name(), local.needs_workdir()), ("shell", true));
        let e = executors
            .for_project(&project(ExecutorKind::Runner))
            .err()
            .expect("no runner executor installed");
        assert!(matches!(&e, PipelineError::NoRunners { project } if project.as_str() == "ops"));
        let message = e.to_string();
        assert!(
            message.contains("projects.ops.executor: runner")
                && message.contains("projects.ops.executor: local"),
            "{message}"
        );
        executors.runner = Some(Arc::new(Elsewhere));
        let runner = executors
            .for_project(&project(ExecutorKind::Runner))
            .expect("installed now");
        assert_eq!((runner.name(), runner.needs_workdir()), ("runner", false));
    }
}

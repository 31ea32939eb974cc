//! [`PipelineError`]: what the pipeline's fallible public API can fail with. Each message says
//! what happened and what to do; chat replies wrap it (see [`crate::messages`]).

use crate::git::GitError;
use chatops_core::ProjectName;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The project's repository could not be read at its branch.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The project's CI file could not be loaded (with file and line where known).
    #[error(transparent)]
    Ci(#[from] chatops_ci::CiError),
    /// `executor: runner`, and this server has no runner executor.
    #[error(
        "project `{project}` runs its jobs on GitLab runners (`projects.{project}.executor: runner`), \
         but this server has no runners set up: add them to the config, \
         or set `projects.{project}.executor: local`"
    )]
    NoRunners { project: ProjectName },
}

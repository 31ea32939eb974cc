//! The `201` JobResponse a runner gets with a job (runner-protocol §2.4–§2.5): what the Go
//! runner, Collabora's client and gitlab-python-runner read from it.

use crate::{RunnerConfig, RunnerJobSpec, Source, Variable};
use serde_json::{json, Value};

/// The failure reasons runners may send us verbatim (so cancels and runner shutdowns are told
/// apart from script failures).
const FAILURE_REASONS: &[&str] = &[
    "script_failure",
    "runner_system_failure",
    "job_execution_timeout",
    "unknown_failure",
    "image_pull_failure",
    "runner_configuration_error",
    "runner_external_dependency_failure",
    "runner_unsupported",
    "runner_interrupted",
    "job_canceled",
];

/// Why a response cannot be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponseError {
    #[error("server.public_url {url:?} is not an absolute http(s) URL: {why}")]
    PublicUrl { url: String, why: String },
}

/// The URLs a job's runner uses, derived from `public_url`.
struct Urls {
    server: String,
    host: String,
    repo: String,
}

fn urls(config: &RunnerConfig, project: &str, job_token: &str) -> Result<Urls, ResponseError> {
    let server = config.public_url.trim_end_matches('/').to_owned();
    let bad = |why: String| ResponseError::PublicUrl {
        url: config.public_url.clone(),
        why,
    };
    let mut repo =
        url::Url::parse(&format!("{server}/git/{project}.git")).map_err(|e| bad(e.to_string()))?;
    let host = repo
        .host_str()
        .ok_or_else(|| bad("no host".into()))?
        .to_owned();
    let host = match repo.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    };
    repo.set_username("gitlab-ci-token")
        .and_then(|()| repo.set_password(Some(job_token)))
        .map_err(|()| bad("cannot carry credentials".into()))?;
    Ok(Urls {
        server,
        host,
        repo: repo.to_string(),
    })
}

fn var(key: &str, value: impl Into<String>) -> Variable {
    Variable::new(key, value)
}

/// The JobResponse JSON for `spec`, offered with `job_token` (attempt `attempt`).
pub(crate) fn job_response(
    config: &RunnerConfig,
    spec: &RunnerJobSpec,
    job_token: &str,
) -> Result<Value, ResponseError> {
    let urls = urls(config, &spec.project, job_token)?;
    let id = spec.job_id.to_string();
    let timeout = spec.timeout.as_secs().max(1);
    let (sha, branch) = match &spec.source {
        Source::Git { sha, branch, .. } => (sha.clone(), branch.clone()),
        Source::Folder(_) => ("0".repeat(40), String::new()),
    };
    let mut variables = vec![
        var("CI", "true"),
        var("GITLAB_CI", "true"),
        var("CI_SERVER_URL", urls.server.clone()),
        var("CI_SERVER_HOST", urls.host.clone()),
        var("CI_JOB_ID", id.clone()),
        var("CI_JOB_NAME", spec.job_name.clone()),
        var("CI_JOB_STAGE", spec.stage.clone()),
        var("CI_JOB_URL", format!("{}/jobs/{id}", urls.server)),
        Variable {
            masked: true,
            public: false,
            ..var("CI_JOB_TOKEN", job_token)
        },
        Variable {
            public: false,
            ..var("CI_REPOSITORY_URL", urls.repo.clone())
        },
        var("CI_PIPELINE_ID", id.clone()),
        var("CI_PIPELINE_SOURCE", "chat"),
        var("CI_PROJECT_NAME", spec.project.clone()),
        var("CI_PROJECT_PATH", spec.project.clone()),
        var("CI_CONFIG_PATH", ".gitlab-ci.yml"),
        var("CI_COMMIT_SHA", sha.clone()),
        var("CI_COMMIT_SHORT_SHA", sha[..8.min(sha.len())].to_owned()),
        // gitlab-python-runner runs `steps` only with this; otherwise it re-reads the CI file.
        var("GITLAB_PYTHON_RUNNER_COMPUTED", "1"),
    ];
    if branch.is_empty() {
        variables.push(var("GIT_STRATEGY", "none"));
    } else {
        variables.push(var("CI_COMMIT_REF_NAME", branch.clone()));
        variables.push(var("CI_COMMIT_BRANCH", branch.clone()));
    }
    variables.extend(spec.variables.iter().cloned());
    let mut script = spec.before_script.clone();
    script.extend(spec.script.iter().cloned());
    let mut steps = vec![json!({
        "name": "script", "script": script, "timeout": timeout,
        "when": "on_success", "allow_failure": false,
    })];
    if !spec.after_script.is_empty() {
        steps.push(json!({
            "name": "after_script", "script": spec.after_script, "timeout": timeout,
            "when": "always", "allow_failure": true,
        }));
    }
    let git_info = if branch.is_empty() {
        json!({"repo_url": urls.repo, "repo_object_format": "sha1", "ref": "", "sha": sha,
               "before_sha": "0".repeat(40), "ref_type": "branch", "refspecs": [], "depth": 0,
               "protected": false})
    } else {
        // The sha may no longer be the branch tip: the git remote allows fetching any
        // reachable sha, and the branch refspec brings its history.
        json!({"repo_url": urls.repo, "repo_object_format": "sha1", "ref": branch, "sha": sha,
               "before_sha": "0".repeat(40), "ref_type": "branch",
               "refspecs": [format!("+refs/heads/{branch}:refs/remotes/origin/{branch}"),
                            format!("+{sha}:refs/chatops/{id}")],
               "depth": 0, "protected": false})
    };
    Ok(json!({
        "id": spec.job_id,
        "token": job_token,
        "allow_git_fetch": !branch.is_empty(),
        "job_info": {
            "id": spec.job_id, "name": spec.job_name, "stage": spec.stage,
            "pipeline_id": spec.job_id, "project_id": 1, "project_name": spec.project,
            "project_full_path": spec.project, "time_in_queue_seconds": 0,
            "queue_size": 0, "queue_depth": 0,
        },
        "git_info": git_info,
        "runner_info": {"timeout": timeout},
        "inputs": [],
        "variables": variables,
        "steps": steps,
        "image": null,
        "services": [],
        "artifacts": [],
        "cache": [],
        "credentials": [],
        "dependencies": [],
        "features": {
            "trace_sections": true,
            "token_mask_prefixes": ["glcbt-", "glrt-"],
            "failure_reasons": FAILURE_REASONS,
        },
    }))
}

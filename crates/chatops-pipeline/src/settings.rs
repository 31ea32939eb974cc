//! What the pipeline needs to know about the server and its projects. The binary builds these
//! from the config file; the pipeline never reads YAML.

use chatops_core::{PlatformId, ProjectName, Role, UserId};
use std::path::PathBuf;
use std::time::Duration;

/// Server-wide settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Job logs live in `data_dir/logs`, checkouts and scripts in `data_dir/builds`.
    pub data_dir: PathBuf,
    /// Base of the job-page links put in replies (`{public_url}/jobs/{id}?t=...`).
    pub public_url: String,
    /// Jobs running at once on this server; more wait in a queue.
    pub max_concurrent_jobs: usize,
    /// The key that signs job-page links.
    pub link_key: Vec<u8>,
    /// Overrides every platform's reply-webhook window (Slack's 30 minutes). For tests and
    /// unusual proxies; `None` keeps each platform's own.
    pub response_window: Option<Duration>,
    /// On shutdown, how long running jobs may finish before they are stopped.
    pub shutdown_grace: Duration,
    /// `server.manual_job_ttl`: how long a manual job waits to be played before it expires;
    /// `None`: it waits for ever (in the store, not in memory).
    pub manual_job_ttl: Option<Duration>,
    /// Live progress (`server.live_progress`, `server.progress_interval`): how often at most a
    /// running job's status message is edited; `None`: no status message, one reply at the end.
    pub progress_interval: Option<Duration>,
    pub projects: Vec<ProjectSettings>,
    /// The server's own secrets (platform signing secrets and tokens, the link key as hex):
    /// masked in every job's output like the projects' secrets.
    pub server_secrets: Vec<String>,
}

/// One configured project.
#[derive(Clone, Debug)]
pub struct ProjectSettings {
    pub name: ProjectName,
    /// The slash command that addresses the project, e.g. `/demo`.
    pub command: String,
    /// A git work tree (or bare repository), or a plain folder.
    pub repository: PathBuf,
    /// git only: the branch to read and run; `None` = the repository's default branch (HEAD).
    pub branch: Option<String>,
    pub ci_file: String,
    /// Job timeout when the job sets none.
    pub timeout: Duration,
    /// Jobs of this project running at once, within the server's limit.
    pub max_concurrent_jobs: usize,
    pub variables: Vec<(String, String)>,
    /// Variables whose values are masked in logs and replies.
    pub secrets: Vec<(String, String)>,
    pub default_role: Role,
    pub members: Vec<Member>,
    /// Jobs run as this user (`projects.<name>.job_user`, else `server.job_user`); `None`: as
    /// the server's user.
    pub job_user: Option<chatops_exec::JobUser>,
    /// `projects.<name>.executor`: where the project's jobs run.
    pub executor: ExecutorKind,
    /// `projects.<name>.tags`: which runners may take the project's jobs (`executor: runner`).
    pub tags: Vec<String>,
}

/// Where a project's jobs run (`projects.<name>.executor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExecutorKind {
    /// In a shell on the chatops host (the default).
    #[default]
    Local,
    /// On a GitLab Runner that polls chatops for jobs.
    Runner,
}

impl ExecutorKind {
    /// The config value that names it.
    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Runner => "runner",
        }
    }

    /// Parses the config value; `None` for anything but `local` and `runner`.
    pub fn parse(value: &str) -> Option<ExecutorKind> {
        match value {
            "local" => Some(ExecutorKind::Local),
            "runner" => Some(ExecutorKind::Runner),
            _ => None,
        }
    }
}

impl std::fmt::Display for ExecutorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A chat user's role in a project.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub platform: PlatformId,
    pub user: UserId,
    pub role: Role,
}

impl ProjectSettings {
    /// A project for unit tests: `name`, the folder `root`, developers by default, one job
    /// at a time, a minute's timeout, run locally.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, root: &std::path::Path) -> ProjectSettings {
        ProjectSettings {
            name: ProjectName::new(name),
            command: format!("/{name}"),
            repository: root.to_owned(),
            branch: None,
            ci_file: ".gitlab-ci.yml".into(),
            timeout: Duration::from_secs(60),
            max_concurrent_jobs: 1,
            variables: vec![],
            secrets: vec![],
            default_role: Role::Developer,
            members: vec![],
            job_user: None,
            executor: ExecutorKind::Local,
            tags: vec![],
        }
    }

    /// The role of a chat user: their `members` entry, else `default_role`.
    pub fn role_of(&self, platform: &PlatformId, user: &UserId) -> Role {
        self.members
            .iter()
            .find(|m| &m.platform == platform && &m.user == user)
            .map(|m| m.role)
            .unwrap_or(self.default_role)
    }

    /// The non-empty secret values, for masking.
    pub fn secret_values(&self) -> Vec<String> {
        self.secrets
            .iter()
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
            .collect()
    }
}

impl Settings {
    /// Every value masked in job output, logs and replies: all projects' secrets (a job of one
    /// project may print another's, e.g. read from a shared file) and the server's own.
    pub fn masked_values(&self) -> Vec<String> {
        let mut values: Vec<String> = self
            .projects
            .iter()
            .flat_map(ProjectSettings::secret_values)
            .chain(
                self.server_secrets
                    .iter()
                    .filter(|v| !v.is_empty())
                    .cloned(),
            )
            .collect();
        values.sort_unstable();
        values.dedup();
        values
    }

    /// The project a slash command addresses (`/demo`), case-insensitively as platforms do.
    pub fn project_for_command(&self, slash_command: &str) -> Option<&ProjectSettings> {
        let wanted = slash_command.trim();
        self.projects
            .iter()
            .find(|p| p.command.eq_ignore_ascii_case(wanted))
    }

    pub fn project(&self, name: &ProjectName) -> Option<&ProjectSettings> {
        self.projects.iter().find(|p| &p.name == name)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.data_dir.join("logs")
    }

    pub fn builds_dir(&self) -> PathBuf {
        self.data_dir.join("builds")
    }

    pub fn log_path(&self, job: chatops_core::JobId) -> PathBuf {
        self.logs_dir().join(format!("{job}.log"))
    }

    /// The SQLite ledger of commands, jobs and replies.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join("chatops.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_override_default_role() {
        let project = ProjectSettings {
            name: ProjectName::new("demo"),
            command: "/demo".into(),
            repository: PathBuf::from("."),
            branch: None,
            ci_file: ".gitlab-ci.yml".into(),
            timeout: Duration::from_secs(3600),
            max_concurrent_jobs: 16,
            variables: vec![],
            secrets: vec![("T".into(), "s3cret".into()), ("E".into(), String::new())],
            default_role: Role::Guest,
            members: vec![Member {
                platform: PlatformId::new("slack"),
                user: UserId::new("U1"),
                role: Role::Maintainer,
            }],
            job_user: None,
            executor: ExecutorKind::Local,
            tags: vec![],
        };
        let slack = PlatformId::new("slack");
        assert_eq!(
            project.role_of(&slack, &UserId::new("U1")),
            Role::Maintainer
        );
        assert_eq!(project.role_of(&slack, &UserId::new("U2")), Role::Guest);
        // The same id on another platform is another person.
        assert_eq!(
            project.role_of(&PlatformId::new("mattermost"), &UserId::new("U1")),
            Role::Guest
        );
        assert_eq!(project.secret_values(), vec!["s3cret".to_string()]);
    }
}

//! The configuration file (contract §2): YAML, `${NAME}` / `${NAME:-default}` expanded from the
//! environment in every string, unknown keys refused, paths relative to the file's folder.
//! Errors name the file and line and say what to do.

use chatops_core::{PlatformId, ProjectName, Role, UserId};
use chatops_discord::DiscordConfig;
use chatops_mattermost::MattermostConfig;
use chatops_pipeline::{ExecutorKind, Member, ProjectSettings};
use serde::Deserialize;
use serde_yaml::{Mapping, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config `chatops serve` uses when no file is named and `config/chatops.yaml` is absent:
/// the demo, with paths relative to this repository's `config/` folder.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/chatops.yaml");

/// Where the embedded default's relative paths point.
pub fn embedded_base() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// A config error: which file, which line (when known), what is wrong and what to do.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// `server:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `address:port` to listen on; port 0 picks a free port (logged at start).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base URL for links to job pages in replies; default `http://<listen address>`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where the store and job logs live; created when missing.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Jobs running at once on this server; more wait in a queue.
    #[serde(default = "default_max_jobs")]
    pub max_concurrent_jobs: usize,
    /// On SIGTERM/SIGINT, how long running jobs may finish before they are stopped.
    #[serde(default = "default_grace")]
    pub shutdown_grace: String,
    /// Overrides every platform's reply-webhook window (Slack and Mattermost: 30 minutes).
    /// Leave unset; tests shorten it to see what happens after the window.
    #[serde(default)]
    pub response_window: Option<String>,
    /// Run jobs as this system user (who cannot read `data_dir`) instead of the server's user.
    /// Needs the server to run as root. Per project: `projects.<name>.job_user`.
    #[serde(default)]
    pub job_user: Option<String>,
    /// How long a `when: manual` job waits to be played before it expires (a duration like
    /// `7d` or `12h`); unset: it waits for ever (in the store, costing no memory).
    #[serde(default)]
    pub manual_job_ttl: Option<String>,
    /// Live progress: when a job starts, post a status message and edit it with the end of
    /// the log while the job runs, then with the result (Slack and Mattermost with a bot
    /// token, Discord always). `false`: one reply at the end, as without a bot token.
    #[serde(default = "default_live_progress")]
    pub live_progress: bool,
    /// How often at most the status message is edited while a job runs (default `2s`).
    #[serde(default = "default_progress_interval")]
    pub progress_interval: String,
}

/// `server.public_url`, else `http://<bound>`.
fn public_url_of(server: &ServerConfig, bound: &str) -> String {
    server
        .public_url
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("http://{bound}"))
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}
fn default_max_jobs() -> usize {
    64
}
fn default_grace() -> String {
    "30s".into()
}
fn default_live_progress() -> bool {
    true
}
fn default_progress_interval() -> String {
    "2s".into()
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            public_url: None,
            data_dir: default_data_dir(),
            max_concurrent_jobs: default_max_jobs(),
            shutdown_grace: default_grace(),
            response_window: None,
            job_user: None,
            manual_job_ttl: None,
            live_progress: default_live_progress(),
            progress_interval: default_progress_interval(),
        }
    }
}

/// The whole file, as typed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    slack: Option<chatops_slack::SlackConfig>,
    #[serde(default)]
    mattermost: Option<MattermostConfig>,
    #[serde(default)]
    discord: Option<DiscordConfig>,
    /// GitLab runners that may take jobs of `executor: runner` projects.
    #[serde(default)]
    runners: Option<crate::runners::RunnersSection>,
    #[serde(default)]
    projects: Mapping,
}

/// `projects.<name>:`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    /// The slash command that addresses the project; default `/<name>`.
    #[serde(default)]
    command: Option<String>,
    /// A git work tree (or bare repository), or a plain folder.
    repository: PathBuf,
    /// git only: default the repository's default branch (HEAD).
    #[serde(default)]
    branch: Option<String>,
    #[serde(default = "default_ci_file")]
    ci_file: String,
    /// Default job timeout when the job sets none (GitLab duration: `1h`, `90 minutes`...).
    #[serde(default)]
    timeout: Option<Value>,
    /// Jobs of this project running at once, within the server's limit.
    #[serde(default = "default_project_jobs")]
    max_concurrent_jobs: usize,
    #[serde(default)]
    variables: Mapping,
    #[serde(default)]
    secrets: Mapping,
    #[serde(default)]
    default_role: Role,
    #[serde(default)]
    members: Vec<Mapping>,
    /// Run this project's jobs as this system user (overrides `server.job_user`).
    #[serde(default)]
    job_user: Option<String>,
    /// Where the project's jobs run: `local` (a shell on this host, the default) or `runner`
    /// (GitLab runners polling chatops).
    #[serde(default)]
    executor: Option<String>,
    /// Runner tags the project's jobs need (`executor: runner`).
    #[serde(default)]
    tags: Vec<String>,
}

fn default_ci_file() -> String {
    ".gitlab-ci.yml".into()
}
fn default_project_jobs() -> usize {
    16
}

/// The loaded configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from (or `<embedded default>`).
    pub source: PathBuf,
    pub server: ServerConfig,
    /// `server.data_dir`, absolute.
    pub data_dir: PathBuf,
    pub shutdown_grace: Duration,
    /// `server.response_window`, parsed.
    pub response_window: Option<Duration>,
    /// `server.manual_job_ttl`, parsed.
    pub manual_job_ttl: Option<Duration>,
    /// `server.progress_interval`, parsed; `None` when `server.live_progress` is off.
    pub progress_interval: Option<Duration>,
    pub slack: Option<chatops_slack::SlackConfig>,
    /// `mattermost:`, validated; `None` turns Mattermost off.
    pub mattermost: Option<MattermostConfig>,
    /// `discord:`, validated; `None` turns Discord off.
    pub discord: Option<DiscordConfig>,
    /// `runners:`, validated (the coordinator's settings need the URL the server is reached at:
    /// [`crate::runners::RunnersSection::settings`]); `None`: no runner API.
    pub runners: Option<crate::runners::RunnersSection>,
    pub projects: Vec<ProjectSettings>,
    /// Things worth a warning at start (e.g. the demo signing secret).
    pub warnings: Vec<String>,
}

/// The secret the demo config falls back to; the server warns when it is in use.
pub const DEMO_SLACK_SECRET: &str = "chatops-demo-signing-secret";

/// The top-level sections that configure a chat platform.
const PLATFORM_SECTIONS: [&str; 3] = ["slack", "mattermost", "discord"];

/// What the config is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// `serve`, `check`, `run`: everything must be complete, platform secrets included.
    Full,
    /// `jobs`, `log`: only the store is read, so the platform sections are not needed. An unset
    /// `${VAR}` inside them is tolerated and they are left out of the result (`None`): an
    /// operator can list jobs without the server's secrets in the environment.
    ReadOnly,
}

impl Config {
    /// Loads `path`, or (when `path` is `None`) `$CHATOPS_CONFIG`, else `config/chatops.yaml`,
    /// else the embedded default.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load_as(path, LoadMode::Full)
    }

    /// [`Config::load`] for `mode`.
    pub fn load_as(path: Option<&Path>, mode: LoadMode) -> Result<Config, ConfigError> {
        let env_path = std::env::var_os("CHATOPS_CONFIG").map(PathBuf::from);
        let chosen = path.map(Path::to_path_buf).or(env_path);
        match chosen {
            Some(p) => Config::load_file_as(&p, mode),
            None => {
                let default = PathBuf::from("config/chatops.yaml");
                if default.exists() {
                    Config::load_file_as(&default, mode)
                } else {
                    Config::from_text_as(
                        EMBEDDED_DEFAULT,
                        Path::new("<embedded default config>"),
                        &embedded_base(),
                        &|name| std::env::var(name).ok(),
                        mode,
                    )
                }
            }
        }
    }

    pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
        Config::load_file_as(path, LoadMode::Full)
    }

    fn load_file_as(path: &Path, mode: LoadMode) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            message: format!(
                "cannot read the config file: {e}. Pass --config FILE or set CHATOPS_CONFIG."
            ),
        })?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::fs::canonicalize(base).unwrap_or_else(|_| base.to_owned());
        Config::from_text_as(&text, path, &base, &|name| std::env::var(name).ok(), mode)
    }

    /// Parses config text; `env` looks variables up (injectable for tests).
    pub fn from_text(
        text: &str,
        file: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::from_text_as(text, file, base, env, LoadMode::Full)
    }

    /// [`Config::from_text`] for `mode`.
    pub fn from_text_as(
        text: &str,
        file: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
        mode: LoadMode,
    ) -> Result<Config, ConfigError> {
        let err = |line: Option<usize>, message: String| ConfigError {
            file: file.to_owned(),
            line,
            message,
        };
        let mut value: Value = serde_yaml::from_str(text).map_err(|e| {
            err(
                e.location().map(|l| l.line()),
                format!("not valid YAML: {e}"),
            )
        })?;
        if value.is_null() {
            value = Value::Mapping(Mapping::new());
        }
        // Read-only commands never use the platform sections: an unset variable there expands
        // to nothing instead of failing (the sections are dropped below).
        let lenient: &[&str] = match mode {
            LoadMode::ReadOnly => &PLATFORM_SECTIONS,
            LoadMode::Full => &[],
        };
        expand_top_level(&mut value, env, lenient).map_err(|(path, msg)| {
            let line = msg
                .split('`')
                .nth(1)
                .and_then(|needle| line_of_text(text, needle))
                .or_else(|| line_of_path(text, &path));
            err(line, msg)
        })?;
        check_snowflake_quoted(&value)
            .map_err(|(path, msg)| err(line_of_path(text, &path), msg))?;
        let mut raw: RawConfig =
            typed(value, &[]).map_err(|(path, msg)| err(line_of_path(text, &path), msg))?;
        let mut warnings = Vec::new();
        match mode {
            LoadMode::ReadOnly => {
                raw.slack = None;
                raw.mattermost = None;
                raw.discord = None;
            }
            LoadMode::Full => {
                if raw.slack.is_none() && raw.mattermost.is_none() && raw.discord.is_none() {
                    warnings.push(
                        "no chat platform is configured: the server takes no commands. Add a `slack:`, `mattermost:` or `discord:` section (see docs/config.md)."
                            .to_owned(),
                    );
                }
                if raw.projects.is_empty() {
                    warnings.push(
                        "no project is configured: chat commands have nothing to run. Add one under `projects:` (see docs/config.md)."
                            .to_owned(),
                    );
                }
            }
        }
        // What serde cannot check, each adapter's `validate()` does; its message names the key
        // (`mattermost.tokens`), which gives the line.
        if let Some(slack) = &raw.slack {
            slack.validate().map_err(|e| {
                let message = e.to_string();
                err(section_line(text, "slack", &message), message)
            })?;
        }
        if let Some(mattermost) = &raw.mattermost {
            mattermost.validate().map_err(|e| {
                let message = e.to_string();
                err(section_line(text, "mattermost", &message), message)
            })?;
        }
        if let Some(discord) = &raw.discord {
            discord.validate().map_err(|e| {
                let message = e.to_string();
                err(section_line(text, "discord", &message), message)
            })?;
        }

        if let Some(slack) = &raw.slack {
            if slack.signing_secret == DEMO_SLACK_SECRET {
                warnings.push(
                    "Slack uses the demo signing secret: anyone who reads the README can sign requests. Set SLACK_SIGNING_SECRET to your app's signing secret."
                        .to_owned(),
                );
            }
            if slack.signing_secret.is_empty() {
                return Err(err(
                    line_of_path(text, &["slack".into(), "signing_secret".into()]),
                    "slack.signing_secret is empty: set it to your Slack app's signing secret (Basic Information → App Credentials)".into(),
                ));
            }
        }
        let shutdown_grace =
            chatops_ci::parse_duration(&raw.server.shutdown_grace).map_err(|e| {
                err(
                    line_of_path(text, &["server".into(), "shutdown_grace".into()]),
                    format!("server.shutdown_grace: {e}"),
                )
            })?;
        // An optional `server.KEY` duration.
        let optional_duration = |key: &str, value: &Option<String>| match value {
            None => Ok(None),
            Some(v) => chatops_ci::parse_duration(v).map(Some).map_err(|e| {
                err(
                    line_of_path(text, &["server".into(), key.into()]),
                    format!("server.{key}: {e}"),
                )
            }),
        };
        let response_window = optional_duration("response_window", &raw.server.response_window)?;
        let manual_job_ttl = optional_duration("manual_job_ttl", &raw.server.manual_job_ttl)?;
        let progress_interval = optional_duration(
            "progress_interval",
            &Some(raw.server.progress_interval.clone()),
        )?
        .filter(|_| raw.server.live_progress);
        let data_dir = absolute(base, &raw.server.data_dir);
        let mut projects = Vec::new();
        for (key, value) in raw.projects {
            let Some(name) = key.as_str().map(str::to_owned) else {
                return Err(err(
                    line_of_path(text, &["projects".into()]),
                    "project names must be strings".into(),
                ));
            };
            let path = vec!["projects".to_owned(), name.clone()];
            let project: RawProject =
                typed(value, &path).map_err(|(p, msg)| err(line_of_path(text, &p), msg))?;
            let job_user = job_user(&name, &project, &raw.server)
                .map_err(|(p, msg)| err(line_of_path(text, &p), msg))?;
            let mut settings = project_settings(&name, project, base)
                .map_err(|(p, msg)| err(line_of_path(text, &p), msg))?;
            settings.job_user = job_user;
            projects.push(settings);
        }
        let mut seen = std::collections::HashSet::new();
        for p in &projects {
            if !seen.insert(p.command.to_ascii_lowercase()) {
                return Err(err(
                    line_of_path(text, &["projects".into(), p.name.to_string()]),
                    format!(
                        "two projects answer {}: give one of them another `command:`",
                        p.command
                    ),
                ));
            }
        }
        if let Some(runners) = &raw.runners {
            let url = public_url_of(&raw.server, &raw.server.listen);
            runners
                .settings(&url, &mut warnings)
                .map_err(|(path, msg)| err(line_of_path(text, &path), msg))?;
        }
        Ok(Config {
            source: file.to_owned(),
            server: raw.server,
            data_dir,
            shutdown_grace,
            response_window,
            manual_job_ttl,
            progress_interval,
            slack: raw.slack,
            mattermost: raw.mattermost,
            discord: raw.discord,
            runners: raw.runners,
            projects,
            warnings,
        })
    }

    /// `server.public_url`, else `http://<bound>` (the address actually listened on, or the
    /// configured one when nothing listens, as in `chatops run`).
    pub fn public_url(&self, bound: &str) -> String {
        public_url_of(&self.server, bound)
    }

    /// Whether some project's jobs run as another user (`job_user`).
    pub fn has_job_user(&self) -> bool {
        self.projects.iter().any(|p| p.job_user.is_some())
    }

    pub fn project(&self, name: &str) -> Option<&ProjectSettings> {
        self.projects.iter().find(|p| p.name.as_str() == name)
    }
}

type PathErr = (Vec<String>, String);

/// The platforms a `members` entry may name (`console` is `chatops run --user`).
const MEMBER_PLATFORMS: [&str; 4] = ["slack", "mattermost", "discord", "console"];

/// A Discord application id written as a bare YAML number would be read as an integer (and a
/// snowflake past 2^53 may lose digits on the way), so it must be quoted; say so plainly
/// rather than let serde report a type mismatch.
fn check_snowflake_quoted(value: &Value) -> Result<(), PathErr> {
    let id = value.get("discord").and_then(|d| d.get("application_id"));
    if let Some(Value::Number(n)) = id {
        return Err((
            vec!["discord".into(), "application_id".into()],
            format!(
                "discord.application_id is the number {n}: quote it (application_id: \"{n}\") so YAML keeps the snowflake as a string"
            ),
        ));
    }
    Ok(())
}

/// The line a `section.key` named in `message` is on, else the section's own line.
fn section_line(text: &str, section: &str, message: &str) -> Option<usize> {
    let prefix = format!("{section}.");
    let key = message.split(&prefix).nth(1).map(|rest| {
        rest.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default()
    });
    key.filter(|k| !k.is_empty())
        .and_then(|k| line_of_path(text, &[section.to_owned(), k.to_owned()]))
        .or_else(|| line_of_path(text, &[section.to_owned()]))
}

fn absolute(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        let joined = base.join(p);
        // Tidy `./` and `..` when the path exists; otherwise keep it as joined.
        std::fs::canonicalize(&joined).unwrap_or(joined)
    }
}

/// Deserializes a value into `T`, reporting the path of the offending key.
fn typed<T: serde::de::DeserializeOwned>(value: Value, prefix: &[String]) -> Result<T, PathErr> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path: Vec<String> = prefix.to_vec();
        for seg in e.path().iter() {
            if let serde_path_to_error::Segment::Map { key } = seg {
                path.push(key.clone());
            }
        }
        let inner = e.into_inner().to_string();
        // "unknown field `x`, expected one of ..." points at `x` itself.
        if let Some(field) = inner
            .strip_prefix("unknown field `")
            .and_then(|r| r.split('`').next())
        {
            if path.last().map(String::as_str) != Some(field) {
                path.push(field.to_owned());
            }
            let at = path[..path.len() - 1].join(".");
            let at = if at.is_empty() {
                "the top level".to_owned()
            } else {
                at
            };
            return (
                path,
                format!("unknown key `{field}` in {at} ({inner}): fix its spelling or remove it"),
            );
        }
        let at = path.join(".");
        (path, format!("{at}: {inner}"))
    })
}

fn project_settings(name: &str, raw: RawProject, base: &Path) -> Result<ProjectSettings, PathErr> {
    let at = |key: &str| vec!["projects".to_owned(), name.to_owned(), key.to_owned()];
    let timeout = match raw.timeout {
        None => Duration::from_secs(3600),
        Some(Value::Number(n)) => Duration::from_secs(n.as_u64().unwrap_or(3600)),
        Some(Value::String(s)) => chatops_ci::parse_duration(&s)
            .map_err(|e| (at("timeout"), format!("projects.{name}.timeout: {e}")))?,
        Some(_) => {
            return Err((
                at("timeout"),
                format!("projects.{name}.timeout must be a duration like `1h` or `30m`"),
            ))
        }
    };
    let command = raw.command.unwrap_or_else(|| format!("/{name}"));
    if !command.starts_with('/') || command.contains(char::is_whitespace) {
        return Err((
            at("command"),
            format!("projects.{name}.command must be a slash command like `/{name}`"),
        ));
    }
    let executor = match raw.executor.as_deref() {
        None => ExecutorKind::Local,
        Some(value) => ExecutorKind::parse(value).ok_or_else(|| {
            (
                at("executor"),
                format!(
                    "projects.{name}.executor: unknown executor `{value}`: use `local` (a shell on this host) or `runner` (GitLab runners)"
                ),
            )
        })?,
    };
    if let Some(i) = raw.tags.iter().position(|t| t.trim().is_empty()) {
        return Err((
            at("tags"),
            format!("projects.{name}.tags[{i}] is empty: give each tag a name, or remove it"),
        ));
    }
    let mut members = Vec::new();
    for entry in raw.members {
        members.push(member(name, &entry)?);
    }
    Ok(ProjectSettings {
        name: ProjectName::new(name),
        command,
        repository: absolute(base, &raw.repository),
        branch: raw.branch,
        ci_file: raw.ci_file,
        timeout,
        max_concurrent_jobs: raw.max_concurrent_jobs.max(1),
        variables: scalar_map(&raw.variables, name, "variables")?,
        secrets: scalar_map(&raw.secrets, name, "secrets")?,
        default_role: raw.default_role,
        members,
        job_user: None,
        executor,
        tags: raw.tags,
    })
}

/// `projects.<name>.job_user`, else `server.job_user`: resolved to a system user now, so a
/// typo is a config error naming the key, not a failed job later.
fn job_user(
    name: &str,
    raw: &RawProject,
    server: &ServerConfig,
) -> Result<Option<chatops_exec::JobUser>, PathErr> {
    let (user, key) = match (&raw.job_user, &server.job_user) {
        (Some(u), _) => (
            u,
            vec![
                "projects".to_owned(),
                name.to_owned(),
                "job_user".to_owned(),
            ],
        ),
        (None, Some(u)) => (u, vec!["server".to_owned(), "job_user".to_owned()]),
        (None, None) => return Ok(None),
    };
    let at = key.join(".");
    let user = user.trim();
    if user.is_empty() {
        return Ok(None);
    }
    let resolved =
        chatops_exec::JobUser::lookup(user).map_err(|e| (key.clone(), format!("{at}: {e}")))?;
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && euid != resolved.uid {
        return Err((
            key,
            format!(
                "{at}: running jobs as `{user}` needs chatops to run as root (it runs as uid {euid}); start it as root, or remove {at}"
            ),
        ));
    }
    Ok(Some(resolved))
}

/// `{slack: U024BE7LH, role: developer}`: exactly one platform key and a role.
fn member(project: &str, entry: &Mapping) -> Result<Member, PathErr> {
    let at = vec![
        "projects".to_owned(),
        project.to_owned(),
        "members".to_owned(),
    ];
    let mut role = None;
    let mut ids = Vec::new();
    for (k, v) in entry {
        let key = k.as_str().unwrap_or_default();
        let value = scalar(v).ok_or_else(|| {
            (
                at.clone(),
                format!("projects.{project}.members: `{key}` must be a string"),
            )
        })?;
        if key != "role" && !MEMBER_PLATFORMS.contains(&key) {
            return Err((
                at.clone(),
                format!(
                    "projects.{project}.members: `{key}` is not a platform: use one of {}",
                    MEMBER_PLATFORMS.join(", ")
                ),
            ));
        }
        if key == "role" {
            role = Some(
                value
                    .parse::<Role>()
                    .map_err(|e| (at.clone(), format!("projects.{project}.members: {e}")))?,
            );
        } else {
            ids.push((key.to_owned(), value));
        }
    }
    let (Some(role), [(platform, user)]) = (role, ids.as_slice()) else {
        return Err((
            at,
            format!(
                "projects.{project}.members: each entry needs one platform id and a role, like {{slack: U024BE7LH, role: developer}}"
            ),
        ));
    };
    Ok(Member {
        platform: PlatformId::new(platform.clone()),
        user: UserId::new(user.clone()),
        role,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn scalar_map(map: &Mapping, project: &str, key: &str) -> Result<Vec<(String, String)>, PathErr> {
    let mut out = Vec::new();
    for (k, v) in map {
        let (Some(name), Some(value)) = (k.as_str(), scalar(v)) else {
            return Err((
                vec!["projects".into(), project.into(), key.into()],
                format!("projects.{project}.{key}: values must be strings, numbers or booleans"),
            ));
        };
        out.push((name.to_owned(), value));
    }
    Ok(out)
}

/// Expands every top-level section; in the `lenient` ones an unset variable expands to nothing.
fn expand_top_level(
    value: &mut Value,
    env: &dyn Fn(&str) -> Option<String>,
    lenient: &[&str],
) -> Result<(), PathErr> {
    let Value::Mapping(map) = value else {
        return expand_env(value, &mut Vec::new(), env);
    };
    let or_empty = |name: &str| env(name).or_else(|| Some(String::new()));
    for (k, v) in map.iter_mut() {
        let section = k.as_str().unwrap_or_default().to_owned();
        let env: &dyn Fn(&str) -> Option<String> = if lenient.contains(&section.as_str()) {
            &or_empty
        } else {
            env
        };
        expand_env(v, &mut vec![section], env)?;
    }
    Ok(())
}

/// Expands `${NAME}` and `${NAME:-default}` in every string of the tree.
fn expand_env(
    value: &mut Value,
    path: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), PathErr> {
    match value {
        Value::String(s) => {
            *s = expand_str(s, env).map_err(|m| (path.clone(), m))?;
        }
        Value::Sequence(items) => {
            for item in items {
                expand_env(item, path, env)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                path.push(k.as_str().unwrap_or_default().to_owned());
                expand_env(v, path, env)?;
                path.pop();
            }
        }
        Value::Tagged(tagged) => expand_env(&mut tagged.value, path, env)?,
        _ => {}
    }
    Ok(())
}

/// One string's expansion. An unset `${NAME}` without default is an error that names it.
pub fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!(
                "`${{{after}` has no closing brace: write ${{NAME}} or ${{NAME:-default}}"
            ));
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "`${{{inner}}}` is not a variable reference: names use letters, digits and _"
            ));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "`${{{name}}}` is not set: export {name}, or write `${{{name}:-default}}` in the config"
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The 1-based line of the first occurrence of `needle`.
fn line_of_text(text: &str, needle: &str) -> Option<usize> {
    let idx = text.find(needle)?;
    Some(text[..idx].matches('\n').count() + 1)
}

/// The line of a key path (`projects`, `demo`, `timeout`), found by scanning for each key in
/// turn at a deeper indentation than its parent. Good enough for error messages.
fn line_of_path(text: &str, path: &[String]) -> Option<usize> {
    let mut found = None;
    let mut min_indent = 0usize;
    let mut from_line = 0usize;
    for key in path.iter().filter(|k| !k.is_empty()) {
        let mut hit = None;
        for (i, line) in text.lines().enumerate().skip(from_line) {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            let body = trimmed.trim_start_matches("- ").trim_start_matches('{');
            let matches_key = body
                .strip_prefix(key.as_str())
                .or_else(|| body.strip_prefix(&format!("\"{key}\"")))
                .is_some_and(|r| r.trim_start().starts_with(':'));
            if matches_key && (indent >= min_indent || found.is_none()) {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        found = Some(i + 1);
        from_line = i + 1;
        min_indent = indent + 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("s3cr3t".into()),
            _ => None,
        }
    }

    fn load(text: &str) -> Result<Config, ConfigError> {
        Config::from_text(text, Path::new("c.yaml"), Path::new("/base"), &env)
    }

    #[test]
    fn expands_env_with_defaults() {
        assert_eq!(expand_str("a${SECRET}b", &env).unwrap(), "as3cr3tb");
        assert_eq!(expand_str("${NOPE:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(expand_str("${NOPE:-}", &env).unwrap(), "");
        assert!(expand_str("${NOPE}", &env).unwrap_err().contains("NOPE"));
        assert!(expand_str("${OPEN", &env).is_err());
    }

    #[test]
    fn loads_projects_with_relative_paths() {
        let c = load(
            "server:\n  listen: 127.0.0.1:0\nprojects:\n  demo:\n    repository: repo\n    timeout: 10m\n    variables: {A: 1, B: x}\n    secrets: {T: \"${SECRET}\"}\n    default_role: reporter\n    members:\n      - {slack: U1, role: maintainer}\n",
        )
        .unwrap();
        let p = &c.projects[0];
        assert_eq!(p.command, "/demo");
        assert_eq!(p.repository, PathBuf::from("/base/repo"));
        assert_eq!(p.timeout, Duration::from_secs(600));
        assert_eq!(
            p.variables,
            vec![("A".into(), "1".into()), ("B".into(), "x".into())]
        );
        assert_eq!(p.secrets, vec![("T".into(), "s3cr3t".into())]);
        assert_eq!(p.default_role, Role::Reporter);
        assert_eq!(p.members[0].role, Role::Maintainer);
        assert_eq!(c.data_dir, PathBuf::from("/base/data"));
    }

    #[test]
    fn executor_defaults_to_local_and_takes_runner_with_tags() {
        let c = load("projects:\n  a:\n    repository: r\n  b:\n    repository: r\n    executor: runner\n    tags: [linux, docker]\n  c:\n    repository: r\n    executor: local\n")
            .unwrap();
        let kinds: Vec<(ExecutorKind, Vec<String>)> = c
            .projects
            .iter()
            .map(|p| (p.executor, p.tags.clone()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (ExecutorKind::Local, vec![]),
                (ExecutorKind::Runner, vec!["linux".into(), "docker".into()]),
                (ExecutorKind::Local, vec![]),
            ]
        );
    }

    #[test]
    fn an_unknown_executor_names_its_key_line_and_the_two_values() {
        let e = load("projects:\n  demo:\n    repository: r\n    executor: docker\n").unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(
            e.message
                .starts_with("projects.demo.executor: unknown executor `docker`"),
            "{e}"
        );
        assert!(
            e.message.contains("`local`") && e.message.contains("`runner`"),
            "{e}"
        );
        let e = load("projects:\n  demo:\n    repository: r\n    tags: [ok, \" \"]\n").unwrap_err();
        assert!(e.message.contains("projects.demo.tags[1] is empty"), "{e}");
    }

    #[test]
    fn job_user_is_resolved_and_an_unknown_one_names_its_key() {
        let e =
            load("server:\n  job_user: no-such-user-here\nprojects:\n  demo:\n    repository: r\n")
                .unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(
            e.message
                .starts_with("server.job_user: no user `no-such-user-here`"),
            "{e}"
        );
        let e = load("projects:\n  demo:\n    repository: r\n    job_user: nobody-at-all\n")
            .unwrap_err();
        assert!(e.message.starts_with("projects.demo.job_user:"), "{e}");
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let c = load("server:\n  job_user: root\nprojects:\n  demo:\n    repository: r\n    job_user: nobody\n  other:\n    repository: r\n    command: /other\n");
        if root {
            let c = c.unwrap();
            let user = |i: usize| c.projects[i].job_user.as_ref().map(|u| u.name.clone());
            assert_eq!(user(0).as_deref(), Some("nobody"), "the project's wins");
            assert_eq!(user(1).as_deref(), Some("root"), "else the server's");
            assert!(c.has_job_user());
        } else {
            let e = c.unwrap_err();
            assert!(e.message.contains("needs chatops to run as root"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_name_file_and_line() {
        let e =
            load("server:\n  listen: x\nprojects:\n  demo:\n    repository: r\n    timeot: 1h\n")
                .unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(
            e.to_string().starts_with("c.yaml:6: unknown key `timeot`"),
            "{e}"
        );
        let e = load("serverr: {}\n").unwrap_err();
        assert_eq!(e.line, Some(1), "{e}");
    }

    #[test]
    fn unset_variable_is_an_error_with_its_line() {
        let e = load("projects:\n  demo:\n    repository: r\n    secrets: {T: \"${MISSING}\"}\n")
            .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("MISSING"), "{e}");
    }

    #[test]
    fn the_unset_variable_message_is_balanced_and_says_what_to_do() {
        let e = expand_str("x${MISSING}y", &env).unwrap_err();
        assert_eq!(
            e,
            "`${MISSING}` is not set: export MISSING, or write `${MISSING:-default}` in the config"
        );
        assert_eq!(e.matches('`').count() % 2, 0, "{e}");
    }

    const PLATFORMS_WITH_UNSET_SECRETS: &str = "slack:\n  signing_secret: ${UNSET_SLACK}\nmattermost:\n  url: https://chat.example.com\n  tokens: [\"${UNSET_MM}\"]\ndiscord:\n  public_key: ${UNSET_KEY}\n  application_id: \"${UNSET_APP}\"\nprojects:\n  demo:\n    repository: r\n    secrets: {T: \"${SECRET}\"}\n";

    #[test]
    fn read_only_loading_tolerates_unset_platform_secrets() {
        let read_only = |text: &str| {
            Config::from_text_as(
                text,
                Path::new("c.yaml"),
                Path::new("/base"),
                &env,
                LoadMode::ReadOnly,
            )
        };
        let c = read_only(PLATFORMS_WITH_UNSET_SECRETS).expect("loads without the secrets");
        assert!(c.slack.is_none() && c.mattermost.is_none() && c.discord.is_none());
        assert_eq!(c.projects[0].secrets, vec![("T".into(), "s3cr3t".into())]);
        let e = load(PLATFORMS_WITH_UNSET_SECRETS).unwrap_err();
        assert_eq!(e.line, Some(2), "{e}");
        assert!(e.message.contains("`${UNSET_SLACK}` is not set"), "{e}");
        // Outside the platform sections an unset variable is still an error, and so is a
        // misspelt key inside them.
        let e = read_only("projects:\n  demo:\n    repository: r\n    secrets: {T: \"${NOPE}\"}\n")
            .unwrap_err();
        assert!(e.message.contains("`${NOPE}` is not set"), "{e}");
        let e = read_only("slack:\n  signing_secret: ${NOPE}\n  bot_tokn: x\n").unwrap_err();
        assert!(e.message.contains("unknown key `bot_tokn`"), "{e}");
    }

    #[test]
    fn an_empty_config_is_warned_about() {
        let c = load("server:\n  listen: 127.0.0.1:0\n").unwrap();
        assert!(
            c.warnings.iter().any(|w| w.contains("no chat platform")),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings.iter().any(|w| w.contains("no project")),
            "{:?}",
            c.warnings
        );
        let c = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [t]\n",
            &good_discord(),
        ))
        .unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    /// The ```yaml blocks of a Markdown file, with the line each starts on.
    fn yaml_blocks(markdown: &str) -> Vec<(usize, String)> {
        let mut blocks = Vec::new();
        let mut current: Option<(usize, String)> = None;
        for (i, line) in markdown.lines().enumerate() {
            match current.as_mut() {
                None if line.trim_start().starts_with("```yaml") => {
                    current = Some((i + 2, String::new()))
                }
                None => {}
                Some(_) if line.trim_start().starts_with("```") => {
                    blocks.extend(current.take());
                }
                Some((_, text)) => {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        blocks
    }

    /// Every YAML example in the README and the config reference is a config chatops loads,
    /// so the documentation cannot drift into invalid YAML or unknown keys.
    #[test]
    fn every_yaml_block_in_the_docs_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dummy = |name: &str| -> Option<String> {
            Some(match name {
                "DISCORD_PUBLIC_KEY" => DISCORD_KEY.to_owned(),
                "DISCORD_APPLICATION_ID" => "1100000000000000001".to_owned(),
                n if n.ends_with("RUNNER_TOKEN") => "glrt-docsdocsdocsdocsdocsdocs".to_owned(),
                _ => format!("dummy-{}", name.to_ascii_lowercase()),
            })
        };
        let mut checked = 0;
        for doc in ["README.md", "docs/config.md"] {
            let path = root.join(doc);
            let markdown = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let blocks = yaml_blocks(&markdown);
            assert!(!blocks.is_empty(), "{doc} has YAML examples");
            for (line, block) in blocks {
                let name = format!("{doc} (the block at line {line})");
                // An example CI file, not a config: the CI reader must take it, and the
                // description it shows must be found.
                if block.starts_with("# .gitlab-ci.yml\n") {
                    let source = chatops_ci::DirSource::new(root);
                    let ci = chatops_ci::load_str(&source, ".gitlab-ci.yml", &block)
                        .unwrap_or_else(|e| panic!("the CI example at {name} does not load: {e}"));
                    assert!(
                        ci.jobs().iter().all(|j| j.description.is_some()),
                        "every job of the CI example at {name} has a description"
                    );
                    checked += 1;
                    continue;
                }
                if let Err(e) = Config::from_text(&block, Path::new(&name), root, &dummy) {
                    panic!("the YAML block at {name} does not load: {e}\n{block}");
                }
                checked += 1;
            }
        }
        assert!(checked >= 2, "{checked}");
    }

    #[test]
    fn broken_yaml_has_a_line() {
        let e = load("projects:\n  demo:\n    repository: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e}");
        assert!(e.message.contains("not valid YAML"));
    }

    #[test]
    fn bad_members_and_roles() {
        let e = load("projects:\n  demo:\n    repository: r\n    members:\n      - {slack: U1}\n")
            .unwrap_err();
        assert!(e.message.contains("one platform id and a role"), "{e}");
        let e =
            load("projects:\n  demo:\n    repository: r\n    default_role: admin\n").unwrap_err();
        assert!(e.message.contains("admin"), "{e}");
    }

    // RFC 8032 test 1 public key: a valid curve point, never a real application's.
    const DISCORD_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn platforms(mattermost: &str, discord: &str) -> String {
        format!(
            "server:\n  listen: 127.0.0.1:0\nmattermost:\n{mattermost}discord:\n{discord}projects:\n  demo:\n    repository: r\n"
        )
    }

    fn good_discord() -> String {
        format!("  public_key: {DISCORD_KEY}\n  application_id: \"1100000000000000001\"\n")
    }

    #[test]
    fn mattermost_and_discord_sections_are_typed() {
        let c = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [\"${SECRET}\", \"${UNSET:-}\", \"\"]\n  bot_token: ${UNSET:-}\n",
            &format!("{}  api_url: http://127.0.0.1:9/api/v10\n", good_discord()),
        ))
        .unwrap();
        let mm = c.mattermost.as_ref().expect("the mattermost section");
        assert_eq!(mm.url, "https://chat.example.com");
        assert_eq!(mm.tokens, vec!["s3cr3t"], "empty tokens are dropped");
        assert_eq!(mm.bot_token, None, "an empty bot token means none");
        assert_eq!(mm.allowed_hosts(), vec!["chat.example.com"]);
        let discord = c.discord.as_ref().expect("the discord section");
        assert_eq!(discord.application_id, "1100000000000000001");
        assert_eq!(discord.api_base(), "http://127.0.0.1:9/api/v10");
        assert!(discord.verifying_key().is_ok());
    }

    #[test]
    fn omitted_sections_turn_platforms_off() {
        let c = load("projects:\n  demo:\n    repository: r\n").unwrap();
        assert!(c.slack.is_none() && c.mattermost.is_none() && c.discord.is_none());
    }

    #[test]
    fn unknown_keys_in_platform_sections_name_their_line() {
        let e = load(&platforms(
            "  url: https://chat.example.com\n  token: [t]\n  tokens: [t]\n",
            &good_discord(),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("unknown key `token`"), "{e}");
        let e = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [t]\n",
            &format!("{}  bot_token: x\n", good_discord()),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(
            e.message.contains("unknown key `bot_token` in discord"),
            "{e}"
        );
    }

    #[test]
    fn adapter_validation_errors_name_file_and_line() {
        // Every token empty (unset variables with empty defaults).
        let e = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [\"${UNSET:-}\"]\n",
            &good_discord(),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(
            e.to_string().starts_with("c.yaml:5: mattermost.tokens"),
            "{e}"
        );
        let e = load(&platforms(
            "  url: chat.example.com\n  tokens: [t]\n",
            &good_discord(),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("mattermost.url"), "{e}");
        let e = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [t]\n",
            "  public_key: abcd\n  application_id: \"1\"\n",
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(7), "{e}");
        assert!(e.message.contains("discord.public_key"), "{e}");
        let e = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [t]\n",
            &format!("  public_key: {DISCORD_KEY}\n  application_id: \"my-app\"\n"),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(e.message.contains("snowflake"), "{e}");
    }

    #[test]
    fn an_unquoted_application_id_is_told_to_be_quoted() {
        let e = load(&platforms(
            "  url: https://chat.example.com\n  tokens: [t]\n",
            &format!("  public_key: {DISCORD_KEY}\n  application_id: 1100000000000000001\n"),
        ))
        .unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        assert!(
            e.message
                .contains("application_id: \"1100000000000000001\""),
            "{e}"
        );
    }

    #[test]
    fn members_name_known_platforms_only() {
        let c = load(
            "projects:\n  demo:\n    repository: r\n    members:\n      - {mattermost: 8ajk3h1p4jfz7c9t1s6rwhcqxo, role: maintainer}\n      - {discord: 80351110224678912, role: developer}\n",
        )
        .unwrap();
        let members = &c.projects[0].members;
        assert_eq!(members[0].platform.as_str(), "mattermost");
        assert_eq!(members[1].platform.as_str(), "discord");
        assert_eq!(members[1].user.as_str(), "80351110224678912");
        let e = load(
            "projects:\n  demo:\n    repository: r\n    members:\n      - {mattermst: U1, role: developer}\n",
        )
        .unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(e.message.contains("`mattermst` is not a platform"), "{e}");
    }

    #[test]
    fn embedded_default_loads() {
        let c = Config::from_text(
            EMBEDDED_DEFAULT,
            Path::new("<embedded>"),
            &embedded_base(),
            &|_| None,
        )
        .unwrap();
        assert!(c.project("demo").is_some());
        assert!(c.slack.is_some());
        assert!(!c.warnings.is_empty(), "the demo secret is warned about");
    }
}

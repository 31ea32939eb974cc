//! The `chatops` command line (contract §1): `serve`, `check`, `run`, `play`, `cancel`, `jobs`,
//! `log`, `completions`.

use chatops::check;
use chatops::config::{Config, LoadMode};
use chatops::console::{self, ConsoleAdapter};
use chatops::Application;
use chatops_core::{JobId, JobStatus};
use chatops_pipeline::{Executors, PipelineHandle};
use clap::{Args, CommandFactory, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[derive(Parser)]
#[command(
    name = "chatops",
    version,
    about = "Run GitLab-CI-style jobs from chat"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// The config file [default: $CHATOPS_CONFIG, else config/chatops.yaml, else the embedded demo]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server until SIGINT/SIGTERM.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// The address:port to listen on, overriding `server.listen` (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Load the config and every project's CI file; report every job.
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Run one job through the same pipeline as chat; the log streams to stderr, the reply to stdout.
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// The chat user id to run as (its role comes from the project's `members`, platform `console`).
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// Also play the job if it is `when: manual` (else it waits: `chatops play ID` starts it).
        #[arg(long)]
        play: bool,
        project: String,
        job: String,
        /// CHAT_INPUT (the words are joined with spaces).
        input: Vec<String>,
    },
    /// Start a `when: manual` job that waits (through the live server if one runs on the data
    /// dir); its log streams to stderr, its outcome to stdout.
    Play {
        #[command(flatten)]
        config: ConfigArg,
        /// The chat user id to act as (its role comes from the project's `members`, platform `console`).
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// The job's id, as in `chatops jobs`.
        id: String,
    },
    /// Cancel a job: a manual job that waits, or (through the live server) a queued or running one.
    Cancel {
        #[command(flatten)]
        config: ConfigArg,
        /// The chat user id to act as (its role comes from the project's `members`, platform `console`).
        #[arg(long, value_name = "ID")]
        user: Option<String>,
        /// The job's id, as in `chatops jobs`.
        id: String,
    },
    /// List recent jobs.
    Jobs {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Print a job's full log.
    Log {
        #[command(flatten)]
        config: ConfigArg,
        id: String,
    },
    /// Runner authentication tokens for `runners.tokens` (GitLab runners taking chat jobs).
    RunnerToken {
        #[command(subcommand)]
        action: RunnerTokenAction,
    },
    /// Print a shell completion script on stdout, e.g. `chatops completions bash >
    /// ~/.local/share/bash-completion/completions/chatops`.
    Completions {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum RunnerTokenAction {
    /// Print a new random `glrt-` token, the `runners.tokens` entry for chatops' config and
    /// the `config.toml` lines for the runner.
    Create {
        /// The runner's name in chatops' config, logs and replies.
        #[arg(long, default_value = "runner-1")]
        name: String,
        /// A tag of the runner (repeat for more): it takes jobs of projects whose `tags` it has.
        #[arg(long = "tag", value_name = "TAG")]
        tags: Vec<String>,
        /// chatops' URL as the runner reaches it (`server.public_url`).
        #[arg(long, default_value = "https://chatops.example.com")]
        url: String,
    },
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn load_config(arg: &ConfigArg) -> Result<Config, ExitCode> {
    load_config_as(arg, LoadMode::Full)
}

fn load_config_as(arg: &ConfigArg, mode: LoadMode) -> Result<Config, ExitCode> {
    Config::load_as(arg.config.as_deref(), mode).map_err(|e| {
        eprintln!("chatops: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    // Before any secret is read or any job runs: not dumpable (jobs cannot read our
    // /proc/PID/environ), umask 077.
    chatops::isolation::harden_process();
    let cli = Cli::parse();
    let play = matches!(cli.command, Command::Play { .. });
    match cli.command {
        Command::Serve { config, listen } => {
            init_tracing("info");
            let mut config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            actix_rt::System::new().block_on(serve(config))
        }
        Command::Check { config, json } => {
            init_tracing("warn");
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let report = check::check(&config);
            if json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("chatops: {e}");
                        return ExitCode::from(1);
                    }
                }
            } else {
                print!("{}", check::render_text(&report));
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Run {
            config,
            user,
            play,
            project,
            job,
            input,
        } => {
            init_tracing("warn");
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let user = cli_user(user);
            actix_rt::System::new().block_on(run(config, user, play, project, job, input.join(" ")))
        }
        Command::Play { config, user, id } | Command::Cancel { config, user, id } => {
            init_tracing("warn");
            let config = match load_config(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            actix_rt::System::new().block_on(control(config, cli_user(user), &id, play))
        }
        Command::Jobs {
            config,
            limit,
            json,
        } => {
            init_tracing("warn");
            let config = match load_config_as(&config, LoadMode::ReadOnly) {
                Ok(c) => c,
                Err(code) => return code,
            };
            actix_rt::System::new().block_on(jobs(config, limit, json))
        }
        Command::Log { config, id } => {
            init_tracing("warn");
            let config = match load_config_as(&config, LoadMode::ReadOnly) {
                Ok(c) => c,
                Err(code) => return code,
            };
            actix_rt::System::new().block_on(log(config, &id))
        }
        Command::RunnerToken {
            action: RunnerTokenAction::Create { name, tags, url },
        } => {
            print!("{}", runner_token_text(&name, &tags, &url));
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "chatops", &mut out);
            match out.flush() {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chatops: cannot write the completion script: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// What `chatops runner-token create` prints: a fresh token, where it goes in chatops' config
/// and in the runner's.
fn runner_token_text(name: &str, tags: &[String], url: &str) -> String {
    let token = chatops_runner::new_runner_token();
    let yaml_tags = if tags.is_empty() {
        String::new()
    } else {
        format!("\n      tags: [{}]", tags.join(", "))
    };
    format!(
        "# A new runner token. Keep it secret: whoever holds it takes chat jobs and their variables.\n\
         # 1. In chatops' config (then restart chatops); better from the environment:\n\
         runners:\n  tokens:\n    - name: {name}\n      token: \"{token}\"{yaml_tags}\n\
         \n\
         # 2. In the runner's /etc/gitlab-runner/config.toml:\n\
         # [[runners]]\n\
         #   name = \"{name}\"\n\
         #   url = \"{url}\"\n\
         #   token = \"{token}\"\n\
         #   executor = \"shell\"\n\
         #   request_concurrency = 2\n\
         # or: gitlab-runner register --non-interactive --url {url} --token {token} --executor shell\n"
    )
}

async fn serve(config: Config) -> ExitCode {
    raise_fd_limit();
    let app = match Application::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            eprintln!("chatops: {e:#}");
            return ExitCode::from(2);
        }
    };
    match app.run_until(shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatops: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// How a command that runs jobs (`run`, `play`, `cancel`) reaches them: alone it holds the data
/// dir's lock and runs a pipeline of its own (recovering what a previous run left, as a server
/// would); beside a live server it hands the command to that server and follows the job
/// through the store, touching none of the server's jobs (issue #9 item 8).
enum Attached {
    Local {
        _lock: chatops::lock::DataDirLock,
        pipeline: PipelineHandle,
        replies: tokio::sync::mpsc::UnboundedReceiver<chatops_core::Reply>,
    },
    Remote {
        store: chatops_store::Store,
        /// The request whose job this command follows, once submitted.
        request: Option<chatops_store::CliRequestId>,
    },
}

impl Attached {
    fn store(&self) -> &chatops_store::Store {
        match self {
            Attached::Local { pipeline, .. } => pipeline.store(),
            Attached::Remote { store, .. } => store,
        }
    }

    /// Hands `text` to the pipeline (ours or the server's); the ack's text and its job.
    async fn submit(
        &mut self,
        project_command: &str,
        user: &str,
        text: String,
    ) -> Result<(String, Option<JobId>), String> {
        match self {
            Attached::Local { pipeline, .. } => {
                let ack = pipeline
                    .submit(console::command(project_command, user, text))
                    .await;
                Ok((console::plain_text(&ack.reply), ack.job))
            }
            Attached::Remote { store, request } => {
                let (id, ack, job) =
                    chatops::remote::submit(store, project_command, user, text).await?;
                *request = Some(id);
                Ok((ack, job))
            }
        }
    }

    async fn status(&self, id: JobId) -> Option<JobStatus> {
        match self {
            Attached::Local { pipeline, .. } => pipeline.job_any(id).await.map(|v| v.status),
            Attached::Remote { store, .. } => store.job(id).await.ok().flatten().map(|r| r.status),
        }
    }

    /// The job's reply, if it came (to this command line).
    async fn reply(&mut self) -> Option<String> {
        match self {
            Attached::Local { replies, .. } => {
                replies.try_recv().ok().map(|r| console::plain_text(&r))
            }
            Attached::Remote {
                store,
                request: Some(request),
            } => store.cli_request(*request).await.ok().flatten()?.reply,
            Attached::Remote { request: None, .. } => None,
        }
    }

    /// Local: stops our pipeline, letting replies to chat platforms go out first.
    async fn finish(self) {
        match self {
            Attached::Local { pipeline, .. } => pipeline.shutdown().await,
            Attached::Remote { store, .. } => {
                let _ = store.close().await;
            }
        }
    }
}

/// Takes the data dir's lock for `command` and starts a pipeline, or finds the live server.
async fn attach(config: &Config, command: &str) -> Result<Attached, ExitCode> {
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("chatops: {e}");
        ExitCode::from(2)
    };
    match chatops::isolation::secure_data_dir(&config.data_dir, config.has_job_user()) {
        Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
        Err(e) => {
            return Err(fail(&format!(
                "cannot create {}: {e}",
                config.data_dir.display()
            )))
        }
    }
    let lock = match chatops::lock::acquire(&config.data_dir, command) {
        Ok(lock) => lock,
        Err(chatops::lock::LockError::Held { holder, data_dir }) if holder.is_server() => {
            eprintln!(
                "chatops: a chatops server ({}) runs on {}: handing the command to it",
                holder.pid_text(),
                data_dir.display()
            );
            let path = data_dir.join("chatops.db");
            let store = chatops_store::Store::open(&path).map_err(|e| fail(&e))?;
            return Ok(Attached::Remote {
                store,
                request: None,
            });
        }
        Err(e) => return Err(fail(&e)),
    };
    let key = chatops::link_key(&config.data_dir).map_err(|e| fail(&format!("{e:#}")))?;
    let public_url = config.public_url(&config.server.listen);
    // The chat platforms too: a job played here may have been asked for from chat, and its
    // reply goes back there.
    let mut adapters =
        chatops::build_adapters(config, &public_url).map_err(|e| fail(&format!("{e:#}")))?;
    let (adapter, replies) = ConsoleAdapter::new();
    adapters.register(Arc::new(adapter));
    let settings = chatops::settings(config, public_url, key);
    let store = chatops::open_store(&settings).map_err(|e| fail(&format!("{e:#}")))?;
    let pipeline = PipelineHandle::start(settings, adapters, Executors::local_only(), store).await;
    Ok(Attached::Local {
        _lock: lock,
        pipeline,
        replies,
    })
}

fn cli_user(user: Option<String>) -> String {
    user.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "console".into())
}

/// Exit status of a command that followed a job: 0 succeeded, 1 anything else.
fn exit_for(status: Option<&JobStatus>) -> ExitCode {
    match status {
        Some(JobStatus::Succeeded) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

async fn run(
    config: Config,
    user: String,
    play: bool,
    project: String,
    job: String,
    input: String,
) -> ExitCode {
    let Some(project_settings) = config.project(&project).cloned() else {
        let names: Vec<_> = config.projects.iter().map(|p| p.name.to_string()).collect();
        eprintln!(
            "chatops: {}: no project `{project}` (configured: {})",
            config.source.display(),
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        );
        return ExitCode::from(2);
    };
    let mut attached = match attach(&config, "run").await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let command = &project_settings.command;
    let text = if input.is_empty() {
        format!("run {job}")
    } else {
        format!("run {job} {input}")
    };
    let code = match attached.submit(command, &user, text).await {
        Err(e) => {
            eprintln!("chatops: {e}");
            ExitCode::from(1)
        }
        Ok((ack, None)) => {
            eprint!("{ack}");
            ExitCode::from(2)
        }
        Ok((ack, Some(id))) => {
            eprint!("{ack}");
            let manual = matches!(attached.status(id).await, Some(JobStatus::Manual));
            if manual && !play {
                eprintln!(
                    "chatops: job #{id} is manual; play it with `chatops play {id}` (or run again with --play)"
                );
                ExitCode::from(1)
            } else {
                let played = if manual {
                    match attached.submit(command, &user, format!("play {id}")).await {
                        Ok((ack, job)) => {
                            eprint!("{ack}");
                            job.is_some()
                        }
                        Err(e) => {
                            eprintln!("chatops: {e}");
                            false
                        }
                    }
                } else {
                    true
                };
                if played {
                    follow(&config, &mut attached, command, &user, id, true).await
                } else {
                    ExitCode::from(2)
                }
            }
        }
    };
    attached.finish().await;
    code
}

/// `chatops play ID` / `chatops cancel ID`: the command line's play and cancel buttons.
async fn control(config: Config, user: String, id: &str, play: bool) -> ExitCode {
    let Ok(id) = id.parse::<JobId>() else {
        eprintln!("chatops: `{id}` is not a job id (a number, as in `chatops jobs`)");
        return ExitCode::from(2);
    };
    let verb = if play { "play" } else { "cancel" };
    let mut attached = match attach(&config, verb).await {
        Ok(a) => a,
        Err(code) => return code,
    };
    let code = control_inner(&config, &mut attached, &user, id, play).await;
    attached.finish().await;
    code
}

async fn control_inner(
    config: &Config,
    attached: &mut Attached,
    user: &str,
    id: JobId,
    play: bool,
) -> ExitCode {
    let record = match find_job(config, attached.store(), id, 2).await {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Some(project) = config.project(&record.project.to_string()).cloned() else {
        eprintln!(
            "chatops: job #{id} belongs to project `{}`, which {} no longer configures",
            record.project,
            config.source.display()
        );
        return ExitCode::from(2);
    };
    let verb = if play { "play" } else { "cancel" };
    let (ack, job) = match attached
        .submit(&project.command, user, format!("{verb} {id}"))
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("chatops: {e}");
            return ExitCode::from(1);
        }
    };
    if job.is_none() {
        eprint!("{ack}");
        return ExitCode::from(2);
    }
    if !play {
        print!("{ack}");
        return ExitCode::SUCCESS;
    }
    eprint!("{ack}");
    // The reply goes where the job was asked for; it comes here only for a console job
    // followed by this very process.
    let to_us = record.reply_target.platform.as_str() == console::PLATFORM
        && matches!(attached, Attached::Local { .. });
    follow(config, attached, &project.command, user, id, to_us).await
}

/// Streams the job's log to stderr until it ends, then prints its reply (or, when the reply
/// goes to a chat channel, its outcome) on stdout. Ctrl-C cancels the job.
async fn follow(
    config: &Config,
    attached: &mut Attached,
    project_command: &str,
    user: &str,
    id: JobId,
    expect_reply: bool,
) -> ExitCode {
    let log_path = config.data_dir.join("logs").join(format!("{id}.log"));
    let mut follower = chatops_pipeline::joblog::Follower::new(&log_secrets(config));
    let started = std::time::Instant::now();
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    let mut interrupted = false;
    let mut ended_at: Option<std::time::Instant> = None;
    let mut status = None;
    let reply = loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                let mut chunk = Vec::new();
                let _ = follower.poll(&log_path, &mut chunk);
                progress.show(&mut std::io::stderr(), &chunk, started.elapsed());
                if let Some(reply) = attached.reply().await {
                    break Some(reply);
                }
                status = attached.status(id).await;
                let ended = status.as_ref().is_none_or(JobStatus::is_terminal);
                match (ended, ended_at) {
                    (true, _) if !expect_reply => break None,
                    (true, None) => ended_at = Some(std::time::Instant::now()),
                    // The reply should follow the job's end within milliseconds; if it never
                    // comes (the outbox gave up), do not wait forever.
                    (true, Some(t)) if t.elapsed() > Duration::from_secs(10) => break None,
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                progress.show(&mut std::io::stderr(), b"", started.elapsed());
                progress.clear(&mut std::io::stderr());
                eprintln!("chatops: canceling job #{id}…");
                if let Err(e) = attached.submit(project_command, user, format!("cancel {id}")).await {
                    eprintln!("chatops: {e}");
                }
            }
        }
    };
    let mut rest = Vec::new();
    let _ = follower.poll(&log_path, &mut rest);
    let _ = follower.finish(&mut rest);
    if reply.is_some() || status.as_ref().is_none_or(|s| !s.is_terminal()) {
        status = attached.status(id).await;
    }
    progress.finish(&mut std::io::stderr(), &rest, started.elapsed());
    match (&reply, &status) {
        (Some(reply), _) => print!("{reply}"),
        (None, Some(s)) if !expect_reply => println!("job #{id} {}", s.describe()),
        _ => eprintln!("chatops: the pipeline stopped before the job's reply arrived"),
    }
    let _ = std::io::stdout().flush();
    exit_for(status.as_ref())
}

/// The elapsed time under a streaming log: a `running… 12s` status line kept at the bottom of
/// a terminal (erased before more log is written, redrawn after; drawn only when the log is at
/// the start of a line, so it never erases part of one), and a `finished in 12.3s` line at the
/// end whatever stderr is (scripts and tests read it; a pipe gets no redraws).
struct Progress {
    tty: bool,
    /// The seconds the status line on screen shows; `None` when none is drawn.
    drawn: Option<u64>,
    /// Whether the last log byte written ended a line (or none was written).
    at_line_start: bool,
}

impl Progress {
    fn new(tty: bool) -> Progress {
        Progress {
            tty,
            drawn: None,
            at_line_start: true,
        }
    }

    /// Writes `log` (what the log gained) and refreshes the status line.
    fn show(&mut self, out: &mut impl Write, log: &[u8], elapsed: Duration) {
        let secs = elapsed.as_secs();
        if !log.is_empty() || self.drawn.is_some_and(|d| d != secs) {
            self.clear(out);
        }
        if !log.is_empty() {
            let _ = out.write_all(log);
            self.at_line_start = log.ends_with(b"\n");
        }
        if self.tty && self.at_line_start && self.drawn.is_none() {
            let _ = write!(out, "running… {secs}s");
            self.drawn = Some(secs);
        }
        let _ = out.flush();
    }

    /// Erases the status line, if drawn.
    fn clear(&mut self, out: &mut impl Write) {
        if self.drawn.take().is_some() {
            let _ = write!(out, "\r\x1b[2K");
        }
    }

    /// The rest of the log, then the final line.
    fn finish(&mut self, out: &mut impl Write, log: &[u8], elapsed: Duration) {
        self.clear(out);
        let _ = out.write_all(log);
        if !log.is_empty() {
            self.at_line_start = log.ends_with(b"\n");
        }
        if !self.at_line_start {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "finished in {}", elapsed_text(elapsed));
        let _ = out.flush();
    }
}

/// `12.3s` under a minute (tenths help there), else `4m 5s`.
fn elapsed_text(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        chatops_core::reply::format_duration(d)
    }
}

/// Job `id` from the store; else says why not and gives the exit status `code`.
async fn find_job(
    config: &Config,
    store: &chatops_store::Store,
    id: JobId,
    code: u8,
) -> Result<chatops_store::JobRecord, ExitCode> {
    match store.job(id).await {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            eprintln!("chatops: no job #{id} in {}", config.data_dir.display());
            Err(ExitCode::from(code))
        }
        Err(e) => {
            eprintln!("chatops: {e}");
            Err(ExitCode::from(code))
        }
    }
}

/// Opens the store for the read-only commands (`jobs`, `log`): read-only, no migration, no
/// recovery, so it is safe beside a live server (issue #9 item 8).
fn store_of(config: &Config) -> Result<chatops_store::Store, ExitCode> {
    let path = config.data_dir.join("chatops.db");
    if !path.exists() {
        eprintln!(
            "chatops: no store at {} yet: no job has run with this config",
            path.display()
        );
        return Err(ExitCode::from(1));
    }
    chatops_store::Store::open_read_only(&path).map_err(|e| {
        eprintln!("chatops: {e}");
        ExitCode::from(1)
    })
}

fn unix_ms(t: Option<SystemTime>) -> Option<u64> {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
}

async fn jobs(config: Config, limit: usize, json: bool) -> ExitCode {
    let store = match store_of(&config) {
        Ok(s) => s,
        Err(_) if json => {
            println!("{{\"jobs\": []}}");
            return ExitCode::SUCCESS;
        }
        Err(_) => return ExitCode::SUCCESS,
    };
    let records = match store.recent_jobs(limit).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("chatops: {e}");
            return ExitCode::from(1);
        }
    };
    let _ = store.close().await;
    if json {
        let jobs: Vec<_> = records
            .iter()
            .map(|j| {
                serde_json::json!({
                    "id": j.id.0,
                    "project": j.project.as_str(),
                    "job": j.job_name.as_str(),
                    "status": j.status.name(),
                    "exit_code": j.exit_code,
                    "platform": j.platform.as_str(),
                    "channel": j.channel.as_str(),
                    "user": j.user.as_str(),
                    "user_name": j.user_name,
                    "input": j.input,
                    "created_at_ms": unix_ms(Some(j.created_at)),
                    "started_at_ms": unix_ms(j.started_at),
                    "finished_at_ms": unix_ms(j.finished_at),
                    "duration_ms": j.duration.map(|d| d.as_millis() as u64),
                    "canceled_by": j.canceled_by,
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "jobs": jobs }));
    } else {
        println!("    ID  PROJECT      JOB                  STATUS       DURATION   USER");
        for j in &records {
            let duration = j
                .duration
                .map(chatops_core::reply::format_duration)
                .unwrap_or_default();
            println!(
                "{:>6}  {:<12} {:<20} {:<12} {:<10} {}:{}",
                j.id.0,
                j.project.as_str(),
                j.job_name.as_str(),
                j.status.name(),
                duration,
                j.platform.as_str(),
                j.user_name.as_deref().unwrap_or(j.user.as_str())
            );
        }
    }
    ExitCode::SUCCESS
}

async fn log(config: Config, id: &str) -> ExitCode {
    let Ok(id) = id.parse::<JobId>() else {
        eprintln!("chatops: `{id}` is not a job id (a number, as in `chatops jobs`)");
        return ExitCode::from(1);
    };
    let store = match store_of(&config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let record = find_job(&config, &store, id, 1).await;
    let _ = store.close().await;
    let record = match record {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = record
        .log_path
        .unwrap_or_else(|| config.data_dir.join("logs").join(format!("{id}.log")));
    // Cleaned and masked like every other view of a log (a job that never started has no
    // log yet: nothing to print is still a known job).
    let secrets = log_secrets(&config);
    let mut out = std::io::stdout().lock();
    match chatops_pipeline::joblog::copy(&path, &secrets, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatops: cannot print {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
}

/// What `chatops log` and `chatops run` mask: every project's secrets and the server's own
/// (the link key only when it already exists: reading a log must not create one).
fn log_secrets(config: &Config) -> Vec<String> {
    let key = std::fs::read(config.data_dir.join("link.key")).unwrap_or_default();
    chatops::settings(config, String::new(), key).masked_values()
}

/// Jobs hold a pipe and a log file each: 1,000 jobs need ~2,000 descriptors, more than the
/// usual soft limit of 1,024. Raise the soft limit to the hard one.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

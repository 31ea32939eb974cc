//! The `chatops` command line (contract §1): `serve`, `check`, `run`, `jobs`, `log`.

use chatops::check;
use chatops::config::{Config, LoadMode};
use chatops::console::{self, ConsoleAdapter};
use chatops::Application;
use chatops_core::{
    Adapters, ChannelId, ChatCommand, JobId, JobStatus, PlatformId, ReplyTarget, UserId,
};
use chatops_pipeline::PipelineHandle;
use clap::{Args, Parser, Subcommand};
use std::io::{Read, Seek, SeekFrom, Write};
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
        /// Also play the job if it is `when: manual` (otherwise it would wait forever).
        #[arg(long)]
        play: bool,
        project: String,
        job: String,
        /// CHAT_INPUT (the words are joined with spaces).
        input: Vec<String>,
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
    let cli = Cli::parse();
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
            let user = user
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "console".into());
            actix_rt::System::new().block_on(run(config, user, play, project, job, input.join(" ")))
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
    }
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

fn console_command(project_command: &str, user: &str, text: String) -> ChatCommand {
    let platform = PlatformId::new(console::PLATFORM);
    ChatCommand {
        platform: platform.clone(),
        request_id: None,
        team: None,
        channel: ChannelId::new("console"),
        channel_name: Some("console".into()),
        user: UserId::new(user),
        user_name: Some(user.to_owned()),
        slash_command: project_command.to_owned(),
        text,
        reply_to: ReplyTarget {
            platform,
            response_url: None,
            channel: ChannelId::new("console"),
            user: UserId::new(user),
            extra: Default::default(),
        },
        received_at: SystemTime::now(),
        via_button: false,
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
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!("chatops: cannot create {}: {e}", config.data_dir.display());
        return ExitCode::from(2);
    }
    let key = match chatops::link_key(&config.data_dir) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("chatops: {e:#}");
            return ExitCode::from(2);
        }
    };
    let public_url = config.public_url(&config.server.listen);
    let (adapter, mut replies) = ConsoleAdapter::new();
    let mut adapters = Adapters::new();
    adapters.register(Arc::new(adapter));
    let settings = chatops::settings(&config, public_url, key);
    let store = match chatops::open_store(&settings) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatops: {e:#}");
            return ExitCode::from(2);
        }
    };
    let pipeline = PipelineHandle::start(settings, adapters, store.clone()).await;
    let command = &project_settings.command;
    let text = if input.is_empty() {
        format!("run {job}")
    } else {
        format!("run {job} {input}")
    };
    let ack = pipeline.submit(console_command(command, &user, text)).await;
    let Some(id) = ack.job else {
        eprint!("{}", console::plain_text(&ack.reply));
        return ExitCode::from(2);
    };
    eprint!("{}", console::plain_text(&ack.reply));
    if matches!(pipeline.job(id).map(|v| v.status), Some(JobStatus::Manual)) {
        if !play {
            eprintln!("chatops: job #{id} is manual; run again with --play to start it");
            return ExitCode::from(1);
        }
        let played = pipeline
            .submit(console_command(command, &user, format!("play {id}")))
            .await;
        eprint!("{}", console::plain_text(&played.reply));
    }
    let log_path = config.data_dir.join("logs").join(format!("{id}.log"));
    let mut offset = 0u64;
    let mut interrupted = false;
    let mut ended_at: Option<std::time::Instant> = None;
    let reply = loop {
        tokio::select! {
            reply = replies.recv() => break reply,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                offset = copy_new_bytes(&log_path, offset);
                // The reply should follow the job's end within milliseconds; if it never
                // comes (the outbox gave up), do not wait forever.
                let ended = pipeline.job(id).is_none_or(|v| v.status.is_terminal());
                match (ended, ended_at) {
                    (true, None) => ended_at = Some(std::time::Instant::now()),
                    (true, Some(t)) if t.elapsed() > Duration::from_secs(10) => break None,
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                eprintln!("chatops: canceling job #{id}…");
                pipeline.submit(console_command(command, &user, format!("cancel {id}"))).await;
            }
        }
    };
    copy_new_bytes(&log_path, offset);
    let Some(reply) = reply else {
        eprintln!("chatops: the pipeline stopped before the job's reply arrived");
        return ExitCode::from(1);
    };
    print!("{}", console::plain_text(&reply));
    let _ = std::io::stdout().flush();
    let status = pipeline.job_any(id).await.map(|v| v.status);
    let _ = store.close().await;
    match status {
        Some(JobStatus::Succeeded) => ExitCode::SUCCESS,
        _ => ExitCode::from(1),
    }
}

/// Copies what the log gained since `offset` to stderr; returns the new offset.
fn copy_new_bytes(path: &std::path::Path, offset: u64) -> u64 {
    let Ok(mut file) = std::fs::File::open(path) else {
        return offset;
    };
    if file.seek(SeekFrom::Start(offset)).is_err() {
        return offset;
    }
    let mut buf = Vec::new();
    let Ok(n) = file.read_to_end(&mut buf) else {
        return offset;
    };
    let _ = std::io::stderr().write_all(&buf);
    offset + n as u64
}

/// Opens the store for the read-only commands (`jobs`, `log`).
fn store_of(config: &Config) -> Result<chatops_store::Store, ExitCode> {
    let path = config.data_dir.join("chatops.db");
    if !path.exists() {
        eprintln!(
            "chatops: no store at {} yet: no job has run with this config",
            path.display()
        );
        return Err(ExitCode::from(1));
    }
    chatops_store::Store::open(&path).map_err(|e| {
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
    let record = store.job(id).await;
    let _ = store.close().await;
    let record = match record {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("chatops: no job #{id} in {}", config.data_dir.display());
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("chatops: {e}");
            return ExitCode::from(1);
        }
    };
    let path = record
        .log_path
        .unwrap_or_else(|| config.data_dir.join("logs").join(format!("{id}.log")));
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            let mut out = std::io::stdout().lock();
            match std::io::copy(&mut f, &mut out) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("chatops: cannot print {}: {e}", path.display());
                    ExitCode::from(1)
                }
            }
        }
        // A job that never started (manual, refused by a restart) has no log yet: nothing
        // to print is still a known job.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chatops: cannot read {}: {e}", path.display());
            ExitCode::from(1)
        }
    }
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

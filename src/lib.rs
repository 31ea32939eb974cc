//! chatops: run GitLab-CI-style jobs from chat.
//!
//! # Layout
//! - [`config`]: the configuration file (contract §2).
//! - [`Application`]: the composition root. It binds the listener (so tests can use port 0 and
//!   read the real port), builds the adapters, starts the pipeline and the HTTP server once, and
//!   runs until the shutdown future it is given completes.
//! - [`check`]: `chatops check`, every job of every project and whether chat may run it.
//! - [`console`]: the console adapter behind `chatops run`.
//! - [`isolation`]: what keeps jobs from the server's secrets (not dumpable, private data_dir).
//! - [`lock`]: one process runs jobs from a data dir (`data_dir/chatops.lock`).
//! - [`remote`]: the command line hands `run`/`play`/`cancel` to the live server.
//!
//! The crates: `chatops-core` (commands, replies, roles, the adapter trait), `chatops-ci`
//! (`.gitlab-ci.yml`), `chatops-pipeline` (actors, executor), `chatops-web` (routes),
//! `chatops-slack` (and the other platforms).

pub mod check;
pub mod config;
pub mod console;
pub mod isolation;
pub mod lock;
pub mod remote;
pub mod runners;

use anyhow::Context as _;
use chatops_core::{Adapters, ChatAdapter, SystemClock};
use chatops_pipeline::{Executors, PipelineHandle, Settings};
use config::Config;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A built, bound, not yet running server.
pub struct Application {
    addr: SocketAddr,
    server: actix_web::dev::Server,
    pipeline: PipelineHandle,
    /// Held for the server's life: no other process recovers (kills) its jobs meanwhile.
    _lock: lock::DataDirLock,
}

impl Application {
    /// Binds the listener and starts the pipeline. Must run inside an actix `System`.
    pub async fn build(config: &Config) -> anyhow::Result<Application> {
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        for warning in isolation::secure_data_dir(&config.data_dir, config.has_job_user())
            .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?
        {
            tracing::warn!("{warning}");
        }
        // Before the store is opened and recovery runs: recovery kills the jobs of whoever
        // ran before, which must not be a server still running.
        let data_lock = lock::acquire(&config.data_dir, "serve")?;
        let listener = TcpListener::bind(&config.server.listen).with_context(|| {
            format!(
                "{}: cannot listen on {} (server.listen)",
                config.source.display(),
                config.server.listen
            )
        })?;
        let addr = listener.local_addr()?;
        let public_url = config.public_url(&addr.to_string());
        let mut adapters = build_adapters(config, &public_url)?;
        let settings = settings(config, public_url, link_key(&config.data_dir)?);
        let store = open_store(&settings)?;
        warn_about_windows(&adapters, &settings);
        // Replies to commands the command line handed over go back to it through the store.
        adapters.register(Arc::new(console::ConsoleAdapter::relay(store.clone())));
        let mut executors = Executors::local_only();
        let coordinator = match &config.runners {
            Some(section) => {
                // Validated when the config was loaded; warnings were given then.
                let runner_config = section
                    .settings(&settings.public_url, &mut Vec::new())
                    .map_err(|(_, message)| {
                        anyhow::anyhow!("{}: {message}", config.source.display())
                    })?;
                let coordinator = chatops_runner::Coordinator::new(runner_config, store.clone());
                executors.runner = Some(Arc::new(chatops_runner::RunnerExecutor::new(
                    coordinator.clone(),
                    settings.data_dir.join("runner"),
                )));
                Some(coordinator)
            }
            None => None,
        };
        let pipeline = PipelineHandle::start(settings, adapters.clone(), executors, store).await;
        actix_rt::spawn(remote::serve_requests(pipeline.clone()));
        let state = chatops_web::WebState {
            pipeline: pipeline.clone(),
            adapters,
        };
        let server = actix_web::HttpServer::new(move || {
            let app = actix_web::App::new();
            // The runner API (`/api/v4/...`) and the git remote for runners (`/git/...`).
            let app = match &coordinator {
                Some(c) => app.configure(|cfg| c.configure(cfg)),
                None => app,
            };
            app.configure(chatops_web::configure(state.clone()))
        })
        .listen(listener)?
        // Shutdown is an input (`run_until`): actix-web must not install its own handlers.
        .disable_signals()
        .shutdown_timeout(5)
        .run();
        tracing::info!("chatops listening on http://{addr}");
        Ok(Application {
            addr,
            server,
            pipeline,
            _lock: data_lock,
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pipeline(&self) -> &PipelineHandle {
        &self.pipeline
    }

    /// Serves until `shutdown` completes, then stops taking commands, lets running jobs finish
    /// within the grace period, and stops the HTTP server.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = actix_rt::spawn(self.server);
        shutdown.await;
        tracing::info!(
            grace_s = self.pipeline.shared().settings.shutdown_grace.as_secs(),
            "shutting down: no new commands, running jobs may finish"
        );
        self.pipeline.shutdown().await;
        handle.stop(true).await;
        let _ = server.await;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// The chat platforms configured, plus nothing else: the console adapter is the CLI's.
/// `public_url` is where the platforms reach this server (Mattermost posts button clicks there).
pub fn build_adapters(config: &Config, public_url: &str) -> anyhow::Result<Adapters> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        // Never follow a redirect: an allowed response_url host answering 307 to another host
        // would carry the reply past the allow-list. Adapters record a 3xx as a permanent
        // failure (issue #9 item 2).
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("chatops/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let mut adapters = Adapters::new();
    if let Some(slack) = &config.slack {
        let adapter: Arc<dyn ChatAdapter> = Arc::new(chatops_slack::SlackAdapter::new(
            slack.clone(),
            Arc::new(SystemClock),
            http.clone(),
        ));
        adapters.register(adapter);
    }
    if let Some(mattermost) = &config.mattermost {
        let adapter: Arc<dyn ChatAdapter> = Arc::new(
            chatops_mattermost::MattermostAdapter::new(
                mattermost.clone(),
                Arc::new(SystemClock),
                http.clone(),
            )
            .with_public_url(public_url),
        );
        adapters.register(adapter);
    }
    if let Some(discord) = &config.discord {
        let adapter = chatops_discord::DiscordAdapter::new(
            discord.clone(),
            Arc::new(SystemClock),
            http.clone(),
        )
        // The config loader validated the key already; this names the file if it still fails.
        .with_context(|| format!("{}: the discord: section", config.source.display()))?;
        let adapter: Arc<dyn ChatAdapter> = Arc::new(adapter);
        adapters.register(adapter);
    }
    Ok(adapters)
}

/// The pipeline's settings from the config.
pub fn settings(config: &Config, public_url: String, link_key: Vec<u8>) -> Settings {
    let server_secrets = server_secrets(config, &link_key);
    Settings {
        server_secrets,
        data_dir: config.data_dir.clone(),
        public_url,
        max_concurrent_jobs: config.server.max_concurrent_jobs.max(1),
        link_key,
        response_window: config.response_window,
        shutdown_grace: config.shutdown_grace,
        manual_job_ttl: config.manual_job_ttl,
        progress_interval: config.progress_interval,
        projects: config.projects.clone(),
    }
}

/// Shorter server tokens are not masked: masking a 3-letter test token would garble every
/// word that contains it (GitLab refuses to mask variables under 8 characters too).
const MIN_MASKED_SERVER_SECRET: usize = 8;

/// The server's own secrets, masked in every job's output: Slack's signing secret and bot
/// token, Mattermost's command and bot tokens, and the link key as hex (its raw bytes are not
/// text; `server.job_user` is what keeps a job from reading it). Discord's public key is
/// public.
pub fn server_secrets(config: &Config, link_key: &[u8]) -> Vec<String> {
    let mut values = vec![hex_string(link_key)];
    if let Some(slack) = &config.slack {
        values.push(slack.signing_secret.clone());
        values.extend(slack.bot_token.clone());
    }
    if let Some(mattermost) = &config.mattermost {
        values.extend(mattermost.tokens.iter().cloned());
        values.extend(mattermost.bot_token.clone());
    }
    values.retain(|v| v.trim().len() >= MIN_MASKED_SERVER_SECRET);
    values
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens (creating or migrating) the store in `data_dir`.
pub fn open_store(settings: &Settings) -> anyhow::Result<chatops_store::Store> {
    let path = settings.store_path();
    chatops_store::Store::open(&path)
        .with_context(|| format!("cannot open the store {}", path.display()))
}

/// Says at start-up which platforms cannot reply to jobs that outlive their reply window.
fn warn_about_windows(adapters: &Adapters, settings: &Settings) {
    for adapter in adapters.iter() {
        let caps = adapter.capabilities();
        if let Some(window) = settings.response_window.or(caps.followup_window) {
            if !caps.bot_api {
                tracing::warn!(
                    platform = %adapter.platform(),
                    window_s = window.as_secs(),
                    "no bot token: replies to jobs that outlive the platform's reply window cannot be posted (the channel gets a notice before the window closes); set the platform's bot_token"
                );
            }
        }
    }
}

/// The key that signs job-page links: random, made once, kept in `data_dir/link.key` so links
/// stay valid across restarts.
pub fn link_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("link.key");
    if let Ok(key) = std::fs::read(&path) {
        if key.len() >= 32 {
            return Ok(key);
        }
    }
    let mut key = vec![0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .context("cannot read /dev/urandom for the link key")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .and_then(|mut f| f.write_all(&key))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(key)
}

//! The command line beside a live server: `chatops run`, `play` and `cancel` hand their command
//! to the server that holds the data dir's lock ([`crate::lock`]) instead of running jobs
//! themselves (which would mean recovering, i.e. killing, the server's jobs).
//!
//! The hand-over is a row in the store both already share (`cli_requests`), not a socket: the
//! CLI needs no address, token or open port to reach the server, only the data dir it could
//! read anyway, and a request survives a server restart. The server polls the table
//! ([`serve_requests`]), runs each request as a console command of the CLI's user (the same
//! role check as `chatops run` alone), and writes the ack; the job's reply, when the job was
//! created for the request, is written there too by the server's console adapter
//! ([`crate::console::ConsoleAdapter::relay`]). The CLI follows the job's log file meanwhile.

use crate::console::{self, CLI_REQUEST};
use chatops_core::JobId;
use chatops_pipeline::PipelineHandle;
use chatops_store::{CliRequest, CliRequestId, NewCliRequest, Store, StoreError};
use std::time::{Duration, Instant, SystemTime};

/// How often the server looks for requests: a CLI user waits at most this long for the ack.
const POLL: Duration = Duration::from_millis(200);

/// How long the command line waits for its request to be answered.
pub const WAIT: Duration = Duration::from_secs(30);

/// Requests older than this were given up by their command line: not run.
const STALE: Duration = Duration::from_secs(60);

/// Runs the requests command lines hand this server, until its store closes.
pub async fn serve_requests(pipeline: PipelineHandle) {
    let store = pipeline.store().clone();
    loop {
        match store.take_cli_requests(32).await {
            Ok(requests) => {
                for request in requests {
                    actix_rt::spawn(answer(pipeline.clone(), request));
                }
            }
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "cannot read the command line's requests"),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn answer(pipeline: PipelineHandle, request: CliRequest) {
    let r = &request.request;
    tracing::info!(
        request = %request.id,
        pid = r.pid,
        user = %r.user,
        text = %r.text,
        "a command from the command line"
    );
    // A request older than the CLI waits was given up by its CLI (the server was down or
    // stuck): running it now, maybe hours later, would surprise whoever typed it.
    let age = SystemTime::now()
        .duration_since(r.created_at)
        .unwrap_or_default();
    if age > STALE {
        let text = format!(
            "not run: the command waited {}s for a server, longer than its command line waits; run it again\n",
            age.as_secs()
        );
        let _ = pipeline
            .store()
            .answer_cli_request(request.id, text, None, SystemTime::now())
            .await;
        return;
    }
    let mut command = console::command(&r.slash_command, r.user.as_str(), r.text.clone());
    command.user_name = r.user_name.clone();
    command
        .reply_to
        .extra
        .insert(CLI_REQUEST.into(), serde_json::Value::from(request.id.0));
    let ack = pipeline.submit(command).await;
    let text = console::plain_text(&ack.reply);
    if let Err(e) = pipeline
        .store()
        .answer_cli_request(request.id, text, ack.job, SystemTime::now())
        .await
    {
        tracing::warn!(request = %request.id, error = %e, "cannot answer the command line");
    }
}

/// The CLI's side: hands `text` (for the project answering `slash_command`) to the server and
/// waits for its ack.
pub async fn submit(
    store: &Store,
    slash_command: &str,
    user: &str,
    text: String,
) -> Result<(CliRequestId, String, Option<JobId>), String> {
    let request = NewCliRequest {
        created_at: SystemTime::now(),
        pid: std::process::id(),
        slash_command: slash_command.to_owned(),
        text,
        user: user.into(),
        user_name: Some(user.to_owned()),
    };
    let id = store
        .submit_cli_request(request)
        .await
        .map_err(|e| format!("cannot hand the command to the server: {e}"))?;
    let deadline = Instant::now() + WAIT;
    loop {
        match store.cli_request(id).await {
            Ok(Some(r)) if r.answered => return Ok((id, r.ack.unwrap_or_default(), r.job)),
            Ok(_) => {}
            Err(e) => return Err(format!("cannot read the server's answer: {e}")),
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "the server did not take the command within {}s; is it stuck? Its log says more",
                WAIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

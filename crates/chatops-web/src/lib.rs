//! chatops' HTTP side. It mounts every adapter's routes, reads raw bytes and headers and hands
//! them to the adapter (adapters translate, they don't route), and serves `/healthz`, `/metrics`
//! and the job pages.
//!
//! # Layout
//! - [`configure`]: registers every route on an actix-web `App`.
//! - `inbound`: the one handler behind every platform route.
//! - `pages`: `/jobs/{id}`, the signed job page; `/jobs/{id}/events`, its live log (SSE);
//!   `/jobs/{id}/cancel`, its Cancel button (developer links).

mod pages;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chatops_core::{
    Adapters, ChatAdapter, HttpReply, Inbound, InboundError, InboundRequest, RouteKind,
};
use chatops_pipeline::metrics::{self, Acked};
use chatops_pipeline::PipelineHandle;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request body accepted from a platform. Slack's and Mattermost's payloads are a few
/// KiB; actix-web's `Form` would cap at 16 KiB and hide the raw bytes, so we read `Bytes`.
const MAX_BODY: usize = 1 << 20;

/// What every handler needs.
#[derive(Clone)]
pub struct WebState {
    pub pipeline: PipelineHandle,
    pub adapters: Adapters,
}

/// Registers all routes: each adapter's platform routes, health, metrics and job pages.
pub fn configure(state: WebState) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(MAX_BODY))
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .route("/jobs/{id}", web::get().to(pages::job_page))
            .route("/jobs/{id}/events", web::get().to(pages::job_events))
            .route("/jobs/{id}/cancel", web::post().to(pages::cancel));
        for adapter in state.adapters.iter() {
            for route in adapter.routes() {
                let adapter = adapter.clone();
                let kind = route.kind;
                cfg.route(
                    &route.path,
                    web::post().to(
                        move |req: HttpRequest, body: web::Bytes, state: web::Data<WebState>| {
                            inbound(adapter.clone(), kind, req, body, state)
                        },
                    ),
                );
            }
        }
    }
}

/// The handler behind every platform route: verify and parse (adapter), submit (pipeline),
/// answer with the adapter's ack. Verification failures get 401 and cause no work.
async fn inbound(
    adapter: Arc<dyn ChatAdapter>,
    kind: RouteKind,
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<WebState>,
) -> HttpResponse {
    let arrived = Instant::now();
    let request = InboundRequest {
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let platform = adapter.platform();
    match adapter.inbound(kind, &request) {
        Ok(Inbound::Respond(reply)) => to_response(reply),
        Ok(Inbound::Command(command)) => {
            // Debug, not info: at thousands of commands a second one stderr line each was a
            // tenth of a worker's time. The store records every command anyway.
            tracing::debug!(
                platform = %platform,
                user = %command.user,
                channel = %command.channel,
                command = %command.slash_command,
                "command received"
            );
            let ack = submit_within_deadline(&state.pipeline, &adapter, &command).await;
            // Slack shows nothing of a click's HTTP answer: the ack goes out as a message
            // (through the outbox, off the request path so the 200 is not held up).
            if let Some(reply) = adapter.click_answer(&command, &ack) {
                let pipeline = state.pipeline.clone();
                let target = command.reply_to.clone();
                actix_web::rt::spawn(async move { pipeline.send_later(None, target, reply).await });
            }
            let response = to_response(adapter.ack(&command, &ack));
            state.pipeline.metrics().emit(Acked {
                platform: &platform,
                elapsed: arrived.elapsed(),
            });
            response
        }
        Err(err) => {
            match &err {
                InboundError::Unauthorized(why) => {
                    tracing::warn!(platform = %platform, reason = %why, "request refused: verification failed")
                }
                InboundError::BadRequest(why) => {
                    tracing::warn!(platform = %platform, reason = %why, "request refused: malformed")
                }
            }
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let message = match err {
                InboundError::Unauthorized(_) => "request verification failed".to_owned(),
                InboundError::BadRequest(why) => why,
            };
            HttpResponse::build(status)
                .content_type("text/plain; charset=utf-8")
                .body(message)
        }
    }
}

/// Submits a command and waits for its ack, but never past the platform's ack deadline (Slack
/// gives up after 3 s and shows the user an error). Normally the ack takes milliseconds; when
/// reading the CI file is slow (a huge repository, a slow disk), the user gets "working on it"
/// in time and the real ack follows as a message once it exists.
async fn submit_within_deadline(
    pipeline: &PipelineHandle,
    adapter: &Arc<dyn ChatAdapter>,
    command: &chatops_core::ChatCommand,
) -> chatops_core::Reply {
    let deadline = adapter
        .capabilities()
        .ack_deadline
        .saturating_sub(Duration::from_millis(750))
        .max(Duration::from_millis(250));
    let mut task = {
        let pipeline = pipeline.clone();
        let command = command.clone();
        actix_web::rt::spawn(async move { pipeline.submit(command).await })
    };
    match actix_web::rt::time::timeout(deadline, &mut task).await {
        Ok(Ok(ack)) => ack.reply,
        Ok(Err(join)) => {
            tracing::error!(error = %join, "command task failed");
            chatops_pipeline::messages::internal_error("the command failed")
        }
        Err(_) => {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "command slower than the platform's ack deadline: acking now, answering later"
            );
            let pipeline = pipeline.clone();
            let target = command.reply_to.clone();
            actix_web::rt::spawn(async move {
                if let Ok(ack) = task.await {
                    pipeline.send_later(ack.job, target, ack.reply).await;
                }
            });
            chatops_pipeline::messages::working_on_it()
        }
    }
}

/// Converts an adapter's platform-shaped response into an actix response.
pub fn to_response(reply: HttpReply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let mut builder = HttpResponse::build(status);
    if let Some(ct) = reply.content_type {
        builder.content_type(ct);
    }
    builder.body(reply.body)
}

async fn healthz(state: web::Data<WebState>) -> HttpResponse {
    if state.pipeline.is_accepting() {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("shutting down\n")
    }
}

async fn metrics(state: web::Data<WebState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(metrics::CONTENT_TYPE)
        .body(state.pipeline.metrics().render())
}

//! The runner API under `/api/v4/` (runner-protocol §1–§3): `POST runners/verify`,
//! `POST jobs/request` (long poll), `PUT jobs/{id}`, `PATCH jobs/{id}/trace`.
//!
//! Bodies are read as bytes and parsed here, so a bad body is a `400` that says why. Runner
//! tokens come from the body's `token` (or the `RUNNER-TOKEN` header), job tokens from the
//! `JOB-TOKEN` header (any case) or the body's `token`.

use crate::coordinator::{Coordinator, Forbidden, Patched, Report, Updated};
use crate::response::job_response;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Deserialize;
use std::collections::HashMap;
use std::time::Instant;

/// The largest request body: a trace PATCH is at most 1 MiB with the Go runner; room for others.
const BODY_LIMIT: usize = 4 * 1024 * 1024;

pub(crate) fn configure(coordinator: Coordinator, cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v4")
            .app_data(web::Data::new(coordinator))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .route("/runners/verify", web::post().to(verify))
            .route("/jobs/request", web::post().to(request))
            .route("/jobs/{id}", web::put().to(update))
            .route("/jobs/{id}/trace", web::patch().to(trace)),
    );
}

#[derive(Debug, Default, Deserialize)]
struct RunnerBody {
    token: Option<String>,
    last_update: Option<String>,
    info: Option<Info>,
}

#[derive(Debug, Default, Deserialize)]
struct Info {
    #[serde(default)]
    features: HashMap<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct UpdateBody {
    token: Option<String>,
    state: Option<String>,
    failure_reason: Option<String>,
    exit_code: Option<i32>,
    checksum: Option<String>,
    output: Option<Output>,
}

#[derive(Debug, Default, Deserialize)]
struct Output {
    checksum: Option<String>,
    bytesize: Option<u64>,
}

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Parses a JSON body; an empty body is the default.
fn parse<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
}

fn bad_body(e: serde_json::Error) -> HttpResponse {
    HttpResponse::BadRequest().body(format!("the request body is not the expected JSON: {e}"))
}

fn runner_token(req: &HttpRequest, body: &RunnerBody) -> Option<String> {
    body.token
        .clone()
        .or_else(|| header(req, "RUNNER-TOKEN").map(str::to_owned))
}

async fn verify(c: web::Data<Coordinator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let body: RunnerBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let token = runner_token(&req, &body).unwrap_or_default();
    match c.inner.runner_token(&token) {
        Some((index, t)) => {
            tracing::info!(runner = t.name, "runner verified");
            HttpResponse::Ok().json(serde_json::json!({
                "id": index + 1, "token": t.token, "token_expires_at": null,
            }))
        }
        None => HttpResponse::Forbidden().body("403 Forbidden: unknown runner token"),
    }
}

fn no_job(version: u64) -> HttpResponse {
    HttpResponse::NoContent()
        .insert_header(("X-GitLab-Last-Update", version.to_string()))
        .finish()
}

async fn request(c: web::Data<Coordinator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let body: RunnerBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let token = runner_token(&req, &body).unwrap_or_default();
    let inner = &c.inner;
    let Some((_, runner)) = inner.runner_token(&token) else {
        return HttpResponse::Forbidden().body("403 Forbidden: unknown runner token");
    };
    let graceful = body
        .info
        .as_ref()
        .and_then(|i| i.features.get("cancel_gracefully"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let held_until = Instant::now() + inner.config.long_poll;
    loop {
        // Subscribed before looking, so a job queued right after the look still wakes us.
        let mut changes = inner.version.subscribe();
        let version = *changes.borrow_and_update();
        if let Some((spec, job_token)) = inner.offer(runner, graceful) {
            return match job_response(&inner.config, &spec, &job_token) {
                Ok(json) => HttpResponse::Created()
                    .content_type("application/json")
                    .body(json.to_string()),
                Err(e) => {
                    // Never a 403 to a valid runner: 204, and the ack timeout re-offers.
                    tracing::error!(job = spec.job_id, error = %e, "cannot build a runner job");
                    no_job(version)
                }
            };
        }
        let waiting = body.last_update.as_deref() == Some(version.to_string().as_str());
        let left = held_until.saturating_duration_since(Instant::now());
        if !waiting || left.is_zero() {
            return no_job(version);
        }
        match tokio::time::timeout(left, changes.changed()).await {
            Ok(Ok(())) => continue,
            _ => return no_job(*inner.version.borrow()),
        }
    }
}

fn job_id(req: &HttpRequest) -> Option<u64> {
    req.match_info().get("id").and_then(|s| s.parse().ok())
}

fn with_status(
    mut builder: HttpResponseBuilder,
    job_status: &str,
    c: &Coordinator,
) -> HttpResponseBuilder {
    builder
        .insert_header(("Job-Status", job_status))
        .insert_header((
            "X-GitLab-Trace-Update-Interval",
            c.inner.config.update_interval.as_secs().max(1).to_string(),
        ));
    builder
}

/// A job id that is not a number names no job: `403`, as GitLab answers every job-auth failure.
fn unknown_job(c: &Coordinator) -> HttpResponse {
    let f = Forbidden {
        job_status: "failed",
        why: "unknown job",
    };
    forbidden(f, c)
}

fn forbidden(f: Forbidden, c: &Coordinator) -> HttpResponse {
    with_status(HttpResponse::Forbidden(), f.job_status, c)
        .body(format!("403 Forbidden: {}", f.why))
}

async fn update(c: web::Data<Coordinator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let Some(id) = job_id(&req) else {
        return unknown_job(&c);
    };
    let body: UpdateBody = match parse(&body) {
        Ok(b) => b,
        Err(e) => return bad_body(e),
    };
    let token = header(&req, "JOB-TOKEN").map(str::to_owned).or(body.token);
    let output = body.output.unwrap_or_default();
    let report = Report {
        state: body.state.as_deref().unwrap_or("running"),
        failure_reason: body.failure_reason,
        exit_code: body.exit_code,
        // The Go runner's ack carries an empty `output`: no checksum to check.
        checksum: output.checksum.or(body.checksum).filter(|c| !c.is_empty()),
        bytesize: output.bytesize,
    };
    match c.inner.update(id, token.as_deref(), report) {
        Ok(Updated::Ok(status)) => with_status(HttpResponse::Ok(), status, &c).finish(),
        Ok(Updated::TraceMismatch) => with_status(
            HttpResponse::build(StatusCode::PRECONDITION_FAILED),
            "running",
            &c,
        )
        .body(
            "the trace's size or checksum does not match what chatops stored; send it again from 0",
        ),
        Ok(Updated::BadState) => {
            HttpResponse::BadRequest().body("state must be running, success or failed")
        }
        Err(f) => forbidden(f, &c),
    }
}

/// `Content-Range: <start>-<end>`: the start (the end is ignored: the Go runner's is
/// inclusive, gitlab-python-runner's exclusive).
fn range_start(req: &HttpRequest) -> Option<u64> {
    let value = header(req, "Content-Range")?;
    let value = value.trim().trim_start_matches("bytes").trim();
    let (start, _end) = value.split_once('-')?;
    start.trim().parse().ok()
}

async fn trace(c: web::Data<Coordinator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let Some(id) = job_id(&req) else {
        return unknown_job(&c);
    };
    let Some(start) = range_start(&req) else {
        return HttpResponse::BadRequest()
            .body("a trace PATCH needs a Content-Range: <start>-<end> header");
    };
    let token = header(&req, "JOB-TOKEN");
    match c.inner.patch_trace(id, token, start, &body) {
        Ok(Patched::Appended { len, job_status }) => {
            with_status(HttpResponse::Accepted(), job_status, &c)
                .insert_header(("Range", format!("0-{len}")))
                .finish()
        }
        Ok(Patched::Mismatch { len }) => HttpResponse::RangeNotSatisfiable()
            .insert_header(("Range", format!("0-{len}")))
            .finish(),
        Err(f) => forbidden(f, &c),
    }
}

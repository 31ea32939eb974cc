//! `GET /jobs/{id}?t=TOKEN`: a job's page, its status and log, refreshed while the job runs.
//! `&raw=1` gives the log as plain text. The token comes from the signed link in replies.

use crate::WebState;
use actix_web::{web, HttpResponse};
use chatops_core::reply::format_duration;
use chatops_core::JobId;
use chatops_pipeline::joblog;
use serde::Deserialize;

/// How much of the end of a log the page shows (the full log stays on disk: `chatops log ID`).
const PAGE_LOG_BYTES: usize = 512 * 1024;

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    t: String,
    #[serde(default)]
    raw: Option<String>,
}

pub(crate) async fn job_page(
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    state: web::Data<WebState>,
) -> HttpResponse {
    let Ok(id) = path.parse::<JobId>() else {
        return not_found();
    };
    // Same answer for a bad token and an unknown job: a page's existence is not disclosed.
    if !state.pipeline.links().verify(id, &query.t) {
        return not_found();
    }
    let Some(view) = state.pipeline.job_any(id).await else {
        return not_found();
    };
    let path = view.log_path.clone();
    // Cleaned, then masked with every secret the server knows (the page shows what the reply
    // shows: a secret printed split by escapes is masked here too).
    let secrets = state.pipeline.shared().settings.masked_values();
    let tail = web::block(move || joblog::read_tail(&path, PAGE_LOG_BYTES, &secrets))
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let log = tail.text;
    if query.raw.is_some() {
        return HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(log);
    }
    let refresh = if view.status.is_terminal() {
        String::new()
    } else {
        "<meta http-equiv=\"refresh\" content=\"2\">".to_owned()
    };
    let duration = match (view.started_at, view.finished_at) {
        (Some(s), Some(f)) => f
            .duration_since(s)
            .map(|d| format!(" in {}", format_duration(d)))
            .unwrap_or_default(),
        _ => String::new(),
    };
    let omitted = if tail.skipped > 0 {
        format!(
            "<p class=\"note\">… {} earlier bytes not shown (<code>chatops log {}</code> prints the whole log)</p>",
            tail.skipped, id
        )
    } else {
        String::new()
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>chatops #{id} {job}</title>\
<style>body{{font-family:sans-serif;margin:2em}}pre{{background:#111;color:#ddd;padding:1em;overflow:auto}}.note{{color:#777}}</style></head>\
<body><h1>Job #{id} <code>{job}</code></h1><p>Project <b>{project}</b> · started by {user} on {platform} · <b>{status}</b>{duration}</p>\
{omitted}<pre>{log}</pre></body></html>",
        id = id,
        job = html_escape(&view.job),
        project = html_escape(view.project.as_str()),
        user = html_escape(view.user.as_str()),
        platform = html_escape(&view.platform),
        status = html_escape(&view.status.describe()),
        log = html_escape(&log),
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such job page (check the link)\n")
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            html_escape("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
    }
}

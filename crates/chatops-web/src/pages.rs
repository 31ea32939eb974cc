//! The job page and its live log.
//!
//! - `GET /jobs/{id}?t=TOKEN`: status, who, when, input, and the log with its ANSI colours
//!   rendered as HTML (`ansi-to-html`, which escapes the text). `&raw=1` gives the log as plain
//!   text. While the job runs, a small inline script follows the log live.
//! - `GET /jobs/{id}/events?t=TOKEN&from=OFFSET`: that live log as Server-Sent Events. Each
//!   `log` event carries the HTML of the lines completed since (its `id` is the byte offset of
//!   the raw log read so far, so a browser reconnecting with `Last-Event-ID` gets exactly the
//!   rest); a final `status` event ends the stream when the job ends.
//! - `POST /jobs/{id}/cancel` (form: `t`, `d`): the Cancel button, shown only on a *developer
//!   link* (`&d=GRANT`, see `chatops_pipeline::links`). The cancel is the chat command
//!   `cancel ID` from the grant's user, so it is checked like one (role, project).
//!
//! Every byte of log the page and the stream send comes from `joblog`'s coloured view: cleaned,
//! masked on the cleaned text, then coloured (a secret split by escapes never shows).

use crate::WebState;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use chatops_core::reply::format_duration;
use chatops_core::{ChatCommand, JobId, JobStatus};
use chatops_pipeline::joblog::{self, ColourFollower};
use chatops_pipeline::links::DeveloperGrant;
use chatops_pipeline::pipeline::JobView;
use chatops_pipeline::PipelineHandle;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

/// How much of the end of a log the page shows (the full log stays on disk: `chatops log ID`).
const PAGE_LOG_BYTES: usize = 512 * 1024;
/// How often a live stream looks at the log file and the job's status.
const STREAM_POLL: Duration = Duration::from_millis(250);
/// A comment sent on a quiet stream: it finds clients that went away (their stream is dropped
/// on the failed write) and keeps proxies from timing the connection out.
const STREAM_KEEPALIVE: Duration = Duration::from_secs(15);

/// The page's only script: follows the live log. Static (the values it needs are `data-`
/// attributes), so the Content-Security-Policy allows exactly it by its hash.
const LIVE_SCRIPT: &str = r#"(function(){
var log=document.getElementById("log"),st=document.getElementById("status"),b=document.body;
var src=new EventSource(b.dataset.events);
src.addEventListener("log",function(e){
var atEnd=window.innerHeight+window.scrollY>=document.body.scrollHeight-4;
log.insertAdjacentHTML("beforeend",e.data);
if(atEnd){window.scrollTo(0,document.body.scrollHeight);}
});
src.addEventListener("status",function(e){
var s=JSON.parse(e.data);st.textContent=s.describe;st.className="st "+s.status;
var f=document.getElementById("cancel");if(f){f.remove();}
src.close();
});
})();"#;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
pre{background:#111;color:#ddd;padding:1em;overflow:auto;white-space:pre-wrap}\
.note{color:#777}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dt{color:#777}dd{margin:0}.st{font-weight:bold}.succeeded{color:#080}\
.failed,.timed_out,.interrupted{color:#b00}.canceled,.expired{color:#a60}\
button{background:#b00;color:#fff;border:0;padding:.5em 1em;border-radius:4px;cursor:pointer}";

#[derive(Deserialize)]
pub(crate) struct PageQuery {
    #[serde(default)]
    t: String,
    /// A developer grant: shows the Cancel button.
    #[serde(default)]
    d: Option<String>,
    #[serde(default)]
    raw: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    #[serde(default)]
    t: String,
    /// The raw-log offset the page was rendered to (a reconnect's `Last-Event-ID` wins).
    #[serde(default)]
    from: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct CancelForm {
    #[serde(default)]
    t: String,
    #[serde(default)]
    d: String,
}

/// The job behind a signed link, or `None` (a bad token and an unknown job answer alike: a
/// page's existence is not disclosed).
async fn signed_job(state: &WebState, id: &str, token: &str) -> Option<JobView> {
    let id = id.parse::<JobId>().ok()?;
    if !state.pipeline.links().verify(id, token) {
        return None;
    }
    state.pipeline.job_any(id).await
}

pub(crate) async fn job_page(
    path: web::Path<String>,
    query: web::Query<PageQuery>,
    state: web::Data<WebState>,
) -> HttpResponse {
    let Some(view) = signed_job(&state, &path, &query.t).await else {
        return not_found();
    };
    let id = view.id;
    // Cleaned, then masked with every secret the server knows (the page shows what the reply
    // shows: a secret printed split by escapes is masked here too).
    let secrets = Arc::clone(&state.pipeline.shared().masked);
    let log_path = view.log_path.clone();
    if query.raw.is_some() {
        let tail = web::block(move || joblog::read_tail(&log_path, PAGE_LOG_BYTES, &secrets))
            .await
            .ok()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        return page_headers(HttpResponse::Ok())
            .content_type("text/plain; charset=utf-8")
            .body(tail.text);
    }
    let terminal = view.status.is_terminal();
    let tail = web::block(move || {
        joblog::read_coloured_tail(&log_path, PAGE_LOG_BYTES, &secrets, terminal)
    })
    .await
    .ok()
    .and_then(|r| r.ok())
    .unwrap_or_default();
    let record = state.pipeline.store().job(id).await.ok().flatten();
    let grant = query.d.as_deref().map(|d| {
        state
            .pipeline
            .links()
            .verify_developer(id, d, SystemTime::now())
    });
    let mut details = Vec::new();
    let who = record
        .as_ref()
        .and_then(|r| r.user_name.clone())
        .map_or_else(|| view.user.to_string(), |n| format!("{n} ({})", view.user));
    details.push((
        "Started by",
        format!("{} on {}", html_escape(&who), html_escape(&view.platform)),
    ));
    details.push(("Created", time_html(view.created_at)));
    if let Some(started) = view.started_at {
        details.push(("Started", time_html(started)));
    }
    if let Some(finished) = view.finished_at {
        let took = view
            .started_at
            .and_then(|s| finished.duration_since(s).ok())
            .map(|d| format!(" (took {})", format_duration(d)))
            .unwrap_or_default();
        details.push(("Finished", format!("{}{took}", time_html(finished))));
    }
    if let Some(record) = &record {
        let input = if record.input.is_empty() {
            "<span class=\"note\">none</span>".to_owned()
        } else {
            // The input is what the user typed: shown escaped, and masked like the log (a
            // user could paste a secret).
            let masked =
                chatops_exec::output::mask_secrets(&record.input, &state.pipeline.shared().masked);
            format!("<code>{}</code>", html_escape(&masked))
        };
        details.push(("Input", input));
    }
    let details: String = details
        .into_iter()
        .map(|(k, v)| format!("<dt>{k}</dt><dd>{v}</dd>"))
        .collect();
    let omitted = if tail.skipped > 0 {
        format!(
            "<p class=\"note\">… {} earlier bytes not shown (<code>chatops log {}</code> prints the whole log)</p>",
            tail.skipped, id
        )
    } else {
        String::new()
    };
    let cancel = match (&grant, terminal) {
        (Some(Some(_)), false) => format!(
            "<form id=\"cancel\" method=\"post\" action=\"/jobs/{id}/cancel\">\
<input type=\"hidden\" name=\"t\" value=\"{t}\"><input type=\"hidden\" name=\"d\" value=\"{d}\">\
<button type=\"submit\">Cancel job</button></form>",
            t = html_escape(&query.t),
            d = html_escape(query.d.as_deref().unwrap_or_default()),
        ),
        (Some(None), _) => "<p class=\"note\">This developer link has expired or is not valid: \
the page is view-only. Ask chat for a new link to cancel the job.</p>"
            .to_owned(),
        _ => String::new(),
    };
    let (body_attrs, script) = if terminal {
        (String::new(), String::new())
    } else {
        let events = format!(
            "/jobs/{id}/events?t={}&from={}",
            html_escape(&query.t),
            tail.offset
        );
        (
            format!(" data-events=\"{}\"", html_escape(&events)),
            format!("<script>{LIVE_SCRIPT}</script>"),
        )
    };
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width\"><title>chatops #{id} {job}</title>\
<style>{STYLE}</style></head><body{body_attrs}>\
<h1>Job #{id} <code>{job}</code></h1>\
<p>Project <b>{project}</b> · <span id=\"status\" class=\"st {status_class}\">{status}</span></p>\
<dl>{details}</dl>{cancel}{omitted}<pre id=\"log\">{log}</pre>{script}</body></html>",
        job = html_escape(&view.job),
        project = html_escape(view.project.as_str()),
        status_class = view.status.name(),
        status = html_escape(&view.status.describe()),
        log = ansi_html(&tail.text),
    );
    page_headers(HttpResponse::Ok())
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// What the live stream keeps between events.
struct Stream {
    pipeline: PipelineHandle,
    id: JobId,
    path: PathBuf,
    follower: Option<ColourFollower>,
    done: bool,
    quiet_since: std::time::Instant,
}

pub(crate) async fn job_events(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
    state: web::Data<WebState>,
) -> HttpResponse {
    let Some(view) = signed_job(&state, &path, &query.t).await else {
        return not_found();
    };
    // A reconnecting browser says where it was (the `id` of the last event it got).
    let from = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.from)
        .unwrap_or(0);
    let secrets = Arc::clone(&state.pipeline.shared().masked);
    let log_path = view.log_path.clone();
    // Replays the log up to `from` silently: colours and masking need what came before.
    let follower = web::block(move || {
        let mut follower = ColourFollower::new(&secrets);
        follower.skip_to(&log_path, from).map(|()| follower)
    })
    .await
    .ok()
    .and_then(|r| r.ok());
    let Some(follower) = follower else {
        return HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body("cannot read the job's log; see the server's log\n");
    };
    let stream = Stream {
        pipeline: state.pipeline.clone(),
        id: view.id,
        path: view.log_path,
        follower: Some(follower),
        done: false,
        quiet_since: std::time::Instant::now(),
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        let event = next_event(&mut s).await?;
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(event)), s))
    });
    page_headers(HttpResponse::Ok())
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        // Tells nginx not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(events)
}

/// Waits for the next thing to send: new log lines, a keepalive, or the final status (after
/// which the stream ends). `None` ends the stream.
async fn next_event(s: &mut Stream) -> Option<String> {
    if s.done {
        return None;
    }
    loop {
        // The status first, then the log: a job is terminal only once its log is complete,
        // so reading after seeing "ended" reads everything.
        let status = s.pipeline.job_any(s.id).await.map(|v| v.status);
        let ended = status.as_ref().is_none_or(JobStatus::is_terminal);
        let mut follower = s.follower.take()?;
        let path = s.path.clone();
        let read = web::block(move || {
            let mut out = Vec::new();
            let result = follower.poll(&path, &mut out);
            if ended {
                follower.finish(&mut out);
            }
            (follower, out, result)
        })
        .await;
        let Ok((follower, out, result)) = read else {
            return None;
        };
        let offset = follower.offset();
        s.follower = Some(follower);
        if let Err(e) = result {
            tracing::warn!(job = %s.id, error = %e, "job page stream: cannot read the log");
            s.done = true;
            return Some(status_event(status.as_ref()));
        }
        let mut event = String::new();
        if !out.is_empty() {
            event.push_str(&log_event(offset, &String::from_utf8_lossy(&out)));
        }
        if ended {
            s.done = true;
            event.push_str(&status_event(status.as_ref()));
            return Some(event);
        }
        if !event.is_empty() {
            s.quiet_since = std::time::Instant::now();
            return Some(event);
        }
        if s.quiet_since.elapsed() >= STREAM_KEEPALIVE {
            s.quiet_since = std::time::Instant::now();
            return Some(": keepalive\n\n".to_owned());
        }
        actix_web::rt::time::sleep(STREAM_POLL).await;
    }
}

/// A `log` event: the lines' HTML, one `data:` line per line (the browser joins them with
/// line breaks again).
fn log_event(offset: u64, text: &str) -> String {
    let html = ansi_html(text);
    let mut event = format!("id: {offset}\nevent: log\n");
    for line in html.split('\n') {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    event
}

fn status_event(status: Option<&JobStatus>) -> String {
    let (name, describe) = status.map_or(("unknown", "is gone".to_owned()), |s| {
        (s.name(), s.describe())
    });
    let data = serde_json::json!({"status": name, "describe": describe});
    format!("event: status\ndata: {data}\n\n")
}

pub(crate) async fn cancel(
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<CancelForm>,
    state: web::Data<WebState>,
) -> HttpResponse {
    // CSRF: the grant travels in the form body (never a cookie), and a browser's cross-site
    // post is refused by its Origin / Sec-Fetch-Site.
    if !same_origin(&req) {
        return forbidden("cross-site request refused: use the Cancel button on the job page\n");
    }
    let Some(view) = signed_job(&state, &path, &form.t).await else {
        return not_found();
    };
    let links = state.pipeline.links();
    let Some(grant) = links.verify_developer(view.id, &form.d, SystemTime::now()) else {
        return forbidden(
            "this link cannot cancel the job (view-only, or expired): ask chat for a new developer link\n",
        );
    };
    let Some(command) = cancel_command(&state, &view, &grant).await else {
        return not_found();
    };
    let ack = state.pipeline.submit(command).await;
    if ack.job.is_none() {
        return forbidden(&format!("{}\n", ack.reply.plain_summary()));
    }
    // Post/redirect/get: back to the page, which now shows the cancel going through.
    let back = format!(
        "/jobs/{}?t={}&d={}",
        view.id,
        url_encode(&form.t),
        url_encode(&form.d)
    );
    page_headers(HttpResponse::SeeOther())
        .insert_header((header::LOCATION, back))
        .finish()
}

/// `cancel ID` as the grant's user would type it in the job's channel.
async fn cancel_command(
    state: &WebState,
    view: &JobView,
    grant: &DeveloperGrant,
) -> Option<ChatCommand> {
    let record = state.pipeline.store().job(view.id).await.ok().flatten()?;
    let slash_command = state
        .pipeline
        .shared()
        .settings
        .project(&record.project)
        .map(|p| p.command.clone())?;
    Some(ChatCommand {
        platform: grant.platform.clone(),
        request_id: None,
        team: None,
        channel: record.channel.clone(),
        channel_name: None,
        user: grant.user.clone(),
        user_name: None,
        slash_command,
        text: format!("cancel {}", view.id),
        reply_to: record.reply_target.clone(),
        received_at: SystemTime::now(),
        via_button: true,
    })
}

/// Whether a browser says the request comes from this site. Non-browser clients send neither
/// header; they still need the token and the grant.
fn same_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// Headers every page answer carries: the token is in the URL, so no referrer leaves the page;
/// the only script is ours (by hash), styles are inline (the colours), no framing.
fn page_headers(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    static CSP: OnceLock<String> = OnceLock::new();
    let csp = CSP.get_or_init(|| {
        let hash = base64(&Sha256::digest(LIVE_SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        )
    });
    builder
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.as_str()))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
    builder
}

/// The coloured view's text as HTML: `ansi-to-html` escapes the text and turns the colour
/// escapes into spans. Should it refuse the input, the text is shown escaped, without colours.
fn ansi_html(text: &str) -> String {
    static CONVERTER: OnceLock<ansi_to_html::Converter> = OnceLock::new();
    let converter = CONVERTER.get_or_init(ansi_to_html::Converter::new);
    converter
        .convert(text)
        .unwrap_or_else(|_| html_escape(&chatops_exec::output::strip_ansi(text)))
}

fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("no such job page (check the link)\n")
}

fn forbidden(why: &str) -> HttpResponse {
    HttpResponse::Forbidden()
        .content_type("text/plain; charset=utf-8")
        .body(why.to_owned())
}

/// A time in UTC, `2026-12-05 09:14:03 UTC`, in a `<time>` element.
fn time_html(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    let (hh, mm, ss) = (rest / 3600, rest % 3600 / 60, rest % 60);
    format!(
        "<time datetime=\"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z\">{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} UTC</time>"
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Standard base64 with padding (the CSP hash source needs it; one use, no dependency).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Percent-encodes a query value (tokens are hex and digits; this is for safety only).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
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

    #[test]
    fn colours_become_spans_and_text_is_escaped() {
        let html = ansi_html("\x1b[31m<b>red</b>\x1b[0m plain\n");
        assert!(
            html.contains("<span style='color:var(--red,#a00)'>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;red&lt;/b&gt;"), "{html}");
    }

    #[test]
    fn a_log_event_keeps_each_line_in_its_own_data_field() {
        let event = log_event(42, "one\ntwo\n");
        assert_eq!(
            event,
            "id: 42\nevent: log\ndata: one\ndata: two\ndata: \n\n"
        );
    }

    #[test]
    fn base64_and_dates_are_right() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_428), (2025, 12, 6));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}

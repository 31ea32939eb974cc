//! The wire protocol's edge cases, spoken with raw HTTP as the Go runner, Collabora's client and
//! gitlab-python-runner speak it.

use crate::support::*;
use chatops_runner::RunnerOutcome;
use reqwest::Response;
use serde_json::json;
use std::time::Duration;

fn header(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn patch(
    url: &str,
    id: u64,
    token: &str,
    range: &str,
    body: &'static [u8],
) -> Result<Response, reqwest::Error> {
    client()
        .patch(format!("{url}/api/v4/jobs/{id}/trace"))
        .header("JOB-TOKEN", token)
        .header("Content-Range", range)
        .header("Content-Type", "text/plain")
        .body(body)
        .send()
        .await
}

async fn put(
    url: &str,
    id: u64,
    token: &str,
    body: serde_json::Value,
) -> Result<Response, reqwest::Error> {
    client()
        .put(format!("{url}/api/v4/jobs/{id}"))
        .header("JOB-TOKEN", token)
        .json(&body)
        .send()
        .await
}

#[actix_rt::test]
async fn verify_answers_known_tokens_and_refuses_unknown_ones() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let verify = |token: &str| {
        client()
            .post(format!("{}/api/v4/runners/verify", app.url))
            .header("RUNNER-TOKEN", token)
            .json(&json!({"token": token, "system_id": "s_0123456789ab", "info": {}}))
            .send()
    };
    let ok = verify(TOKEN).await?;
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await?;
    assert_eq!(
        body,
        json!({"id": 1, "token": TOKEN, "token_expires_at": null})
    );
    assert_eq!(verify("glrt-nobody").await?.status(), 403);
    assert_eq!(request(&app.url, "glrt-nobody", None).await?.status(), 403);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn an_empty_queue_is_204_with_last_update_and_a_job_is_201_json_without_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let empty = request(&app.url, TOKEN, None).await?;
    assert_eq!(empty.status(), 204);
    assert!(header(&empty, "X-GitLab-Last-Update").is_some());
    app.coordinator.submit(spec(dir.path(), 1, &["echo hi"]))?;
    let job = request(&app.url, TOKEN, None).await?;
    assert_eq!(job.status(), 201);
    assert_eq!(
        header(&job, "Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(header(&job, "X-GitLab-Last-Update"), None);
    let job: serde_json::Value = job.json().await?;
    assert_eq!(job["id"], 1);
    let token = job_token(&job);
    assert!(token.starts_with("glcbt-"), "{token}");
    let vars = job["variables"].as_array().cloned().unwrap_or_default();
    let var = |k: &str| {
        vars.iter()
            .find(|v| v["key"] == k)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(var("GIT_STRATEGY")["value"], "none");
    assert_eq!(var("CI_JOB_TOKEN")["value"], token.as_str());
    assert_eq!(var("CI_JOB_TOKEN")["masked"], true);
    assert_eq!(var("CHAT_INPUT")["raw"], true);
    assert_eq!(var("GITLAB_PYTHON_RUNNER_COMPUTED")["value"], "1");
    assert!(job["git_info"]["repo_url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/git/demo.git") && u.contains(&token)));
    assert_eq!(job["steps"][0]["script"], json!(["echo hi"]));
    assert_eq!(job["features"]["trace_sections"], true);
    // Taken: the queue is empty again.
    assert_eq!(request(&app.url, TOKEN, None).await?.status(), 204);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_held_request_is_released_by_a_submit() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Held up to 50 s: a 201 (not a 204 at the end of the hold) shows the submit released it.
    let app = App::start(dir.path(), |c| c.long_poll = Duration::from_secs(50)).await?;
    let first = request(&app.url, TOKEN, None).await?;
    let version = header(&first, "X-GitLab-Last-Update").ok_or("no X-GitLab-Last-Update")?;
    let url = app.url.clone();
    let held = actix_rt::spawn(async move { request(&url, TOKEN, Some(&version)).await });
    app.coordinator.submit(spec(dir.path(), 1, &["echo hi"]))?;
    let resp = tokio::time::timeout(WAIT, held).await???;
    assert_eq!(resp.status(), 201);
    // A stale last_update is answered at once, with the current version.
    let stale = request(&app.url, TOKEN, Some("0")).await?;
    assert_eq!(stale.status(), 204);
    assert_ne!(header(&stale, "X-GitLab-Last-Update").as_deref(), Some("0"));
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn jobs_go_only_to_runners_whose_tags_cover_theirs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let mut tagged = spec(dir.path(), 1, &["true"]);
    tagged.tags = vec!["linux".into()];
    app.coordinator.submit(tagged)?;
    assert_eq!(
        request(&app.url, TOKEN, None).await?.status(),
        204,
        "untagged runner"
    );
    assert_eq!(take(&app.url, TAGGED_TOKEN).await?["id"], 1);
    app.coordinator.submit(spec(dir.path(), 2, &["true"]))?;
    assert_eq!(
        request(&app.url, TAGGED_TOKEN, None).await?.status(),
        204,
        "runner without run_untagged"
    );
    assert_eq!(take(&app.url, TOKEN).await?["id"], 2);
    app.stop().await;
    Ok(())
}

/// A server with job 1 (`true`) taken by a runner: the job's handle and token.
async fn taken(
    dir: &std::path::Path,
) -> Result<(App, chatops_runner::RunnerJobHandle, String), Box<dyn std::error::Error>> {
    let app = App::start(dir, |_| {}).await?;
    let handle = app.coordinator.submit(spec(dir, 1, &["true"]))?;
    let token = job_token(&take(&app.url, TOKEN).await?);
    Ok((app, handle, token))
}

#[actix_rt::test]
async fn trace_patches_append_at_the_stored_length_whatever_the_range_end() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (app, handle, token) = taken(dir.path()).await?;
    let log_path = dir.path().join("logs/1.log");
    // The Go runner: inclusive end.
    let a = patch(&app.url, 1, &token, "0-5", b"hello ").await?;
    assert_eq!(a.status(), 202);
    assert_eq!(header(&a, "Range").as_deref(), Some("0-6"));
    assert_eq!(header(&a, "Job-Status").as_deref(), Some("running"));
    assert_eq!(
        header(&a, "X-GitLab-Trace-Update-Interval").as_deref(),
        Some("1")
    );
    // gitlab-python-runner: exclusive end.
    assert_eq!(
        patch(&app.url, 1, &token, "6-12", b"world\n")
            .await?
            .status(),
        202
    );
    // A gap or an overlap: 416 and the stored length.
    for range in ["3-8", "20-25"] {
        let r = patch(&app.url, 1, &token, range, b"again").await?;
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(header(&r, "Range").as_deref(), Some("0-12"), "{range}");
    }
    // Bytes, not text: half a UTF-8 sequence is kept as sent.
    assert_eq!(
        patch(&app.url, 1, &token, "12-12", b"\xc3").await?.status(),
        202
    );
    assert_eq!(
        patch(&app.url, 1, &token, "13-13", b"\xa9").await?.status(),
        202
    );
    let no_range = client()
        .patch(format!("{}/api/v4/jobs/1/trace", app.url))
        .header("JOB-TOKEN", &token)
        .body("x")
        .send()
        .await?;
    assert_eq!(no_range.status(), 400);
    assert_eq!(std::fs::read(&log_path)?, "hello world\né".as_bytes());
    assert_eq!(handle.trace_len(), 14);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn wrong_job_tokens_get_403_with_job_status() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    app.coordinator.submit(spec(dir.path(), 1, &["true"]))?;
    let token = job_token(&take(&app.url, TOKEN).await?);
    let wrong = patch(&app.url, 1, "glcbt-wrong", "0-0", b"x").await?;
    assert_eq!(wrong.status(), 403);
    assert!(header(&wrong, "Job-Status").is_some());
    assert_eq!(
        put(&app.url, 1, "glcbt-wrong", json!({"state": "success"}))
            .await?
            .status(),
        403
    );
    assert_eq!(
        patch(&app.url, 2, &token, "0-0", b"x").await?.status(),
        403,
        "another job's id"
    );
    let no_token = client()
        .put(format!("{}/api/v4/jobs/1", app.url))
        .json(&json!({"state": "success"}))
        .send()
        .await?;
    assert_eq!(no_token.status(), 403);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_final_put_ends_the_job_with_its_exit_code_and_revokes_the_token() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let handle = app.coordinator.submit(spec(dir.path(), 1, &["exit 3"]))?;
    let token = job_token(&take(&app.url, TOKEN).await?);
    let ack = put(
        &app.url,
        1,
        &token,
        json!({"token": token, "state": "running"}),
    )
    .await?;
    assert_eq!(ack.status(), 200);
    assert_eq!(header(&ack, "Job-Status").as_deref(), Some("running"));
    let end = json!({"state": "failed", "failure_reason": "script_failure", "exit_code": 3});
    let done = put(&app.url, 1, &token, end.clone()).await?;
    assert_eq!(done.status(), 200);
    assert_eq!(header(&done, "Job-Status").as_deref(), Some("failed"));
    assert_eq!(
        outcome(&handle).await?,
        RunnerOutcome::Failed {
            exit_code: Some(3),
            reason: "script_failure".into()
        }
    );
    let again = put(&app.url, 1, &token, end).await?;
    assert_eq!(again.status(), 403);
    assert_eq!(header(&again, "Job-Status").as_deref(), Some("failed"));
    assert_eq!(patch(&app.url, 1, &token, "0-0", b"x").await?.status(), 403);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_checksum_mismatch_is_412_once_then_the_resent_trace_is_accepted() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (app, handle, token) = taken(dir.path()).await?;
    let log_path = dir.path().join("logs/1.log");
    assert_eq!(
        patch(&app.url, 1, &token, "0-4", b"hellX").await?.status(),
        202
    );
    // The runner's own bytes were "hello": its checksum disagrees with what was stored.
    let hello = format!("crc32:{:08x}", crc32(b"hello"));
    let end = json!({"state": "success", "output": {"checksum": hello, "bytesize": 5}});
    let first = put(&app.url, 1, &token, end.clone()).await?;
    assert_eq!(first.status(), 412);
    // The runner sends its whole trace again from 0, then the final PUT.
    assert_eq!(
        patch(&app.url, 1, &token, "0-4", b"hello").await?.status(),
        202
    );
    assert_eq!(put(&app.url, 1, &token, end).await?.status(), 200);
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Succeeded);
    assert_eq!(std::fs::read(&log_path)?, b"hello");
    app.stop().await;
    Ok(())
}

/// CRC-32/IEEE, bit by bit: the test's own, independent of the coordinator's.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Job 1, taken and acknowledged by a runner that advertises `cancel_gracefully`.
async fn running_on_a_graceful_runner(
    app: &App,
    dir: &std::path::Path,
) -> Result<(chatops_runner::RunnerJobHandle, String), Box<dyn std::error::Error>> {
    let handle = app.coordinator.submit(spec(dir, 1, &["sleep 100"]))?;
    let body = json!({"token": TOKEN, "info": {"features": {"cancel_gracefully": true}}});
    let job: serde_json::Value = client()
        .post(format!("{}/api/v4/jobs/request", app.url))
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    let token = job_token(&job);
    let ack = put(&app.url, 1, &token, json!({"state": "running"})).await?;
    assert_eq!(ack.status(), 200);
    Ok((handle, token))
}

#[actix_rt::test]
async fn a_graceful_runner_sees_canceling_then_canceled_after_the_grace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |c| c.cancel_grace = Duration::from_secs(2)).await?;
    let (handle, token) = running_on_a_graceful_runner(&app, dir.path()).await?;
    handle.cancel();
    let canceling = patch(&app.url, 1, &token, "0-1", b"a\n").await?;
    assert_eq!(canceling.status(), 202);
    assert_eq!(
        header(&canceling, "Job-Status").as_deref(),
        Some("canceling")
    );
    let heartbeat = put(&app.url, 1, &token, json!({"state": "running"})).await?;
    assert_eq!(
        header(&heartbeat, "Job-Status").as_deref(),
        Some("canceling")
    );
    // The runner runs after_script and keeps talking; the grace runs out.
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Canceled);
    let canceled = patch(&app.url, 1, &token, "2-3", b"b\n").await?;
    assert_eq!(canceled.status(), 403);
    assert_eq!(header(&canceled, "Job-Status").as_deref(), Some("canceled"));
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_graceful_runner_that_stops_in_time_ends_canceled() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let (handle, token) = running_on_a_graceful_runner(&app, dir.path()).await?;
    handle.cancel();
    let end = json!({"state": "failed", "failure_reason": "job_canceled"});
    let done = put(&app.url, 1, &token, end).await?;
    assert_eq!(done.status(), 200);
    assert_eq!(header(&done, "Job-Status").as_deref(), Some("canceled"));
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Canceled);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_runner_without_graceful_cancel_gets_canceled_at_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let handle = app
        .coordinator
        .submit(spec(dir.path(), 1, &["sleep 100"]))?;
    let token = job_token(&take(&app.url, TOKEN).await?);
    assert_eq!(
        patch(&app.url, 1, &token, "0-1", b"a\n").await?.status(),
        202
    );
    handle.cancel();
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Canceled);
    let r = patch(&app.url, 1, &token, "2-3", b"b\n").await?;
    assert_eq!(r.status(), 403);
    assert_eq!(header(&r, "Job-Status").as_deref(), Some("canceled"));
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn an_unacknowledged_offer_is_offered_again_with_a_fresh_token_then_not_picked() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |c| c.ack_timeout = Duration::from_secs(1)).await?;
    let handle = app.coordinator.submit(spec(dir.path(), 1, &["true"]))?;
    let first = job_token(&take(&app.url, TOKEN).await?);
    // No PUT, no PATCH: the runner dropped it. After the ack timeout it is offered again.
    let second = job_token(&take(&app.url, TOKEN).await?);
    assert_ne!(first, second);
    let old = patch(&app.url, 1, &first, "0-0", b"x").await?;
    assert_eq!(old.status(), 403, "the first attempt's token is revoked");
    // Not acknowledged again: the job ends.
    assert_eq!(outcome(&handle).await?, RunnerOutcome::NotPicked);
    assert_eq!(request(&app.url, TOKEN, None).await?.status(), 204);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_python_runner_style_client_is_understood() -> TestResult {
    // gitlab-python-runner: no RUNNER-TOKEN header, no ack PUT (its first PATCH is the ack),
    // `Job-Token` header spelling, exclusive range end, token only in the final PUT's body.
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |c| c.ack_timeout = Duration::from_secs(1)).await?;
    let handle = app.coordinator.submit(spec(dir.path(), 1, &["true"]))?;
    let token = job_token(&take(&app.url, TOKEN).await?);
    let r = client()
        .patch(format!("{}/api/v4/jobs/1/trace", app.url))
        .header("Job-Token", &token)
        .header("Content-Range", "0-6")
        .body("output")
        .send()
        .await?;
    assert_eq!(r.status(), 202);
    // Let three ack timeouts pass (waiting for time, not for work): the job is still this
    // runner's, not offered again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        request(&app.url, TOKEN, None).await?.status(),
        204,
        "not offered again"
    );
    let done = client()
        .put(format!("{}/api/v4/jobs/1", app.url))
        .json(&json!({"info": {}, "token": token, "state": "success"}))
        .send()
        .await?;
    assert_eq!(done.status(), 200);
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Succeeded);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_valid_runner_never_gets_403_even_when_chatops_is_in_trouble() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A public_url no job response can be built from: internal trouble on every offer.
    let app = App::start(dir.path(), |c| c.public_url = "not a url".into()).await?;
    app.coordinator.submit(spec(dir.path(), 1, &["true"]))?;
    for _ in 0..3 {
        let r = request(&app.url, TOKEN, None).await?;
        assert_eq!(r.status(), 204);
        assert!(header(&r, "X-GitLab-Last-Update").is_some());
    }
    // A body that is not JSON from a runner whose header token is valid is a 400, not a 403.
    let r = client()
        .post(format!("{}/api/v4/jobs/request", app.url))
        .header("RUNNER-TOKEN", TOKEN)
        .body("{not json")
        .send()
        .await?;
    assert_eq!(r.status(), 400);
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_trace_past_the_size_limit_fails_the_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (app, handle, token) = taken(dir.path()).await?;
    // The Go runner's largest patch is 1 MiB; 4 MiB patches are accepted too.
    let chunk = vec![b'x'; 4 * 1024 * 1024];
    let limit = chatops_runner::coordinator::TRACE_LIMIT;
    let mut at = 0u64;
    while at + chunk.len() as u64 <= limit {
        let r = client()
            .patch(format!("{}/api/v4/jobs/1/trace", app.url))
            .header("JOB-TOKEN", &token)
            .header(
                "Content-Range",
                format!("{at}-{}", at + chunk.len() as u64 - 1),
            )
            .body(chunk.clone())
            .send()
            .await?;
        assert_eq!(r.status(), 202, "at {at}");
        at += chunk.len() as u64;
    }
    let over = patch(&app.url, 1, &token, &format!("{at}-{at}"), b"!").await?;
    assert_eq!(over.status(), 403);
    assert_eq!(header(&over, "Job-Status").as_deref(), Some("failed"));
    assert_eq!(
        outcome(&handle).await?,
        RunnerOutcome::Failed {
            exit_code: None,
            reason: "trace_size_exceeded".into()
        }
    );
    assert_eq!(handle.trace_len(), limit);
    app.stop().await;
    Ok(())
}

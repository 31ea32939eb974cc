//! A restarted chatops resumes the jobs runners hold: same store, same port, the runner keeps
//! PATCHing and PUTting with the job token it had.

use crate::support::*;
use chatops_runner::RunnerOutcome;
use chatops_testrunner::TestRunner;

#[actix_rt::test]
async fn a_new_coordinator_on_the_same_store_resumes_a_running_job() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stop_file = dir.path().join("stop");
    let app = App::start(dir.path(), |_| {}).await?;
    let port = app
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or("no port")?;
    let script = format!(
        "while [ ! -f '{}' ]; do echo tick; sleep 0.2; done; echo finished",
        stop_file.display()
    );
    let spec = spec(dir.path(), 7, &[&script]);
    let log_path = spec.log_path.clone();
    let handle = app.coordinator.submit(spec)?;
    // A job no runner can take stays queued across the restart.
    let mut queued = crate::support::spec(dir.path(), 8, &["true"]);
    queued.tags = vec!["nobody-has-this".into()];
    app.coordinator.submit(queued)?;
    let runner = TestRunner::start(&app.url, TOKEN)?;
    until("ticks in the trace", || async { handle.trace_len() > 20 }).await?;
    drop(handle);
    app.stop().await;

    let app = App::start_on(dir.path(), port, |_| {}).await?;
    let handles = app.coordinator.resume().await?;
    let mut ids: Vec<u64> = handles.iter().map(|h| h.job_id()).collect();
    ids.sort_unstable();
    assert_eq!(ids, [7, 8]);
    let handle = handles
        .iter()
        .find(|h| h.job_id() == 7)
        .ok_or("job 7 not resumed")?;
    let resumed_at = handle.trace_len();
    assert_eq!(
        resumed_at,
        std::fs::metadata(&log_path)?.len(),
        "trace continues at the file's length"
    );
    until(
        "the runner's trace to reach the new coordinator",
        || async { handle.trace_len() > resumed_at },
    )
    .await?;
    std::fs::write(&stop_file, "")?;
    assert_eq!(outcome(handle).await?, RunnerOutcome::Succeeded);
    let trace = log(&log_path);
    assert!(trace.contains("finished"), "{trace}");
    assert_eq!(handle.runner().as_deref(), Some("shell-1"));
    // Nothing left to resume but the queued job.
    let left: Vec<u64> = app
        .coordinator
        .resume()
        .await?
        .iter()
        .map(|h| h.job_id())
        .collect();
    assert_eq!(left, [8]);
    runner.kill();
    app.stop().await;
    Ok(())
}

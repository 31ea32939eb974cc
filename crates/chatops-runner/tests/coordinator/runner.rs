//! Collabora's runner client runs jobs end to end against the coordinator.

use crate::support::*;
use chatops_runner::RunnerOutcome;
use chatops_testrunner::TestRunner;
use std::time::Duration;

#[actix_rt::test]
async fn a_runner_runs_a_job_and_its_output_is_the_trace() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let mut spec = spec(
        dir.path(),
        1,
        &["echo \"input=$CHAT_INPUT\"", "echo job=$CI_JOB_ID"],
    );
    spec.after_script = vec!["echo after-line".into()];
    let log_path = spec.log_path.clone();
    let handle = app.coordinator.submit(spec)?;
    let runner = TestRunner::start(&app.url, TOKEN)?;
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Succeeded);
    let trace = log(&log_path);
    // Raw: `$world` is not expanded.
    assert!(trace.contains("input=hello $world"), "{trace}");
    assert!(trace.contains("job=1"), "{trace}");
    assert!(
        trace.contains("\x1b[32;1m$ echo job=$CI_JOB_ID\x1b[0;m"),
        "{trace}"
    );
    assert!(trace.contains(":step_script\r\x1b[0K"), "{trace}");
    assert!(trace.contains("after-line"), "{trace}");
    assert_eq!(handle.trace_len(), trace.len() as u64);
    assert_eq!(handle.runner().as_deref(), Some("shell-1"));
    runner.kill();
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_chat_reply_section_reaches_the_trace_intact() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let spec = spec(
        dir.path(),
        2,
        &[
            r#"echo -e "section_start:$(date +%s):chat_reply\r\033[0K\nthe answer""#,
            r#"echo -e "section_end:$(date +%s):chat_reply\r\033[0K""#,
        ],
    );
    let log_path = spec.log_path.clone();
    let handle = app.coordinator.submit(spec)?;
    let runner = TestRunner::start(&app.url, TOKEN)?;
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Succeeded);
    let trace = log(&log_path);
    let start = trace
        .find(":chat_reply\r\x1b[0K\nthe answer")
        .ok_or(trace.clone())?;
    let end = trace.rfind(":chat_reply\r\x1b[0K").ok_or(trace.clone())?;
    assert!(start < end, "{trace}");
    runner.kill();
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_failing_script_fails_the_job_and_stops_there() -> TestResult {
    let dir = tempfile::tempdir()?;
    let app = App::start(dir.path(), |_| {}).await?;
    let spec = spec(dir.path(), 3, &["echo before", "exit 3", "echo never"]);
    let log_path = spec.log_path.clone();
    let handle = app.coordinator.submit(spec)?;
    let runner = TestRunner::start(&app.url, TOKEN)?;
    // Collabora's client sends no exit code (the protocol test checks one that is sent).
    match outcome(&handle).await? {
        RunnerOutcome::Failed {
            exit_code: None, ..
        } => {}
        other => panic!("expected Failed, got {other:?}"),
    }
    let trace = log(&log_path);
    assert!(
        trace.contains("before") && !trace.contains("\nnever"),
        "{trace}"
    );
    runner.kill();
    app.stop().await;
    Ok(())
}

/// Whether a process whose command line holds `marker` is alive.
fn alive(marker: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(marker))
            .unwrap_or(false)
    })
}

/// A job printing `tick` every 0.2 s for ten minutes, taken by a test runner; `marker` is in
/// its command line, so its processes can be found.
struct Ticking {
    _dir: tempfile::TempDir,
    app: App,
    handle: chatops_runner::RunnerJobHandle,
    runner: TestRunner,
    marker: &'static str,
}

impl Ticking {
    async fn start(
        marker: &'static str,
        timeout: Duration,
        tune: impl FnOnce(&mut chatops_runner::RunnerConfig),
    ) -> Result<Ticking, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let app = App::start(dir.path(), tune).await?;
        let script =
            format!("for i in $(seq 1 3000); do echo tick; sleep 0.2; done; echo {marker}");
        let mut spec = spec(dir.path(), 4, &[&script]);
        spec.timeout = timeout;
        let handle = app.coordinator.submit(spec)?;
        let runner = TestRunner::start(&app.url, TOKEN)?;
        Ok(Ticking {
            _dir: dir,
            app,
            handle,
            runner,
            marker,
        })
    }

    async fn ticked(&self) -> Result<(), String> {
        until("ticks in the trace", || async {
            self.handle.trace_len() > 20
        })
        .await
    }

    async fn processes_gone(&self) -> Result<(), String> {
        until("the job's processes to be gone", || async {
            !alive(self.marker)
        })
        .await
    }

    async fn stop(self) {
        self.runner.kill();
        self.app.stop().await;
    }
}

#[actix_rt::test]
async fn cancel_mid_job_cancels_it_and_kills_the_process() -> TestResult {
    let job = Ticking::start("cancel-marker-5f2a", Duration::from_secs(600), |_| {}).await?;
    job.ticked().await?;
    assert!(alive(job.marker));
    job.handle.cancel();
    assert_eq!(outcome(&job.handle).await?, RunnerOutcome::Canceled);
    job.processes_gone().await?;
    job.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_job_past_its_timeout_times_out() -> TestResult {
    let job = Ticking::start("timeout-marker-77c1", Duration::from_secs(4), |_| {}).await?;
    assert_eq!(outcome(&job.handle).await?, RunnerOutcome::TimedOut);
    job.processes_gone().await?;
    job.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn a_killed_runner_is_lost_after_lost_after() -> TestResult {
    let lost_after = |c: &mut chatops_runner::RunnerConfig| c.lost_after = Duration::from_secs(3);
    let job = Ticking::start("lost-marker-0b3e", Duration::from_secs(600), lost_after).await?;
    job.ticked().await?;
    let Ticking {
        _dir,
        app,
        handle,
        runner,
        marker,
    } = job;
    runner.kill();
    // SIGKILL is delivered asynchronously: wait for the processes to go, do not race them.
    until("kill() to kill the job's processes", || async {
        !alive(marker)
    })
    .await?;
    match outcome(&handle).await? {
        RunnerOutcome::Lost { last_seen_secs } => assert!(last_seen_secs >= 3),
        other => panic!("expected Lost, got {other:?}"),
    }
    app.stop().await;
    Ok(())
}

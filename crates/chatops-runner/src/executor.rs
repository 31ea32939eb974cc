//! [`RunnerExecutor`]: the `runner` executor (issue #10). A job goes to the coordinator's queue;
//! a GitLab runner takes it and PATCHes its trace, which the coordinator appends raw to
//! `data_dir/runner/<id>.trace` (its offsets are the runner's). This executor follows that file
//! into the job's log through a [`TraceSink`] (masked like a local job's, reply cut alike), and
//! maps the runner's final report to a job status. After a restart, [`RunnerExecutor::resume`]
//! re-reads the raw trace from the start into a fresh log, and goes on following it.

use crate::{Coordinator, RunnerJobHandle, RunnerJobSpec, RunnerOutcome, Variable};
use chatops_core::{JobId, JobStatus};
use chatops_exec::output::{error_line, notice_line};
use chatops_exec::{
    single_command, BoxFuture, ExecHandle, ExecResult, ExecSpec, Executor, JobControl, Resumed,
    TraceSink, TraceStats, REPLY_TAIL_BYTES,
};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the raw trace is checked for new bytes: the job page and live progress see a
/// runner's output this much later than the coordinator does, at most.
const FOLLOW_EVERY: Duration = Duration::from_millis(100);

/// Runs jobs on GitLab runners through a [`Coordinator`].
pub struct RunnerExecutor {
    coordinator: Coordinator,
    /// Where raw traces live (`data_dir/runner`).
    trace_dir: PathBuf,
}

impl RunnerExecutor {
    pub fn new(coordinator: Coordinator, trace_dir: PathBuf) -> RunnerExecutor {
        RunnerExecutor {
            coordinator,
            trace_dir,
        }
    }

    /// The raw trace of job `id`, as its runner sent it.
    pub fn trace_path(&self, id: JobId) -> PathBuf {
        self.trace_dir.join(format!("{id}.trace"))
    }
}

struct Control {
    job: RunnerJobHandle,
    stats: Arc<TraceStats>,
    canceled_by: std::sync::Mutex<Option<Option<String>>>,
}

impl JobControl for Control {
    fn cancel(&self, by: Option<String>) {
        {
            let mut slot = self.canceled_by.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                *slot = Some(by);
            }
        }
        self.job.cancel();
    }

    fn log_bytes(&self) -> u64 {
        self.stats.log_bytes()
    }

    fn peak_retained_bytes(&self) -> usize {
        self.stats.peak_retained_bytes()
    }
}

impl Executor for RunnerExecutor {
    fn name(&self) -> &'static str {
        "runner"
    }

    fn needs_workdir(&self) -> bool {
        false
    }

    fn start(
        &self,
        spec: ExecSpec,
    ) -> std::io::Result<(ExecHandle, BoxFuture<'static, ExecResult>)> {
        let mut sink = TraceSink::open(&spec.log_path, spec.secrets.clone(), REPLY_TAIL_BYTES)?;
        let raw = self.trace_path(spec.job_id);
        if let Some(dir) = raw.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // A stale file (an id reused after a data reset) must not become this job's trace.
        let _ = std::fs::remove_file(&raw);
        let job = self
            .coordinator
            .submit(runner_spec(&spec, raw.clone()))
            .map_err(std::io::Error::other)?;
        sink.write(
            notice_line(&format!(
                "Waiting for a GitLab runner{}...",
                tags_text(&spec.tags)
            ))
            .as_bytes(),
        );
        let single = single_command(&spec.before_script, &spec.script);
        Ok(follow(job, sink, raw, single, spec.timeout))
    }

    fn resume(
        &self,
        jobs: Vec<(JobId, PathBuf)>,
        secrets: Arc<[String]>,
    ) -> BoxFuture<'static, Vec<Resumed>> {
        let coordinator = self.coordinator.clone();
        Box::pin(async move {
            let handles = match coordinator.resume().await {
                Ok(handles) => handles,
                Err(e) => {
                    tracing::error!(error = %e, "cannot resume the jobs on runners; they are marked interrupted");
                    return Vec::new();
                }
            };
            let mut resumed = Vec::new();
            for job in handles {
                let Some((id, log)) = jobs.iter().find(|(id, _)| id.0 == job.job_id()) else {
                    // The store says it is over: nobody waits for it any more.
                    job.cancel();
                    continue;
                };
                let Some(spec) = job.spec() else { continue };
                let sink = match TraceSink::open(log, Arc::clone(&secrets), REPLY_TAIL_BYTES) {
                    Ok(sink) => sink,
                    Err(e) => {
                        tracing::error!(job = %id, error = %e, "cannot reopen the job's log; it is marked interrupted");
                        job.cancel();
                        continue;
                    }
                };
                tracing::info!(job = %id, runner = ?job.runner(), "following the runner's job again after the restart");
                let single = single_command(&spec.before_script, &spec.script);
                let (handle, done) = follow(job, sink, spec.log_path.clone(), single, spec.timeout);
                resumed.push(Resumed {
                    job_id: *id,
                    handle,
                    done,
                });
            }
            resumed
        })
    }
}

fn follow(
    job: RunnerJobHandle,
    sink: TraceSink,
    raw: PathBuf,
    single_command: bool,
    timeout: Duration,
) -> (ExecHandle, BoxFuture<'static, ExecResult>) {
    let control = Arc::new(Control {
        job: job.clone(),
        stats: sink.stats(),
        canceled_by: std::sync::Mutex::new(None),
    });
    let handle = ExecHandle::new(control.clone());
    let started = Instant::now();
    let future = Box::pin(async move {
        let mut sink = sink;
        let mut pos = 0u64;
        let outcome = loop {
            tokio::select! {
                outcome = job.wait() => break outcome,
                _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            pos = copy_new(&raw, pos, job.trace_len(), &mut sink);
        };
        copy_new(&raw, pos, u64::MAX, &mut sink);
        let runner = job.runner().unwrap_or_else(|| "no runner".into());
        let by = control
            .canceled_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let status = match outcome {
            RunnerOutcome::Succeeded => JobStatus::Succeeded,
            RunnerOutcome::Failed { exit_code, reason } => {
                if reason != "script_failure" && !reason.is_empty() {
                    sink.write(
                        error_line(&format!("The runner ({runner}) reports: {reason}")).as_bytes(),
                    );
                }
                JobStatus::Failed { exit_code }
            }
            RunnerOutcome::Canceled => JobStatus::Canceled { by: by.flatten() },
            RunnerOutcome::TimedOut => JobStatus::TimedOut { after: timeout },
            RunnerOutcome::Lost { last_seen_secs } => {
                sink.write(
                    error_line(&format!(
                        "The runner ({runner}) stopped answering: nothing from it for {last_seen_secs} s. The job is failed; it may still be running there."
                    ))
                    .as_bytes(),
                );
                JobStatus::Failed { exit_code: None }
            }
            RunnerOutcome::NotPicked => {
                sink.write(
                    error_line(
                        "No GitLab runner took the job it was offered (twice): is a runner with these tags polling chatops?",
                    )
                    .as_bytes(),
                );
                JobStatus::Failed { exit_code: None }
            }
        };
        let end = sink.finish_with_stats(single_command);
        ExecResult {
            status,
            output: end.output,
            duration: started.elapsed(),
            log_bytes: end.log_bytes,
        }
    }) as BoxFuture<'static, ExecResult>;
    (handle, future)
}

/// Copies the raw trace's bytes `[from, to)` (to its end when shorter) into `sink`; returns
/// where it stopped. A read error leaves the rest for the next call.
fn copy_new(raw: &Path, from: u64, to: u64, sink: &mut TraceSink) -> u64 {
    if to <= from {
        return from;
    }
    let Ok(mut file) = std::fs::File::open(raw) else {
        return from;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return from;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = from;
    let mut left = to - from;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        match file.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                sink.write(&buf[..n]);
                pos += n as u64;
                left -= n as u64;
            }
        }
    }
    pos
}

fn tags_text(tags: &[String]) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        format!(" with tags {}", tags.join(", "))
    }
}

fn runner_spec(spec: &ExecSpec, raw: PathBuf) -> RunnerJobSpec {
    let variables = spec
        .variables()
        .into_iter()
        .map(|v| Variable {
            key: v.key.to_owned(),
            value: v.value.to_owned(),
            masked: v.masked,
            // Chat input is data, never `$VAR`-expanded by the runner (a user typing
            // `$CI_JOB_TOKEN` gets those characters).
            raw: v.key == "CHAT_INPUT" || v.masked,
            file: false,
            public: !v.masked,
        })
        .collect();
    RunnerJobSpec {
        job_id: spec.job_id.0,
        job_name: spec.job_name.clone(),
        stage: String::new(),
        project: spec.project.clone(),
        source: spec.source.clone(),
        variables,
        before_script: spec.before_script.clone(),
        script: spec.script.clone(),
        after_script: spec.after_script.clone(),
        timeout: spec.timeout,
        tags: spec.tags.clone(),
        log_path: raw,
    }
}

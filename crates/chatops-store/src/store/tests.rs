//! Tests of the store through its public handle, on real SQLite files in temporary folders.

use super::*;
use crate::model::{OutboxState, Outcome};
use chatops_core::{ChatCommand, Inline, JobStatus, Tone, Via};
use std::time::UNIX_EPOCH;
use tempfile::TempDir;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fixed instant `secs` after a round base time (whole milliseconds, so round trips compare
/// equal).
fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

fn target(platform: &str) -> ReplyTarget {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "thread".into(),
        serde_json::Value::from("1700000000.000100"),
    );
    ReplyTarget {
        platform: platform.into(),
        response_url: Some("https://hooks.slack.com/commands/T1/2/3".into()),
        channel: "C024BE91L".into(),
        user: "U024BE7LH".into(),
        extra,
    }
}

fn chat(platform: &str, request_id: Option<&str>, text: &str) -> ChatCommand {
    ChatCommand {
        platform: platform.into(),
        request_id: request_id.map(str::to_owned),
        team: Some("T0001".into()),
        channel: "C024BE91L".into(),
        channel_name: Some("ops".into()),
        user: "U024BE7LH".into(),
        user_name: Some("steve".into()),
        slash_command: "/demo".into(),
        text: text.into(),
        reply_to: target(platform),
        received_at: t(0),
        via_button: false,
    }
}

fn accepted(request_id: Option<&str>) -> CommandRecord {
    CommandRecord::new(
        &chat("slack", request_id, "run deploy staging"),
        Outcome::Accepted,
    )
    .with_project("demo".into())
}

fn new_job(name: &str) -> NewJob {
    NewJob {
        project: "demo".into(),
        job_name: name.into(),
        pipeline_id: None,
        status: JobStatus::Queued { position: 0 },
        created_at: t(1),
        input: "staging\nsecond line".into(),
        reply_target: target("slack"),
        user_name: Some("steve".into()),
        when: Some("on_success".into()),
        resource_group: Some("production".into()),
        log_path: None,
    }
}

fn reply(text: &str) -> Reply {
    Reply::new(
        chatops_core::Visibility::InChannel,
        Tone::Success,
        vec![Inline::Strong(text.into()), Inline::LineBreak],
    )
}

async fn create_job(store: &Store, name: &str) -> Result<JobId, StoreError> {
    store
        .record_command(accepted(None), Some(new_job(name)))
        .await?
        .job()
        .ok_or_else(|| StoreError::Corrupt("no job created".into()))
}

fn open(dir: &TempDir) -> Result<Store, StoreError> {
    Store::open(&dir.path().join("data/chatops.db"))
}

// ---------------------------------------------------------------------------------------------
// Open, reopen, ids

#[tokio::test]
async fn reopening_keeps_commands_and_jobs() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let recorded = store
        .record_command(accepted(Some("trigger-1")), Some(new_job("deploy")))
        .await?;
    let Recorded::New {
        command,
        job: Some(id),
    } = recorded
    else {
        panic!("expected a new command with a job, got {recorded:?}");
    };
    store
        .update_job(
            id,
            JobUpdate::started(t(2), Some(4242)).with_log_path(dir.path().join("logs/1.log")),
        )
        .await?;
    store.close().await?;

    let store = open(&dir)?;
    let job = store
        .job(id)
        .await?
        .ok_or("the job is gone after reopening")?;
    assert_eq!(job.project.as_str(), "demo");
    assert_eq!(job.job_name.as_str(), "deploy");
    assert_eq!(
        job.pipeline_id, id.0,
        "a chat pipeline is numbered like its job"
    );
    assert_eq!(job.status, JobStatus::Running);
    assert_eq!(job.created_at, t(1));
    assert_eq!(job.started_at, Some(t(2)));
    assert_eq!(job.pgid, Some(4242));
    assert_eq!(job.input, "staging\nsecond line");
    assert_eq!(job.reply_target, target("slack"));
    assert_eq!(job.platform.as_str(), "slack");
    assert_eq!(job.channel.as_str(), "C024BE91L");
    assert_eq!(job.user.as_str(), "U024BE7LH");
    assert_eq!(job.when.as_deref(), Some("on_success"));
    assert_eq!(job.resource_group.as_deref(), Some("production"));
    assert_eq!(job.log_path, Some(dir.path().join("logs/1.log")));

    let commands = store.recent_commands(10).await?;
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0].id, command);
    let logged = &commands[0].record;
    assert_eq!(logged.text, "run deploy staging");
    assert_eq!(logged.request_id.as_deref(), Some("trigger-1"));
    assert_eq!(logged.user_name.as_deref(), Some("steve"));
    assert_eq!(logged.outcome, Outcome::Accepted);
    assert_eq!(
        logged.about,
        Some(id),
        "the command points at the job it made"
    );
    assert_eq!(logged.received_at, t(0));
    Ok(())
}

#[tokio::test]
async fn job_ids_increase_across_reopen_and_are_never_reused() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let first = create_job(&store, "a").await?;
    let second = create_job(&store, "b").await?;
    assert!(second > first);
    // Even if the newest job were deleted, its id must not come back: links and buttons name it.
    store
        .call_for_test(move |conn| {
            conn.execute("DELETE FROM commands", [])?;
            conn.execute("DELETE FROM jobs WHERE id = ?1", [second.to_string()])
                .map_err(StoreError::from)
        })
        .await?;
    store.close().await?;

    let store = open(&dir)?;
    let third = create_job(&store, "c").await?;
    assert!(third > second, "{third} should follow {second}");
    Ok(())
}

#[tokio::test]
async fn a_newer_database_is_refused() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("chatops.db");
    {
        let conn = Connection::open(&path)?;
        conn.pragma_update(None, "user_version", 1000)?;
    }
    match Store::open(&path) {
        Err(err @ StoreError::TooNew { .. }) => {
            assert!(err.to_string().contains("newer than this chatops"), "{err}");
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Commands

#[tokio::test]
async fn a_command_delivered_twice_runs_once() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let first = store
        .record_command(
            accepted(Some("13345224609.738474920")),
            Some(new_job("deploy")),
        )
        .await?;
    let second = store
        .record_command(
            accepted(Some("13345224609.738474920")),
            Some(new_job("deploy")),
        )
        .await?;
    let (
        Recorded::New {
            command: original,
            job: Some(job),
        },
        Recorded::Duplicate {
            command: again,
            original: points_to,
            job: dup_job,
        },
    ) = (first, second)
    else {
        panic!("expected new then duplicate, got {first:?} then {second:?}");
    };
    assert_eq!(points_to, original);
    assert_eq!(dup_job, Some(job));
    assert_ne!(again, original, "the duplicate is logged as its own row");
    assert_eq!(store.recent_jobs(10).await?.len(), 1, "no second job");

    let log = store.recent_commands(10).await?;
    assert_eq!(log[0].record.outcome, Outcome::Duplicate);
    assert!(log[0]
        .record
        .reason
        .as_deref()
        .is_some_and(|r| r.contains(&original.to_string())));

    // The same id from another platform is another command; no id is never a duplicate.
    let mut discord = accepted(Some("13345224609.738474920"));
    discord.platform = "discord".into();
    assert!(!store.record_command(discord, None).await?.is_duplicate());
    assert!(!store
        .record_command(accepted(None), None)
        .await?
        .is_duplicate());
    assert!(!store
        .record_command(accepted(None), None)
        .await?
        .is_duplicate());
    Ok(())
}

#[tokio::test]
async fn refused_commands_are_logged_with_their_reason() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let refused = CommandRecord::new(
        &chat("mattermost", Some("r1"), "cancel 99"),
        Outcome::Refused,
    )
    .with_project("demo".into())
    .with_reason("your role (reporter) cannot cancel jobs")
    .with_about(JobId(99));
    let recorded = store.record_command(refused, None).await?;
    assert_eq!(recorded.job(), None, "a refused command creates no job");
    let log = store.recent_commands(1).await?;
    let entry = &log[0].record;
    assert_eq!(entry.outcome, Outcome::Refused);
    assert_eq!(
        entry.reason.as_deref(),
        Some("your role (reporter) cannot cancel jobs")
    );
    assert_eq!(
        entry.about,
        Some(JobId(99)),
        "kept even though no such job exists"
    );
    assert_eq!(entry.platform.as_str(), "mattermost");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Jobs

#[tokio::test]
async fn a_finished_job_keeps_its_status() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = create_job(&store, "deploy").await?;
    store
        .update_job(id, JobUpdate::started(t(2), Some(77)))
        .await?;
    store
        .update_job(
            id,
            JobUpdate::finished(
                JobStatus::Failed { exit_code: Some(3) },
                t(5),
                Duration::from_millis(3250),
            ),
        )
        .await?;
    let job = store.job(id).await?.ok_or("job missing")?;
    assert_eq!(job.status, JobStatus::Failed { exit_code: Some(3) });
    assert_eq!(job.exit_code, Some(3), "taken from the status");
    assert_eq!(job.finished_at, Some(t(5)));
    assert_eq!(job.duration, Some(Duration::from_millis(3250)));
    assert_eq!(job.started_at, Some(t(2)), "untouched fields stay");

    // A late "interrupted" (or a second exit) must not rewrite history.
    let late = store
        .update_job(id, JobUpdate::status(JobStatus::Interrupted))
        .await;
    assert!(
        matches!(late, Err(StoreError::JobFinished { job, .. }) if job == id),
        "{late:?}"
    );
    // Fields other than the status may still be filled in.
    store
        .update_job(
            id,
            JobUpdate::default().with_log_path(PathBuf::from("/var/chatops/1.log")),
        )
        .await?;
    let job = store.job(id).await?.ok_or("job missing")?;
    assert_eq!(job.status, JobStatus::Failed { exit_code: Some(3) });
    assert_eq!(job.log_path, Some(PathBuf::from("/var/chatops/1.log")));
    Ok(())
}

#[tokio::test]
async fn canceled_by_and_success_exit_code_follow_the_status() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let ok = create_job(&store, "a").await?;
    let canceled = create_job(&store, "b").await?;
    store
        .update_job(ok, JobUpdate::status(JobStatus::Succeeded))
        .await?;
    store
        .update_job(
            canceled,
            JobUpdate::status(JobStatus::Canceled {
                by: Some("U999".into()),
            }),
        )
        .await?;
    assert_eq!(store.job(ok).await?.ok_or("missing")?.exit_code, Some(0));
    let c = store.job(canceled).await?.ok_or("missing")?;
    assert_eq!(c.canceled_by.as_deref(), Some("U999"));
    assert_eq!(c.exit_code, None);
    Ok(())
}

#[tokio::test]
async fn unknown_jobs_are_reported_as_such() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    assert!(store.job(JobId(5)).await?.is_none());
    assert!(store.job(JobId(u64::MAX)).await?.is_none());
    let update = store
        .update_job(JobId(5), JobUpdate::status(JobStatus::Running))
        .await;
    assert!(
        matches!(update, Err(StoreError::UnknownJob(JobId(5)))),
        "{update:?}"
    );
    let huge = store
        .update_job(JobId(u64::MAX), JobUpdate::status(JobStatus::Running))
        .await;
    assert!(matches!(huge, Err(StoreError::UnknownJob(_))), "{huge:?}");
    let uses = store.use_response_url(JobId(5), 5).await;
    assert!(
        matches!(uses, Err(StoreError::UnknownJob(JobId(5)))),
        "{uses:?}"
    );
    let enqueue = store
        .enqueue_reply(Some(JobId(5)), &target("slack"), &reply("x"), t(0))
        .await;
    assert!(
        matches!(enqueue, Err(StoreError::UnknownJob(JobId(5)))),
        "{enqueue:?}"
    );
    Ok(())
}

#[tokio::test]
async fn recovery_finds_jobs_by_status_and_recent_jobs_come_newest_first() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let running = create_job(&store, "a").await?;
    let done = create_job(&store, "b").await?;
    let manual = create_job(&store, "c").await?;
    let queued = create_job(&store, "d").await?;
    store
        .update_job(running, JobUpdate::started(t(2), Some(100)))
        .await?;
    store
        .update_job(done, JobUpdate::status(JobStatus::Succeeded))
        .await?;
    store
        .update_job(manual, JobUpdate::status(JobStatus::Manual))
        .await?;

    let live = store.jobs_with_status(&["running", "manual"]).await?;
    let ids: Vec<JobId> = live.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![running, manual]);
    assert_eq!(live[0].pgid, Some(100));
    assert!(store.jobs_with_status(&[]).await?.is_empty());

    let recent = store.recent_jobs(3).await?;
    let ids: Vec<JobId> = recent.iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![queued, manual, done]);
    Ok(())
}

#[tokio::test]
async fn response_url_uses_are_budgeted_and_reset_by_a_new_url() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = create_job(&store, "deploy").await?;
    let mut uses = Vec::new();
    for _ in 0..6 {
        uses.push(store.use_response_url(id, 5).await?);
    }
    assert_eq!(
        uses,
        vec![Some(1), Some(2), Some(3), Some(4), Some(5), None]
    );
    assert_eq!(store.job(id).await?.ok_or("missing")?.response_url_uses, 5);

    // The same target again keeps the count; a button click's fresh response_url restarts it.
    let same = JobUpdate {
        reply_target: Some(target("slack")),
        ..JobUpdate::default()
    };
    store.update_job(id, same).await?;
    assert_eq!(store.use_response_url(id, 5).await?, None);
    let mut fresh = target("slack");
    fresh.response_url = Some("https://hooks.slack.com/actions/T1/9/9".into());
    let update = JobUpdate {
        reply_target: Some(fresh.clone()),
        ..JobUpdate::default()
    };
    store.update_job(id, update).await?;
    assert_eq!(store.use_response_url(id, 5).await?, Some(1));
    assert_eq!(store.job(id).await?.ok_or("missing")?.reply_target, fresh);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Outbox

#[tokio::test]
async fn outbox_pending_due_retry_delivered() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let job = create_job(&store, "deploy").await?;
    let id = store
        .enqueue_reply(
            Some(job),
            &target("slack"),
            &reply("deploy succeeded"),
            t(10),
        )
        .await?;
    let lease = Duration::from_secs(30);

    assert!(
        store
            .claim_due_replies(t(9), lease, None, 10)
            .await?
            .is_empty(),
        "not due before it was enqueued"
    );
    let due = store.claim_due_replies(t(10), lease, None, 10).await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, id);
    assert_eq!(due[0].job, Some(job));
    assert_eq!(due[0].reply, reply("deploy succeeded"));
    assert_eq!(due[0].target, target("slack"));
    assert_eq!(due[0].state, OutboxState::Pending);
    assert_eq!(due[0].attempts, 0);
    assert!(
        store
            .claim_due_replies(t(11), lease, None, 10)
            .await?
            .is_empty(),
        "a claimed reply is not handed out twice"
    );

    store
        .reply_attempted(
            id,
            AttemptOutcome::RetryAt {
                when: t(70),
                error: "platform answered HTTP 503".into(),
            },
        )
        .await?;
    assert!(
        store
            .claim_due_replies(t(69), lease, None, 10)
            .await?
            .is_empty(),
        "a retry in the future is not due"
    );
    assert_eq!(store.next_reply_due(None).await?, Some(t(70)));
    let due = store.claim_due_replies(t(70), lease, None, 10).await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(
        due[0].last_error.as_deref(),
        Some("platform answered HTTP 503")
    );

    store
        .reply_attempted(
            id,
            AttemptOutcome::Delivered {
                via: Via::BotApi,
                at: t(71),
            },
        )
        .await?;
    assert!(
        store
            .claim_due_replies(t(10_000), lease, None, 10)
            .await?
            .is_empty(),
        "a delivered reply is never due again"
    );
    assert_eq!(store.next_reply_due(None).await?, None);
    let item = store.reply(id).await?.ok_or("reply missing")?;
    assert_eq!(item.state, OutboxState::Delivered);
    assert_eq!(item.attempts, 2);
    assert_eq!(item.via, Some(Via::BotApi));
    assert_eq!(item.settled_at, Some(t(71)));

    let again = store
        .reply_attempted(
            id,
            AttemptOutcome::Delivered {
                via: Via::ResponseUrl,
                at: t(72),
            },
        )
        .await;
    assert!(
        matches!(again, Err(StoreError::ReplyNotPending(i)) if i == id),
        "{again:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_reply_enqueued_claimed_is_the_callers_unless_an_older_one_waits() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let job = create_job(&store, "deploy").await?;
    let lease = Duration::from_secs(30);
    let (first, mine) = store
        .enqueue_reply_claimed(Some(job), &target("slack"), &reply("one"), t(10), lease)
        .await?;
    assert!(mine, "nothing older is pending: the caller delivers it");
    assert!(
        store
            .claim_due_replies(t(11), lease, None, 10)
            .await?
            .is_empty(),
        "claimed: the lanes do not see it during the lease"
    );
    // A second reply about the same job while the first is still pending keeps the order.
    let (second, mine) = store
        .enqueue_reply_claimed(Some(job), &target("slack"), &reply("two"), t(12), lease)
        .await?;
    assert!(!mine, "an older reply is pending: this one waits its turn");
    store
        .reply_attempted(
            first,
            AttemptOutcome::Delivered {
                via: Via::ResponseUrl,
                at: t(13),
            },
        )
        .await?;
    let due = store.claim_due_replies(t(14), lease, None, 10).await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, second);
    // If the caller dies, its claimed reply comes back when the lease ends.
    let other = create_job(&store, "other").await?;
    let (orphan, mine) = store
        .enqueue_reply_claimed(Some(other), &target("slack"), &reply("x"), t(100), lease)
        .await?;
    assert!(mine);
    let due = store.claim_due_replies(t(131), lease, None, 10).await?;
    assert!(
        due.iter().any(|i| i.id == orphan),
        "due again after the lease"
    );
    Ok(())
}

#[tokio::test]
async fn a_reply_given_up_keeps_why() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = store
        .enqueue_reply(None, &target("slack"), &reply("hello"), t(0))
        .await?;
    store
        .reply_attempted(
            id,
            AttemptOutcome::GaveUp {
                at: t(5),
                error: "platform answered HTTP 404: expired_url".into(),
            },
        )
        .await?;
    let item = store.reply(id).await?.ok_or("reply missing")?;
    assert_eq!(item.state, OutboxState::Failed);
    assert_eq!(
        item.last_error.as_deref(),
        Some("platform answered HTTP 404: expired_url")
    );
    assert_eq!(item.settled_at, Some(t(5)));
    assert!(store
        .claim_due_replies(t(1_000), Duration::from_secs(1), None, 10)
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test]
async fn the_outbox_survives_a_restart_and_an_expired_claim_comes_due_again() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = store
        .enqueue_reply(None, &target("slack"), &reply("queued"), t(0))
        .await?;
    // Claimed, then chatops "dies" before reporting the attempt.
    let claimed = store
        .claim_due_replies(t(0), Duration::from_secs(60), None, 10)
        .await?;
    assert_eq!(claimed.len(), 1);
    drop(store);

    let store = open(&dir)?;
    assert!(store
        .claim_due_replies(t(59), Duration::from_secs(60), None, 10)
        .await?
        .is_empty());
    let due = store
        .claim_due_replies(t(60), Duration::from_secs(60), None, 10)
        .await?;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, id);
    assert_eq!(due[0].reply, reply("queued"));
    Ok(())
}

#[tokio::test]
async fn replies_of_one_job_keep_their_order_and_platforms_are_separate() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let job_a = create_job(&store, "a").await?;
    let job_b = create_job(&store, "b").await?;
    let lease = Duration::from_secs(30);
    let started = store
        .enqueue_reply(Some(job_a), &target("slack"), &reply("a started"), t(0))
        .await?;
    let finished = store
        .enqueue_reply(Some(job_a), &target("slack"), &reply("a finished"), t(1))
        .await?;
    let other = store
        .enqueue_reply(Some(job_b), &target("slack"), &reply("b finished"), t(1))
        .await?;
    let discord = store
        .enqueue_reply(None, &target("discord"), &reply("to discord"), t(1))
        .await?;

    let slack: PlatformId = "slack".into();
    let due = store
        .claim_due_replies(t(2), lease, Some(&slack), 10)
        .await?;
    let ids: Vec<OutboxId> = due.iter().map(|i| i.id).collect();
    assert_eq!(
        ids,
        vec![started, other],
        "a's second reply waits for its first"
    );
    store
        .reply_attempted(
            other,
            AttemptOutcome::Delivered {
                via: Via::ResponseUrl,
                at: t(3),
            },
        )
        .await?;

    store
        .reply_attempted(
            started,
            AttemptOutcome::RetryAt {
                when: t(100),
                error: "timeout".into(),
            },
        )
        .await?;
    assert!(
        store
            .claim_due_replies(t(50), lease, Some(&slack), 10)
            .await?
            .is_empty(),
        "a's second reply still waits behind the retry"
    );
    store
        .reply_attempted(
            started,
            AttemptOutcome::Delivered {
                via: Via::ResponseUrl,
                at: t(100),
            },
        )
        .await?;
    let due = store
        .claim_due_replies(t(100), lease, Some(&slack), 10)
        .await?;
    assert_eq!(due.iter().map(|i| i.id).collect::<Vec<_>>(), vec![finished]);

    let discord_id: PlatformId = "discord".into();
    let due = store
        .claim_due_replies(t(2), lease, Some(&discord_id), 10)
        .await?;
    assert_eq!(due.iter().map(|i| i.id).collect::<Vec<_>>(), vec![discord]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Group commit and the thread's life

/// Holds the store's thread busy, so that requests sent meanwhile queue up behind it.
async fn hold_thread(store: &Store, for_how_long: Duration) -> Result<(), StoreError> {
    store
        .call_for_test(move |_| {
            std::thread::sleep(for_how_long);
            Ok(())
        })
        .await
}

#[tokio::test]
async fn concurrent_requests_are_all_answered_in_few_commits() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let before = store.stats();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let store = store.clone();
        tasks.spawn(async move {
            hold_thread(&store, Duration::from_millis(300))
                .await
                .map(|()| None)
        });
    }
    const TASKS: usize = 64;
    for i in 0..TASKS {
        let store = store.clone();
        tasks.spawn(async move {
            let cmd = accepted(Some(&format!("trigger-{i}")));
            store
                .record_command(cmd, Some(new_job(&format!("job-{i}"))))
                .await
                .map(|r| r.job())
        });
    }
    let mut ids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Some(id) = joined?? {
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), TASKS, "every request answered with its own job");

    let stats = store.stats();
    let requests = stats.requests - before.requests;
    let transactions = stats.transactions - before.transactions;
    assert_eq!(requests, u64::try_from(TASKS + 1)?);
    assert!(
        transactions <= 3,
        "{requests} requests took {transactions} transactions: they were not grouped"
    );
    assert!(stats.largest_batch > 1);
    assert_eq!(store.recent_jobs(1000).await?.len(), TASKS);
    Ok(())
}

/// A request that writes, then fails.
async fn clobber_then_fail(store: &Store) -> Result<(), StoreError> {
    store
        .call_for_test(|conn| {
            conn.execute("UPDATE jobs SET input = 'clobbered'", [])?;
            Err::<(), _>(StoreError::Corrupt("deliberate".into()))
        })
        .await
}

#[tokio::test]
async fn a_failing_request_undoes_its_writes_alone_or_in_a_batch() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let existing = create_job(&store, "existing").await?;

    // Alone in its transaction.
    assert!(matches!(
        clobber_then_fail(&store).await,
        Err(StoreError::Corrupt(_))
    ));
    let job = store.job(existing).await?.ok_or("job missing")?;
    assert_eq!(job.input, "staging\nsecond line");

    // In a batch with a good request.
    let hold = {
        let store = store.clone();
        tokio::spawn(async move { hold_thread(&store, Duration::from_millis(200)).await })
    };
    // Let the holding request reach the thread first, so the next two queue up together.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bad = {
        let store = store.clone();
        tokio::spawn(async move { clobber_then_fail(&store).await })
    };
    let good = {
        let store = store.clone();
        tokio::spawn(async move { create_job(&store, "deploy").await })
    };
    hold.await??;
    assert!(matches!(bad.await?, Err(StoreError::Corrupt(_))));
    let added = good.await??;
    let stats = store.stats();
    assert!(
        stats.largest_batch >= 2,
        "bad and good shared a batch: {stats:?}"
    );
    let job = store.job(existing).await?.ok_or("job missing")?;
    assert_eq!(
        job.input, "staging\nsecond line",
        "the failed write was undone"
    );
    assert!(
        store.job(added).await?.is_some(),
        "the good request of the batch was kept"
    );
    Ok(())
}

#[test]
fn handles_and_their_futures_can_cross_threads() -> TestResult {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    send_sync(&store);
    send(&store.record_command(accepted(None), None));
    send(&store.claim_due_replies(t(0), Duration::ZERO, None, 1));
    Ok(())
}

#[tokio::test]
async fn a_closed_store_answers_closed() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let other_handle = store.clone();
    let id = create_job(&store, "deploy").await?;
    store.close().await?;
    assert!(other_handle.is_closed());
    let after = other_handle.job(id).await;
    assert!(matches!(after, Err(StoreError::Closed)), "{after:?}");
    assert!(
        after
            .err()
            .is_some_and(|e| e.to_string().contains("restart chatops")),
        "the message says what to do"
    );
    // Closing twice is fine.
    other_handle.close().await?;
    Ok(())
}

#[tokio::test]
async fn a_dead_thread_answers_closed_instead_of_hanging() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = create_job(&store, "deploy").await?;
    let died = store
        .call_for_test::<(), _>(|_| panic!("a bug in a request"))
        .await;
    assert!(matches!(died, Err(StoreError::Closed)), "{died:?}");
    let after = tokio::time::timeout(Duration::from_secs(5), store.job(id)).await?;
    assert!(matches!(after, Err(StoreError::Closed)), "{after:?}");
    assert!(store.is_closed());
    drop(store);

    // What was committed before the panic is still there.
    let store = open(&dir)?;
    assert!(store.job(id).await?.is_some());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Throughput (run by hand: `cargo test -p chatops-store --release -- --ignored --nocapture`)

async fn records_per_second(tasks: usize, total: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let per_task = total / tasks;
    let started = std::time::Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let store = store.clone();
        set.spawn(async move {
            for i in 0..per_task {
                let cmd = accepted(Some(&format!("t{task}-{i}")));
                store.record_command(cmd, Some(new_job("deploy"))).await?;
            }
            Ok::<(), StoreError>(())
        });
    }
    while let Some(joined) = set.join_next().await {
        joined??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = store.stats();
    let rate = (per_task * tasks) as f64 / elapsed;
    println!(
        "{tasks:>2} task(s): {rate:>8.0} records/s ({} requests in {} transactions)",
        stats.requests, stats.transactions
    );
    Ok(rate)
}

#[tokio::test]
#[ignore = "a benchmark: prints records/s"]
async fn bench_record_command() -> TestResult {
    let one = records_per_second(1, 4_000).await?;
    let sixteen = records_per_second(16, 16_000).await?;
    println!("16 tasks / 1 task: {:.1}x", sixteen / one);
    Ok(())
}

fn manual_job(created: SystemTime) -> NewJob {
    NewJob {
        status: JobStatus::Manual,
        created_at: created,
        when: Some("manual".into()),
        ..new_job("deploy")
    }
}

async fn create_manual(store: &Store, created: SystemTime) -> Result<JobId, StoreError> {
    let recorded = store
        .record_command(accepted(None), Some(manual_job(created)))
        .await?;
    recorded
        .job()
        .ok_or_else(|| StoreError::Corrupt("no job created".into()))
}

#[tokio::test]
async fn only_one_of_two_plays_claims_a_manual_job() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = create_manual(&store, t(1)).await?;
    let claim = || JobUpdate::status(JobStatus::Queued { position: 0 });
    let (a, b) = tokio::join!(
        store.update_job_if(id, "manual", claim()),
        store.update_job_if(id, "manual", claim())
    );
    assert_eq!([a?, b?].iter().filter(|won| **won).count(), 1);
    let job = store.job(id).await?.ok_or("job gone")?;
    assert_eq!(job.status, JobStatus::Queued { position: 0 });
    assert!(!store.update_job_if(JobId(9999), "manual", claim()).await?);
    Ok(())
}

#[tokio::test]
async fn manual_jobs_older_than_the_cutoff_expire() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let old = create_manual(&store, t(1)).await?;
    let young = create_manual(&store, t(100)).await?;
    let queued = create_job(&store, "build").await?;
    assert_eq!(store.expire_manual_jobs(t(50), t(200)).await?, 1);
    let status = |r: Option<JobRecord>| r.map(|r| r.status);
    assert_eq!(status(store.job(old).await?), Some(JobStatus::Expired));
    assert_eq!(
        store.job(old).await?.and_then(|r| r.finished_at),
        Some(t(200))
    );
    assert_eq!(status(store.job(young).await?), Some(JobStatus::Manual));
    assert_eq!(
        status(store.job(queued).await?),
        Some(JobStatus::Queued { position: 0 })
    );
    // Expired is final.
    let play = JobUpdate::status(JobStatus::Running);
    assert!(store.update_job(old, play).await.is_err());
    Ok(())
}

#[tokio::test]
async fn a_cli_request_is_taken_once_answered_and_replied() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let id = store
        .submit_cli_request(NewCliRequest {
            created_at: t(1),
            pid: 42,
            slash_command: "/demo".into(),
            text: "play 7".into(),
            user: "alice".into(),
            user_name: Some("alice".into()),
        })
        .await?;
    let taken = store.take_cli_requests(10).await?;
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].request.text, "play 7");
    assert!(store.take_cli_requests(10).await?.is_empty(), "taken once");
    store
        .answer_cli_request(id, "played".into(), Some(JobId(7)), t(2))
        .await?;
    store.cli_reply(id, "succeeded".into()).await?;
    let got = store.cli_request(id).await?.ok_or("request gone")?;
    assert!(got.answered);
    assert_eq!(got.ack.as_deref(), Some("played"));
    assert_eq!(got.job, Some(JobId(7)));
    assert_eq!(got.reply.as_deref(), Some("succeeded"));
    Ok(())
}

#[tokio::test]
async fn a_read_only_store_reads_beside_a_writer_and_writes_nothing() -> TestResult {
    let dir = TempDir::new()?;
    let missing = dir.path().join("none.db");
    assert!(Store::open_read_only(&missing).is_err());
    assert!(!missing.exists(), "read-only never creates the file");
    let store = open(&dir)?;
    let id = create_job(&store, "deploy").await?;
    let reader = Store::open_read_only(store.path())?;
    assert_eq!(reader.job(id).await?.map(|j| j.id), Some(id));
    assert_eq!(reader.recent_jobs(10).await?.len(), 1);
    assert!(create_job(&reader, "nope").await.is_err(), "writes fail");
    // The writer is not held up by the reader.
    create_job(&store, "again").await?;
    assert_eq!(reader.recent_jobs(10).await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn channel_jobs_are_one_project_and_channel_newest_first() -> TestResult {
    let dir = TempDir::new()?;
    let store = open(&dir)?;
    let in_channel = |user: &str, channel: &str, project: &str| {
        let mut job = new_job("deploy");
        job.project = project.into();
        job.reply_target.channel = channel.into();
        job.reply_target.user = user.into();
        job
    };
    let mut ids = Vec::new();
    for (user, channel, project) in [
        ("U1", "C1", "demo"),
        ("U2", "C1", "demo"),
        ("U1", "C2", "demo"),
        ("U1", "C1", "other"),
        ("U2", "C1", "demo"),
    ] {
        let rec = CommandRecord::new(&chat("slack", None, "run deploy"), Outcome::Accepted);
        let job = in_channel(user, channel, project);
        ids.push(store.record_command(rec, Some(job)).await?.job());
    }
    let scope = || ("slack".into(), "C1".into());
    let all = store.channel_jobs("demo".into(), scope(), None, 10).await?;
    let got: Vec<_> = all.iter().map(|j| Some(j.id)).collect();
    assert_eq!(got, vec![ids[4], ids[1], ids[0]]);
    let two = store.channel_jobs("demo".into(), scope(), None, 2).await?;
    assert_eq!(two.len(), 2);
    let mine = store
        .channel_jobs("demo".into(), scope(), Some("U1".into()), 1)
        .await?;
    assert_eq!(mine.first().map(|j| Some(j.id)), Some(ids[0]));
    let other_platform = store
        .channel_jobs("demo".into(), ("discord".into(), "C1".into()), None, 10)
        .await?;
    assert!(other_platform.is_empty());
    Ok(())
}

fn runner_row(id: u64, state: &str) -> crate::RunnerJobRow {
    crate::RunnerJobRow {
        id,
        spec: format!("{{\"job_id\":{id}}}"),
        state: state.into(),
        token_hash: None,
        runner: None,
        attempt: 0,
        graceful: false,
        created_at: t(id),
        updated_at: t(id),
    }
}

#[tokio::test]
async fn runner_jobs_are_replaced_in_order_and_open_ones_survive_a_reopen() -> TestResult {
    let dir = TempDir::new()?;
    let path = dir.path().join("chatops.db");
    let store = Store::open(&path)?;
    // Written one after another without awaiting: the queue keeps their order.
    let first = store.put_runner_job(runner_row(1, "pending"));
    let mut offered = runner_row(1, "offered");
    offered.token_hash = Some("ab".repeat(32));
    offered.runner = Some("shell-1".into());
    offered.attempt = 1;
    offered.graceful = true;
    offered.updated_at = t(5);
    let second = store.put_runner_job(offered.clone());
    let done = store.put_runner_job(runner_row(2, "finished"));
    second.await?;
    first.await?;
    done.await?;
    assert_eq!(store.runner_job(1).await?, Some(offered.clone()));
    assert_eq!(store.runner_job(3).await?, None);
    store.close().await?;
    let store = Store::open(&path)?;
    let open = store.open_runner_jobs().await?;
    // The finished job is not resumed; the offered one keeps its created_at.
    assert_eq!(open, vec![offered]);
    assert_eq!(open[0].created_at, t(1));
    Ok(())
}

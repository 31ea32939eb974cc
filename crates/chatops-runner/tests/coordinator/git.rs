//! Runners fetch git projects through `/git/<project>.git` with their job token.

use crate::support::*;
use chatops_runner::{RunnerOutcome, Source};
use chatops_testrunner::TestRunner;
use std::path::Path;

/// A repository at `dir/repo` with two commits on `main`; returns (first sha, second sha).
fn two_commits(dir: &Path) -> Result<(String, String), String> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo).map_err(|e| e.to_string())?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    std::fs::write(repo.join("file.txt"), "one\n").map_err(|e| e.to_string())?;
    git(&repo, &["add", "."])?;
    git(&repo, &["commit", "-q", "-m", "one"])?;
    let first = git(&repo, &["rev-parse", "HEAD"])?;
    std::fs::write(repo.join("file.txt"), "two\n").map_err(|e| e.to_string())?;
    git(&repo, &["commit", "-q", "-am", "two"])?;
    let second = git(&repo, &["rev-parse", "HEAD"])?;
    Ok((first, second))
}

fn git_spec(
    dir: &Path,
    id: u64,
    project: &str,
    sha: &str,
    script: &[&str],
) -> chatops_runner::RunnerJobSpec {
    let mut s = spec(dir, id, script);
    s.project = project.into();
    s.source = Source::Git {
        repo: dir.join("repo"),
        sha: sha.into(),
        branch: "main".into(),
    };
    s
}

#[actix_rt::test]
async fn a_runner_clones_the_project_at_the_submitted_sha() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (first, second) = two_commits(dir.path())?;
    let app = App::start(dir.path(), |_| {}).await?;
    let spec = git_spec(
        dir.path(),
        10,
        "demo",
        &first,
        &["git rev-parse HEAD", "cat file.txt"],
    );
    let log_path = spec.log_path.clone();
    let handle = app.coordinator.submit(spec)?;
    let runner = TestRunner::start(&app.url, TOKEN)?;
    assert_eq!(outcome(&handle).await?, RunnerOutcome::Succeeded);
    let trace = log(&log_path);
    assert!(trace.contains(&first), "{trace}");
    assert!(
        !trace.contains(&second),
        "the branch tip is not what ran: {trace}"
    );
    assert!(trace.contains("one\n"), "{trace}");
    runner.kill();
    app.stop().await;
    Ok(())
}

#[actix_rt::test]
async fn the_git_remote_wants_a_live_job_token_of_that_project_and_refuses_pushes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (first, _) = two_commits(dir.path())?;
    let app = App::start(dir.path(), |_| {}).await?;
    app.coordinator
        .submit(git_spec(dir.path(), 11, "demo", &first, &["true"]))?;
    let demo = take(&app.url, TOKEN).await?;
    app.coordinator
        .submit(git_spec(dir.path(), 12, "other", &first, &["true"]))?;
    let other = take(&app.url, TOKEN).await?;
    let refs = format!("{}/git/demo.git/info/refs?service=git-upload-pack", app.url);
    let c = client();

    let anonymous = c.get(&refs).send().await?;
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous
        .headers()
        .get("WWW-Authenticate")
        .map(|v| v.to_str().unwrap_or(""));
    assert!(
        challenge.is_some_and(|v| v.starts_with("Basic realm=")),
        "{challenge:?}"
    );

    let refused = [
        ("gitlab-ci-token", "glcbt-not-a-token".to_owned()),
        ("gitlab-ci-token", job_token(&other)),
        ("someone", job_token(&demo)),
    ];
    for (user, password) in refused {
        let resp = c
            .get(&refs)
            .basic_auth(user, Some(&password))
            .send()
            .await?;
        assert_eq!(resp.status(), 403, "{user}:{password}");
    }

    let ok = c
        .get(&refs)
        .basic_auth("gitlab-ci-token", Some(job_token(&demo)))
        .send()
        .await?;
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()
            .get("Content-Type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("application/x-git-upload-pack-advertisement")
    );

    // A real clone with the job's repo_url, then a push that must be refused.
    let repo_url = demo["git_info"]["repo_url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        repo_url.contains(&format!("gitlab-ci-token:{}@", job_token(&demo))),
        "{repo_url}"
    );
    let work = dir.path().join("clone");
    git(dir.path(), &["clone", "-q", &repo_url, "clone"])?;
    std::fs::write(work.join("file.txt"), "pushed\n")?;
    git(&work, &["commit", "-q", "-am", "push me"])?;
    let push = git(&work, &["push", "-q", "origin", "HEAD:main"]);
    assert!(push.is_err(), "a push went through");
    let push_refs = format!(
        "{}/git/demo.git/info/refs?service=git-receive-pack",
        app.url
    );
    let resp = c
        .get(&push_refs)
        .basic_auth("gitlab-ci-token", Some(job_token(&demo)))
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    let resp = c
        .post(format!("{}/git/demo.git/git-receive-pack", app.url))
        .basic_auth("gitlab-ci-token", Some(job_token(&demo)))
        .send()
        .await?;
    assert_eq!(resp.status(), 403);

    // Once the job is over its token opens nothing.
    let put = c
        .put(format!("{}/api/v4/jobs/11", app.url))
        .json(&serde_json::json!({"token": job_token(&demo), "state": "success"}))
        .send()
        .await?;
    assert_eq!(put.status(), 200);
    let after = c
        .get(&refs)
        .basic_auth("gitlab-ci-token", Some(job_token(&demo)))
        .send()
        .await?;
    assert_eq!(after.status(), 403);
    app.stop().await;
    Ok(())
}

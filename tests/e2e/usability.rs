//! What a new user meets (issue 9 items 12–14): `check` naming what it read, the example
//! script, `serve --listen`, read-only commands without platform secrets, and the warnings for
//! a config that configures nothing.

use crate::helpers::*;
use crate::CI;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn chatops() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatops"));
    c.env_remove("CHATOPS_CONFIG").env("RUST_LOG", "warn");
    c
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts that the command exited 0; its stdout.
fn succeeded(out: &Output) -> String {
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    stdout
}

/// Writes `config` as `chatops.yaml` in `dir`; its path as a string.
fn write_config(dir: &Path, config: &str) -> String {
    let path = dir.join("chatops.yaml");
    std::fs::write(&path, config).expect("config");
    path.to_string_lossy().into_owned()
}

fn check(config: &str, json: bool) -> Output {
    let mut c = chatops();
    c.args(["check", "--config", config]);
    if json {
        c.arg("--json");
    }
    c.output().expect("run check")
}

/// A plain-folder project `name` in `dir` holding the suite's CI file.
fn folder_project(dir: &Path, name: &str) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).expect("project folder");
    std::fs::write(folder.join(".gitlab-ci.yml"), CI).expect("ci");
}

/// A git repository `name` in `dir`, on branch `trunk`, holding `files` (committed or not).
fn repo(dir: &Path, name: &str) -> std::path::PathBuf {
    let repo = dir.join(name);
    std::fs::create_dir_all(&repo).expect("repo dir");
    git(&repo, &["init", "-q", "-b", "trunk"]);
    repo
}

#[test]
fn check_names_the_branch_and_commit_it_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = repo(dir.path(), "gitproject");
    std::fs::write(repo.join(".gitlab-ci.yml"), CI).expect("ci");
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "ci"]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    folder_project(dir.path(), "folder");
    let config = write_config(
        dir.path(),
        "server:\n  data_dir: data\nprojects:\n  git:\n    repository: gitproject\n  folder:\n    repository: folder\n",
    );

    let out = check(&config, true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let git_project = &report["projects"][0];
    assert_eq!(git_project["name"], "git");
    assert_eq!(git_project["branch"], "trunk");
    assert_eq!(git_project["commit"], sha.as_str());
    let folder_project = &report["projects"][1];
    assert_eq!(folder_project["name"], "folder");
    let keys = folder_project.as_object().expect("project object");
    assert!(
        keys.get("branch").is_some_and(|b| b.is_null())
            && keys.get("commit").is_some_and(|c| c.is_null()),
        "a folder project has branch and commit null: {folder_project}"
    );

    let out = check(&config, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&format!("git (/git): branch trunk, commit {sha}")),
        "{stdout}"
    );
}

#[test]
fn check_says_when_the_ci_file_is_only_in_the_work_tree() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Committed history without the CI file, which sits untracked in the work tree.
    let tracked = repo(dir.path(), "tracked");
    std::fs::write(tracked.join("README"), "hi\n").expect("readme");
    git(&tracked, &["add", "README"]);
    git(&tracked, &["commit", "-qm", "readme"]);
    std::fs::write(tracked.join(".gitlab-ci.yml"), CI).expect("ci");
    // A fresh repository: nothing committed at all.
    let fresh = repo(dir.path(), "fresh");
    std::fs::write(fresh.join(".gitlab-ci.yml"), CI).expect("ci");
    let config = write_config(
        dir.path(),
        "server:\n  data_dir: data\nprojects:\n  tracked:\n    repository: tracked\n  fresh:\n    repository: fresh\n",
    );

    let out = check(&config, true);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    for project in report["projects"].as_array().expect("projects") {
        let error = project["error"].as_str().expect("error set");
        assert!(
            error.contains("found in the work tree but not committed on trunk"),
            "{error}"
        );
        assert!(error.contains("git add .gitlab-ci.yml"), "{error}");
    }
    assert_eq!(report["projects"][0]["branch"], "trunk");
    assert!(report["projects"][0]["commit"].is_string());
    let out = check(&config, false);
    assert!(
        text(&out.stdout).contains("found in the work tree but not committed on trunk"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_warns_when_nothing_is_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), "server:\n  data_dir: data\n");
    let out = check(&config, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("warning: no chat platform is configured"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: no project is configured"),
        "{stdout}"
    );
    let out = check(&config, true);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let warnings = report["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
}

/// `serve --listen` binds where it is told even when `server.listen` cannot be bound, and a
/// config with neither platform nor project is warned about at start.
#[actix_web::test]
async fn serve_listen_overrides_the_config_and_warns_about_an_empty_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 192.0.2.0/24 is TEST-NET-1: never a local address, so binding it fails.
    let config = write_config(
        dir.path(),
        "server:\n  listen: 192.0.2.1:9\n  data_dir: data\n",
    );
    let server = TestServer::spawn_with(
        Arc::new(dir),
        config.into(),
        FakePlatform::start(),
        &["--listen", "127.0.0.1:0"],
    )
    .await;
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "{}",
        server.base
    );
    let (status, _) = server
        .request(server.http().get(format!("{}/healthz", server.base)))
        .await;
    assert_eq!(status, 200);
    let log = server.stderr();
    assert!(log.contains("no chat platform is configured"), "{log}");
    assert!(log.contains("no project is configured"), "{log}");
}

// RFC 8032 test 1 public key: a valid curve point, never a real application's.
const DISCORD_KEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn jobs_and_log_do_not_need_platform_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    folder_project(dir.path(), "project");
    let config = write_config(
        dir.path(),
        "server:\n  data_dir: data\nslack:\n  signing_secret: ${E2E_SLACK_SECRET}\nmattermost:\n  url: https://chat.example.com\n  tokens: [\"${E2E_MM_TOKEN}\"]\ndiscord:\n  public_key: ${E2E_DISCORD_KEY}\n  application_id: \"${E2E_DISCORD_APP}\"\nprojects:\n  demo:\n    repository: project\n    default_role: developer\n",
    );
    let secrets = [
        ("E2E_SLACK_SECRET", "s3cret"),
        ("E2E_MM_TOKEN", "mm-token"),
        ("E2E_DISCORD_KEY", DISCORD_KEY),
        ("E2E_DISCORD_APP", "1100000000000000001"),
    ];
    let without_secrets = || {
        let mut c = chatops();
        for (name, _) in secrets {
            c.env_remove(name);
        }
        c
    };
    // A job in the store, run with the secrets set.
    let mut run = chatops();
    run.args(["run", "--config", &config, "demo", "hello-world"]);
    for (name, value) in secrets {
        run.env(name, value);
    }
    succeeded(&run.output().expect("run"));

    let out = without_secrets()
        .args(["jobs", "--json", "--config", &config])
        .output()
        .expect("jobs");
    succeeded(&out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let id = listed["jobs"][0]["id"].as_u64().expect("the job is listed");
    assert_eq!(listed["jobs"][0]["job"], "hello-world");

    let out = without_secrets()
        .args(["log", "--config", &config, &id.to_string()])
        .output()
        .expect("log");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Hello World"),
        "{}",
        text(&out.stdout)
    );

    // The commands that use the platforms still need every secret, and say which is missing.
    let out = without_secrets()
        .args(["check", "--config", &config])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("chatops.yaml:4: `${E2E_SLACK_SECRET}` is not set: export E2E_SLACK_SECRET, or write `${E2E_SLACK_SECRET:-default}` in the config"),
        "{err}"
    );
}

/// Runs `cmd` to its end, killing it (and whatever it started) if it outlives `bound`; its
/// output and how long it took.
async fn output_within(mut cmd: Command, bound: Duration) -> (Output, Duration) {
    use std::os::unix::process::CommandExt;
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let out = child.wait_with_output().expect("output");
            return (out, started.elapsed());
        }
        if started.elapsed() > bound {
            // SAFETY: signalling the process group of our own child.
            unsafe {
                libc::kill(-(child.id() as i32), libc::SIGKILL);
            }
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {bound:?}\nstdout: {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn the_slack_command_script_stops_after_an_ack_only_reply_and_prints_a_job_reply() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: examples/slack-command.sh needs python3, which is not installed");
        return;
    }
    let reply_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("tempdir");
    folder_project(dir.path(), "project");
    let config = write_config(
        dir.path(),
        &format!(
            "server:\n  listen: 127.0.0.1:0\n  data_dir: data\nslack:\n  signing_secret: {SLACK_SECRET}\n  response_url_hosts: [\"127.0.0.1:{reply_port}\"]\nprojects:\n  ops:\n    repository: project\n    default_role: developer\n"
        ),
    );
    let server =
        TestServer::spawn_with(Arc::new(dir), config.into(), FakePlatform::start(), &[]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/slack-command.sh");
    let wait = 60u64;
    let script_run = |secret: &str, text: &str| {
        let mut c = Command::new(&script);
        c.env("CHATOPS_URL", &server.base)
            .env("SLACK_SIGNING_SECRET", secret)
            .args(["--command", "/ops", "--wait", &wait.to_string()])
            .args(["--reply-port", &reply_port.to_string(), text]);
        c
    };
    // `help` is answered in the ack alone: nothing follows, so the script must not wait.
    let (out, took) = output_within(script_run(SLACK_SECRET, "help"), PATIENCE).await;
    let stdout = succeeded(&out);
    assert!(
        stdout.contains("hello-world"),
        "the help lists jobs: {stdout}"
    );
    assert!(
        took < Duration::from_secs(wait),
        "returned after {took:?}, not waiting {wait}s for a reply that never comes"
    );
    // A manual job waits to be played: its ack is the whole answer for now.
    let (out, took) = output_within(script_run(SLACK_SECRET, "run manual-deploy"), PATIENCE).await;
    assert!(succeeded(&out).contains("when: manual"));
    assert!(took < Duration::from_secs(wait), "{took:?}");
    // A bad signature: 401, said plainly, no waiting.
    let (out, took) = output_within(script_run("wrong-secret", "run hello-world"), PATIENCE).await;
    assert_ne!(out.status.code(), Some(0));
    assert!(text(&out.stderr).contains("401"), "{}", text(&out.stderr));
    assert!(took < Duration::from_secs(wait), "{took:?}");
    // A job: its reply arrives at the script's listener and is printed.
    let (out, _) = output_within(script_run(SLACK_SECRET, "run hello-world"), PATIENCE).await;
    let stdout = succeeded(&out);
    assert!(stdout.contains("reply posted to response_url"), "{stdout}");
    assert!(stdout.contains("Hello World"), "{stdout}");
}

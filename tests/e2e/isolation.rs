//! Isolation and secrets (issue #9 items 1 and 5): a job cannot read the server's environment,
//! secrets are masked on every path (reply, job page, raw page, `chatops log`, files in
//! `data_dir`), `data_dir` is private.

use crate::helpers::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// The demo project's secret, and how a job prints it split by an escape.
const OWN_SECRET: &str = "S3crETVALUE";
/// Another project's secret, from the server's environment (`${OTHER_PROJECT_SECRET}`).
const OTHER_SECRET: &str = "Oth3rPr0jectS3cret";
/// In the server's environment only (the helpers set it): no job may ever see it.
const SERVER_ENV_SECRET: &str = "must-not-reach-jobs";

const SPY_CI: &str = r#"
spy:
  script:
    - 'cat "/proc/$PPID/environ" | tr "\0" "\n" || echo "server environ unreadable"'
    - '[ -z "$CHAT_INPUT" ] || cat "/proc/$CHAT_INPUT/environ" | tr "\0" "\n" || echo "given pid unreadable"'
    - 'cat "$CI_PROJECT_DIR/shared.txt"'
    - printf 'split S3cr\033[0mETVALUE and \033[31mOth3rPr0ject\r\033[0KS3cret\033[0m\n'
    - echo "own $DEMO_TOKEN"
"#;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// The test's temporary folder is private to root; a job user must reach the project in it.
fn let_others_through(server: &TestServer) {
    std::fs::set_permissions(server.dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod the test folder");
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{what} shows the secret {secret:?}:\n{text}"
        );
    }
}

#[actix_web::test]
async fn secrets_are_masked_on_every_path_issue_9_items_1_and_5() {
    let mut setup = Setup::ci(SPY_CI);
    setup.project_extra = format!("    secrets: {{DEMO_TOKEN: \"{OWN_SECRET}\"}}\n");
    setup.extra_config =
        "  other:\n    repository: project\n    secrets: {OTHER_TOKEN: \"${OTHER_PROJECT_SECRET}\"}\n"
            .into();
    setup.env = vec![("OTHER_PROJECT_SECRET".into(), OTHER_SECRET.into())];
    if is_root() {
        // Root may read any process's environment, dumpable or not: as root, jobs are kept
        // from the server's by running as another user (the CLI test below covers dumpable).
        setup.server_extra = "  job_user: nobody\n".into();
    }
    let server = TestServer::start(setup).await;
    let_others_through(&server);
    let link_key = hex::encode(std::fs::read(server.data_dir().join("link.key")).expect("key"));
    // What a job might find lying around: another project's secret, the server's tokens.
    std::fs::write(
        server.project_dir().join("shared.txt"),
        format!("other={OTHER_SECRET}\nslack={SLACK_SECRET}\nkey={link_key}\n"),
    )
    .expect("shared file");
    let secrets = [
        OWN_SECRET,
        OTHER_SECRET,
        SLACK_SECRET,
        SERVER_ENV_SECRET,
        link_key.as_str(),
    ];

    // The job is also told the server's pid, as if it had walked up the process tree.
    let (ack, reply) = server
        .run_and_reply(&format!("run spy {}", server.pid()), 1)
        .await;
    let reply_text = slack_text(&reply);
    assert_no_secret("the reply", &reply_text, &secrets);
    assert!(reply_text.contains("succeeded"), "{reply_text}");
    assert!(
        reply_text.contains("server environ unreadable")
            && reply_text.contains("given pid unreadable"),
        "{reply_text}"
    );
    assert!(
        reply_text.contains("split [MASKED] and [MASKED]"),
        "{reply_text}"
    );
    assert!(reply_text.contains("own [MASKED]"), "{reply_text}");
    assert!(
        reply_text.contains("other=[MASKED]") && reply_text.contains("slack=[MASKED]"),
        "{reply_text}"
    );

    // The job page, through the signed link in the reply, and its raw text.
    let link = slack_links(&reply_text)
        .into_iter()
        .find(|s| s.contains("/jobs/"))
        .expect("a job link");
    let (status, page) = server.request(server.http().get(&link)).await;
    assert_eq!(status, 200, "{link}");
    assert_no_secret("the job page", &page, &secrets);
    // The page keeps the colours (issue 11): the second secret is masked inside its red span.
    assert!(
        page.contains("split [MASKED] and <span style='color:var(--red,#a00)'>[MASKED]</span>"),
        "{page}"
    );
    let (status, raw) = server
        .request(server.http().get(format!("{link}&raw=1")))
        .await;
    assert_eq!(status, 200);
    assert_no_secret("the raw job page", &raw, &secrets);
    assert!(raw.contains("key=[MASKED]"), "{raw}");
    assert!(raw.contains("split [MASKED] and [MASKED]"), "{raw}");

    // `chatops log ID`, beside the live server.
    let id = ack.to_string();
    let id = id
        .split('#')
        .nth(1)
        .and_then(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .expect("the ack names the job id");
    let out = Command::new(env!("CARGO_BIN_EXE_chatops"))
        .args(["log", "--config"])
        .arg(server.config_path())
        .arg(&id)
        .env("OTHER_PROJECT_SECRET", OTHER_SECRET)
        .output()
        .expect("chatops log");
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret("chatops log", &log, &secrets);
    assert!(log.contains("split [MASKED] and [MASKED]"), "{log}");

    // Nothing chatops keeps (store, logs) holds a secret in one piece, nor its own log.
    for file in files_under(&server.data_dir()) {
        if file.file_name().is_some_and(|n| n == "link.key") {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert_no_secret(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
            &secrets,
        );
    }
    assert_no_secret("the server's log", &server.stderr(), &secrets);
}

/// `chatops run` as an ordinary user (root drops to `nobody` for this: root may read any
/// process's environment, dumpable or not). The job reads `/proc/$PPID/environ`, the
/// server's: it must get nothing.
#[test]
fn a_job_cannot_read_the_server_environment_issue_9_item_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let project = root.join("project");
    std::fs::create_dir_all(&project).expect("project");
    std::fs::write(project.join(".gitlab-ci.yml"), SPY_CI).expect("ci");
    std::fs::write(project.join("shared.txt"), "nothing here\n").expect("file");
    std::fs::write(
        root.join("chatops.yaml"),
        "server:\n  data_dir: data\nprojects:\n  demo:\n    repository: project\n    default_role: developer\n    secrets: {DEMO_TOKEN: \"S3crETVALUE\"}\n",
    )
    .expect("config");
    let mut command = if is_root() {
        for p in [root, &project] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        }
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            env!("CARGO_BIN_EXE_chatops"),
        ]);
        c
    } else {
        Command::new(env!("CARGO_BIN_EXE_chatops"))
    };
    let out = command
        .args(["run", "--config"])
        .arg(root.join("chatops.yaml"))
        .args(["demo", "spy"])
        .env("SLACK_SIGNING_SECRET", SERVER_ENV_SECRET)
        .env("RUST_LOG", "warn")
        .current_dir(root)
        .output()
        .expect("chatops run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_no_secret("the reply", &stdout, &[SERVER_ENV_SECRET, OWN_SECRET]);
    assert_no_secret(
        "the streamed log",
        &stderr,
        &[SERVER_ENV_SECRET, OWN_SECRET],
    );
    assert!(stdout.contains("server environ unreadable"), "{stdout}");
    assert!(stdout.contains("own [MASKED]"), "{stdout}");
}

#[actix_web::test]
async fn data_dir_is_private_issue_9_item_1() {
    let server = TestServer::start(Setup::ci(crate::CI)).await;
    server.run_and_reply("run hello-world", 1).await;
    let data = server.data_dir();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("link.key")), 0o600);
    assert_eq!(mode(&data.join("chatops.db")), 0o600);
    assert_eq!(mode(&data.join("logs")), 0o700);
    let logs = files_under(&data.join("logs"));
    assert!(!logs.is_empty());
    for log in logs {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }

    // A data_dir an older version left open is tightened at start, with a warning.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(
        data.join("link.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let server = server.crash_and_restart().await;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("link.key")), 0o600);
    let log = server.stderr();
    assert!(log.contains("readable by other users"), "{log}");
}

/// `server.job_user`: the job runs as `nobody`, in a checkout it owns, and cannot read what
/// chatops keeps in `data_dir`. Needs root (CI runs as root).
#[actix_web::test]
async fn a_job_user_cannot_read_data_dir_issue_9_item_1() {
    if !is_root() {
        eprintln!("skipped: running jobs as another user needs root");
        return;
    }
    let ci = r#"
who:
  script:
    - id -un
    - 'echo "dir=$CI_PROJECT_DIR"'
    - 'touch "$CI_PROJECT_DIR/made-by-the-job" && echo "checkout writable"'
    - 'touch "$HOME/.probe" && echo "home usable"'
    - 'cat "$CHAT_INPUT/link.key" >/dev/null 2>&1 && echo "link.key READ" || echo "link.key unreadable"'
    - 'cat "$CHAT_INPUT/chatops.db" >/dev/null 2>&1 && echo "db READ" || echo "db unreadable"'
    - 'ls "$CHAT_INPUT" >/dev/null 2>&1 && echo "data_dir LISTED" || echo "data_dir unlistable"'
    - 'ls "$CHAT_INPUT/logs" >/dev/null 2>&1 && echo "logs LISTED" || echo "logs unlistable"'
"#;
    let mut setup = Setup::ci(ci);
    setup.server_extra = "  job_user: nobody\n".into();
    let server = TestServer::start(setup).await;
    let_others_through(&server);
    // A git project: the job runs in a fresh checkout, which must be the job user's.
    let project = server.project_dir();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&project)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "--quiet", "--initial-branch=main"]);
    git(&["add", "."]);
    git(&["commit", "--quiet", "-m", "ci"]);
    let data = server.data_dir();
    let (_, reply) = server
        .run_and_reply(&format!("run who {}", data.display()), 1)
        .await;
    let text = slack_text(&reply);
    for line in [
        "nobody",
        "checkout writable",
        "home usable",
        "link.key unreadable",
        "db unreadable",
        "data_dir unlistable",
        "logs unlistable",
    ] {
        assert!(text.contains(line), "{line:?} not in {text}");
    }
    assert!(text.contains("succeeded"), "{text}");
    assert!(
        text.contains(&format!("dir={}", data.join("builds").display())),
        "runs in a checkout: {text}"
    );
    assert_eq!(mode(&data), 0o711, "pass-through only");
    assert_eq!(mode(&data.join("link.key")), 0o600);
}

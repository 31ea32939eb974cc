//! The command line (contract §1): `check`, `run`, exit codes.

use crate::CI;
use std::path::Path;
use std::process::Command;

fn chatops() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_chatops"));
    c.env_remove("CHATOPS_CONFIG").env("RUST_LOG", "warn");
    c
}

/// A config with one plain-folder project `demo` holding `ci`, and one broken project if asked.
fn workspace(ci: &str, broken: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).expect("dir");
    std::fs::write(project.join(".gitlab-ci.yml"), ci).expect("ci");
    let mut config = String::from(
        "server:\n  data_dir: data\nprojects:\n  demo:\n    repository: project\n    default_role: developer\n",
    );
    if broken {
        let bad = dir.path().join("bad");
        std::fs::create_dir_all(&bad).expect("dir");
        std::fs::write(bad.join(".gitlab-ci.yml"), "job:\n  script: [echo\n").expect("ci");
        config.push_str("  bad:\n    repository: bad\n");
    }
    std::fs::write(dir.path().join("chatops.yaml"), config).expect("config");
    dir
}

fn config_of(dir: &Path) -> String {
    dir.join("chatops.yaml").to_string_lossy().into_owned()
}

#[test]
fn check_json_reports_every_job() {
    let dir = workspace(CI, false);
    let out = chatops()
        .args(["check", "--json", "--config", &config_of(dir.path())])
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], true);
    let project = &report["projects"][0];
    assert_eq!(project["name"], "demo");
    assert_eq!(project["command"], "/demo");
    assert!(project["error"].is_null());
    let jobs = project["jobs"].as_array().expect("jobs");
    let names: Vec<_> = jobs
        .iter()
        .map(|j| j["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "hello-world",
            "ls",
            "multi",
            "vars",
            "echo",
            "manual-deploy",
            "build",
            "nightly",
            "fails",
            "sleeper",
            "big",
            "wide"
        ],
        "visible jobs in file order"
    );
    let by = |n: &str| jobs.iter().find(|j| j["name"] == n).expect("job");
    assert_eq!(by("hello-world")["runnable"], true);
    assert_eq!(by("hello-world")["when"], "on_success");
    assert!(by("hello-world")["reason"].is_null());
    assert_eq!(by("manual-deploy")["when"], "manual");
    assert_eq!(by("build")["runnable"], false);
    assert!(by("build")["when"].is_null());
    assert_eq!(by("build")["reason"], "except: chat");
    assert_eq!(by("nightly")["runnable"], false);
    assert!(by("nightly")["reason"]
        .as_str()
        .expect("reason")
        .contains("rules"));
}

#[test]
fn check_fails_on_a_broken_project_and_names_file_and_line() {
    let dir = workspace(CI, true);
    let out = chatops()
        .args(["check", "--json", "--config", &config_of(dir.path())])
        .output()
        .expect("run check");
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["ok"], false);
    let error = report["projects"][1]["error"].as_str().expect("error set");
    assert!(error.contains(".gitlab-ci.yml"), "{error}");
    assert!(report["projects"][0]["error"].is_null());
}

#[test]
fn bad_config_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "server:\n  listen: 127.0.0.1:0\n  colour: blue\n").expect("write");
    for cmd in ["check", "serve"] {
        let out = chatops()
            .args([cmd, "--config", &path.to_string_lossy()])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("c.yaml:3") && err.contains("colour"), "{err}");
    }
}

#[test]
fn run_prints_the_reply_and_streams_the_log() {
    let dir = workspace(CI, false);
    let out = chatops()
        .args([
            "run",
            "--config",
            &config_of(dir.path()),
            "demo",
            "hello-world",
        ])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Hello World"), "{stdout}");
    assert!(stdout.contains("succeeded"), "{stdout}");
    assert!(
        stderr.contains("$ echo \"Hello World\""),
        "the log streams to stderr: {stderr}"
    );
}

#[test]
fn run_passes_input_and_exit_codes_follow_the_job() {
    let dir = workspace(CI, false);
    let cfg = config_of(dir.path());
    let out = chatops()
        .args(["run", "--config", &cfg, "demo", "echo", "two", "words"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(read_input(dir.path()), "two words");
    let out = chatops()
        .args(["run", "--config", &cfg, "demo", "fails"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("exit code 3"));
    let out = chatops()
        .args(["run", "--config", &cfg, "demo", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = chatops()
        .args(["run", "--config", &cfg, "nope", "hello-world"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let out = chatops()
        .args(["run", "--config", &cfg, "--play", "demo", "manual-deploy"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("deployed by chat"));
}

fn read_input(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("project").join("input.txt")).unwrap_or_default()
}

#[test]
fn the_embedded_demo_config_checks_clean() {
    // From a folder without config/: the embedded default (the repo's demo) is used.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = chatops()
        .current_dir(dir.path())
        .args(["check", "--json"])
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let jobs = report["projects"][0]["jobs"].as_array().expect("jobs");
    assert!(jobs
        .iter()
        .any(|j| j["name"] == "hello-world" && j["runnable"] == true));
    assert!(jobs
        .iter()
        .any(|j| j["name"] == "build" && j["runnable"] == false));
}

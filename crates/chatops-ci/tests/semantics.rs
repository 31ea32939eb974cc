//! GitLab CI semantics, end to end through the public API: a CI file in memory, a job looked
//! up, and what a chat pipeline would do with it.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use chatops_ci::{load, load_str, CiError, Decision, Lookup, Source, Variables, When};

/// An in-memory repository.
struct Mem(HashMap<String, String>);

impl Mem {
    fn new(files: &[(&str, &str)]) -> Self {
        Mem(files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}

impl Source for Mem {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        let mut v: Vec<String> = self.0.keys().cloned().collect();
        v.sort();
        Ok(v)
    }
}

fn chat_vars() -> Variables {
    [
        ("CI_PIPELINE_SOURCE", "chat"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CI_PROJECT_NAME", "demo"),
    ]
    .into_iter()
    .collect()
}

fn cfg(text: &str) -> chatops_ci::CiConfig {
    match load_str(&Mem::new(&[]), ".gitlab-ci.yml", text) {
        Ok(c) => c,
        Err(e) => panic!("should load: {e}"),
    }
}

fn decide(text: &str, job: &str) -> Decision {
    let c = cfg(text);
    match c.lookup(job) {
        Lookup::Found(j) => c.evaluate(j, &chat_vars()),
        other => panic!("{job} not found: {other:?}"),
    }
}

fn reason(d: Decision) -> String {
    match d {
        Decision::Excluded { reason } => reason,
        Decision::Run { .. } => panic!("expected the job to be excluded"),
    }
}

fn run_when(d: Decision) -> When {
    match d {
        Decision::Run { when, .. } => when,
        Decision::Excluded { reason } => panic!("expected the job to run, excluded: {reason}"),
    }
}

fn run_vars(d: Decision) -> Vec<(String, String)> {
    match d {
        Decision::Run { variables, .. } => variables,
        Decision::Excluded { reason } => panic!("expected the job to run, excluded: {reason}"),
    }
}

#[test]
fn anchors_hidden_jobs_and_reserved_keywords() {
    let c = cfg(r#"
stages: [build, deploy]
variables: {A: "1"}
image: alpine
.tmpl: &tmpl
  script: [echo tmpl]
  stage: build
hello-world:
  <<: *tmpl
deploy:
  stage: deploy
  script: echo deploy
"#);
    let names: Vec<&str> = c.jobs().iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, vec!["hello-world", "deploy"]);
    assert_eq!(c.lookup(".tmpl"), Lookup::Hidden);
    match c.lookup("hello-world") {
        Lookup::Found(j) => {
            assert_eq!(j.script, vec!["echo tmpl"]);
            assert_eq!(j.stage.as_deref(), Some("build"));
        }
        other => panic!("{other:?}"),
    }
    match c.lookup("deplyo") {
        Lookup::Missing { suggestions } => {
            assert_eq!(suggestions.first().map(String::as_str), Some("deploy"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(c.lookup("variables"), Lookup::Missing { .. }));
}

#[test]
fn default_scripts_and_inherit() {
    let c = cfg(r#"
default:
  before_script: [echo before]
  after_script: echo after
  timeout: 30m
a:
  script: [echo a, [echo nested, [echo deeper]]]
b:
  inherit: {default: false}
  script: echo b
c:
  inherit: {default: [after_script]}
  before_script: []
  script: echo c
  timeout: 1h 30m
"#);
    let get = |n: &str| match c.lookup(n) {
        Lookup::Found(j) => j.clone(),
        other => panic!("{other:?}"),
    };
    let a = get("a");
    assert_eq!(a.before_script, vec!["echo before"]);
    assert_eq!(a.script, vec!["echo a", "echo nested", "echo deeper"]);
    assert_eq!(a.after_script, vec!["echo after"]);
    assert_eq!(a.timeout, Some(Duration::from_secs(1800)));
    let b = get("b");
    assert!(b.before_script.is_empty() && b.after_script.is_empty());
    assert_eq!(b.timeout, None);
    let c_job = get("c");
    assert!(c_job.before_script.is_empty());
    assert_eq!(c_job.after_script, vec!["echo after"]);
    assert_eq!(c_job.timeout, Some(Duration::from_secs(5400)));
}

#[test]
fn top_level_before_script_is_a_default() {
    let c = cfg("before_script: [echo top]\njob: {script: x}\n");
    match c.lookup("job") {
        Lookup::Found(j) => assert_eq!(j.before_script, vec!["echo top"]),
        other => panic!("{other:?}"),
    }
    let err = load_str(
        &Mem::new(&[]),
        ".gitlab-ci.yml",
        "before_script: [a]\ndefault: {before_script: [b]}\njob: {script: x}\n",
    );
    assert!(err.is_err());
}

#[test]
fn only_except_chat() {
    let text = r#"
plain: {script: x}
no-chat: {script: x, except: [chat]}
only-chat: {script: x, only: [chat]}
only-pushes: {script: x, only: [pushes, merge_requests]}
only-main: {script: x, only: [main]}
only-regex: {script: x, only: ['/^ma/']}
only-vars: {script: x, only: {variables: ['$CI_PIPELINE_SOURCE == "chat"']}}
except-branches: {script: x, except: [branches]}
except-changes: {script: x, except: {changes: [docs/*]}}
"#;
    assert_eq!(run_when(decide(text, "plain")), When::OnSuccess);
    assert_eq!(reason(decide(text, "no-chat")), "except: chat");
    assert_eq!(run_when(decide(text, "only-chat")), When::OnSuccess);
    assert_eq!(
        reason(decide(text, "only-pushes")),
        "only: refs do not include chat"
    );
    assert_eq!(run_when(decide(text, "only-main")), When::OnSuccess);
    assert_eq!(run_when(decide(text, "only-regex")), When::OnSuccess);
    assert_eq!(run_when(decide(text, "only-vars")), When::OnSuccess);
    assert_eq!(reason(decide(text, "except-branches")), "except: branches");
    // Chat pipelines count every path as changed.
    assert_eq!(reason(decide(text, "except-changes")), "except: changes");
}

#[test]
fn rules_if_first_match_wins() {
    let text = r#"
variables: {DEPLOY: "yes"}
chat-only:
  script: x
  rules:
    - if: $CI_PIPELINE_SOURCE == "chat"
push-only:
  script: x
  rules:
    - if: '$CI_PIPELINE_SOURCE == "push"'
never-chat:
  script: x
  rules:
    - if: $CI_PIPELINE_SOURCE == "chat"
      when: never
    - when: always
manual:
  script: x
  rules:
    - if: $CI_PIPELINE_SOURCE != "push"
      when: manual
      variables: {EXTRA: "$DEPLOY-1"}
file-var:
  script: x
  variables: {TARGET: staging}
  rules:
    - if: $TARGET == "staging" && $DEPLOY
broken:
  script: x
  rules:
    - if: $CI_PIPELINE_SOURCE = "chat"
"#;
    assert_eq!(run_when(decide(text, "chat-only")), When::OnSuccess);
    assert_eq!(reason(decide(text, "push-only")), "rules: no rule matched");
    assert_eq!(reason(decide(text, "never-chat")), "when: never");
    match decide(text, "manual") {
        Decision::Run {
            when,
            variables,
            allow_failure,
        } => {
            assert_eq!(when, When::Manual);
            // With rules, `when: manual` does not imply allow_failure.
            assert!(!allow_failure);
            assert!(variables.contains(&("EXTRA".to_string(), "yes-1".to_string())));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run_when(decide(text, "file-var")), When::OnSuccess);
    let r = reason(decide(text, "broken"));
    assert!(
        r.contains("$CI_PIPELINE_SOURCE = \\\"chat\\\"") || r.contains("does not parse"),
        "{r}"
    );
}

#[test]
fn when_manual_and_delayed() {
    let text = r#"
m: {script: x, when: manual}
d: {script: x, when: delayed, start_in: 10 minutes}
n: {script: x, when: never}
"#;
    match decide(text, "m") {
        Decision::Run {
            when,
            allow_failure,
            ..
        } => {
            assert_eq!(when, When::Manual);
            assert!(allow_failure, "manual jobs may fail by default");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        run_when(decide(text, "d")),
        When::Delayed {
            start_in: Duration::from_secs(600)
        }
    );
    assert_eq!(reason(decide(text, "n")), "when: never");
}

#[test]
fn variables_precedence_and_expansion() {
    let text = r#"
variables:
  HOST: file-host
  URL: https://$HOST/${PATH_PART}
  PATH_PART: api
  RAW: {value: "$HOST", expand: false}
  GREETING: {value: hi, description: "shown in the UI"}
job:
  script: x
  variables:
    PATH_PART: v2
    INPUT: $CHAT_INPUT
no-vars:
  script: x
  inherit: {variables: [HOST]}
"#;
    let c = cfg(text);
    let job = match c.lookup("job") {
        Lookup::Found(j) => j,
        other => panic!("{other:?}"),
    };
    let mut vars = chat_vars();
    vars.insert("HOST", "project-host");
    let got: HashMap<String, String> = run_vars(c.evaluate(job, &vars)).into_iter().collect();
    assert_eq!(
        got.get("URL").map(String::as_str),
        Some("https://project-host/v2")
    );
    assert_eq!(got.get("HOST").map(String::as_str), Some("project-host"));
    assert_eq!(got.get("RAW").map(String::as_str), Some("$HOST"));
    assert_eq!(got.get("GREETING").map(String::as_str), Some("hi"));
    // CHAT_INPUT is not known at evaluation: left for the runner.
    assert_eq!(got.get("INPUT").map(String::as_str), Some("$CHAT_INPUT"));
    let nv = match c.lookup("no-vars") {
        Lookup::Found(j) => j,
        other => panic!("{other:?}"),
    };
    let names: Vec<String> = run_vars(c.evaluate(nv, &chat_vars()))
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(names, vec!["HOST"]);
}

#[test]
fn errors_name_file_and_line() {
    let err = load_str(
        &Mem::new(&[]),
        ".gitlab-ci.yml",
        "a:\n  script: x\nb: c: d\n",
    )
    .err();
    match err {
        Some(CiError::Yaml { file, line, .. }) => {
            assert_eq!(file, ".gitlab-ci.yml");
            assert_eq!(line, Some(3));
        }
        other => panic!("{other:?}"),
    }
    let err = load(&Mem::new(&[]), ".gitlab-ci.yml").err();
    assert!(matches!(err, Some(CiError::NotFound { .. })));
    let text = "stages: [b]\nok: {stage: b, script: x}\nbuild:\n  stage: b\n  script: x\n  only: [main]\n  rules:\n    - when: always\n";
    let err = load_str(&Mem::new(&[]), ".gitlab-ci.yml", text).err();
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.starts_with(".gitlab-ci.yml:7:"), "{msg}");
    assert!(msg.contains("may not be used with `rules`"), "{msg}");
}

#[test]
fn a_job_without_script_is_listed_but_not_runnable() {
    let text = "stages: [b]\nok: {stage: b, script: x}\nbuild:\n  stage: b\n";
    let r = reason(decide(text, "build"));
    assert!(r.contains("script"), "{r}");
    assert_eq!(run_when(decide(text, "ok")), When::OnSuccess);
}

/// The error text of a file that must not load.
fn refusal(text: &str) -> String {
    match load_str(&Mem::new(&[]), ".gitlab-ci.yml", text) {
        Ok(_) => panic!("should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Issue #9 item 11: `excpet: [chat]` was ignored, so a job meant to be kept out of chat ran
/// from it. Unknown job keys refuse the file as GitLab does, at the key's line.
#[test]
fn unknown_job_keys_refuse_the_file_at_their_line() {
    let msg = refusal("build:\n  script: make\ndeploy:\n  script: ./deploy\n  excpet: [chat]\n");
    assert_eq!(
        msg,
        ".gitlab-ci.yml:5: jobs:deploy config contains unknown keys: excpet (did you mean except?)"
    );
    let msg = refusal("deploy:\n  script: x\n  rulez:\n    - when: never\n");
    assert!(
        msg.starts_with(".gitlab-ci.yml:3: jobs:deploy config contains unknown keys: rulez"),
        "{msg}"
    );
    // Every unknown key is named, in file order; a key like no keyword gets no guess.
    let msg = refusal("deploy:\n  script: x\n  colour: red\n  tagz: [a]\n");
    assert!(
        msg.ends_with("unknown keys: colour, tagz (did you mean tags?)"),
        "{msg}"
    );
    // A trigger job is checked too.
    let msg = refusal("down:\n  trigger: group/project\n  excpet: [chat]\n");
    assert!(
        msg.contains("jobs:down config contains unknown keys: excpet"),
        "{msg}"
    );
    // A misspelt `script:` leaves the job without one: GitLab refuses the file.
    let msg = refusal("ok:\n  script: x\ndeploy:\n  scrpt: ./deploy\n");
    assert!(
        msg.starts_with(".gitlab-ci.yml:4: jobs:deploy config contains unknown keys: scrpt"),
        "{msg}"
    );
    // A key reaching a job through `extends` or a merge key counts where GitLab sees it.
    let msg = refusal(".base: {excpet: [chat]}\ndeploy:\n  extends: .base\n  script: x\n");
    assert!(
        msg.contains("jobs:deploy config contains unknown keys: excpet"),
        "{msg}"
    );
}

#[test]
fn every_job_keyword_is_accepted_and_hidden_jobs_are_not_checked() {
    let text = r#"
.template:
  anything: goes
  scrpt: templates are not validated
.base:
  tags: [base]
job:
  extends: .base
  stage: test
  script: [x]
  before_script: [y]
  after_script: [z]
  image: alpine
  services: [postgres]
  tags: [linux]
  variables: {A: a}
  rules: [{when: on_success}]
  inherit: {default: false}
  allow_failure: true
  when: on_success
  needs: []
  dependencies: []
  resource_group: r
  environment: production
  interruptible: true
  artifacts: {paths: [out]}
  cache: {paths: [c]}
  hooks: {pre_get_sources_script: [h]}
  coverage: '/\d+%/'
  retry: 2
  parallel: 2
  timeout: 1h
  release: {tag_name: v1, description: d}
  id_tokens: {T: {aud: x}}
  secrets: {S: {vault: a/b@c}}
  dast_configuration: {site_profile: p}
  identity: google_cloud
  manual_confirmation: sure?
  inputs: {n: {default: 1}}
  pages: false
  publish: public
trigger-job:
  stage: deploy
  trigger: {project: a/b, strategy: depend}
  only: [main]
  except: [chat]
"#;
    let c = cfg(text);
    let names: Vec<&str> = c.jobs().iter().map(|j| j.name.as_str()).collect();
    assert_eq!(names, vec!["job", "trigger-job"]);
}

#[test]
fn a_job_without_script_and_with_a_stray_key_loads_but_cannot_run() {
    // Neither a script job nor a trigger job (GitLab's schema fixtures have such files):
    // chatops keeps the other jobs, as for any job without a script, and says why.
    let text = "ok: {script: x}\nodd:\n  workflow: {name: w}\n";
    let r = reason(decide(text, "odd"));
    assert!(r.contains("unknown keys: workflow"), "{r}");
    assert_eq!(run_when(decide(text, "ok")), When::OnSuccess);
}

/// Issue #9 item 11: a `stage:` not in `stages:` is an error, with GitLab's words.
#[test]
fn unknown_stages_refuse_the_file() {
    let msg = refusal("deploy:\n  stage: deploi\n  script: x\n");
    assert_eq!(
        msg,
        ".gitlab-ci.yml:2: deploy job: chosen stage deploi does not exist; available stages are .pre, build, test, deploy, .post"
    );
    let msg = refusal("stages: [one, two]\nj:\n  stage: three\n  script: x\n");
    assert!(
        msg.ends_with(
            "chosen stage three does not exist; available stages are .pre, one, two, .post"
        ),
        "{msg}"
    );
    // No `stage:` is `test`, which a custom list may lack: GitLab refuses it; chatops says it
    // and keeps the job (chat-only files often list only their own stages).
    let c = cfg("stages: [one]\nj:\n  script: x\n");
    assert_eq!(c.jobs().len(), 1);
    assert!(
        c.warnings()
            .iter()
            .any(|w| w.starts_with("j job: chosen stage test does not exist")),
        "{:?}",
        c.warnings()
    );
    let msg = refusal("j:\n  stage: [build]\n  script: x\n");
    assert!(
        msg.contains("jobs:j:stage config should be a string"),
        "{msg}"
    );
    let msg = refusal("stages: one\nj:\n  script: x\n");
    assert!(
        msg.contains("stages config should be an array of strings"),
        "{msg}"
    );
}

#[test]
fn declared_default_and_edge_stages_are_accepted() {
    let c = cfg("a: {stage: build, script: x}\nb: {script: x}\nc: {stage: .pre, script: x}\nd: {stage: .post, script: x}\n");
    assert_eq!(c.jobs().len(), 4);
    // Nested lists of stages are flattened (anchors, `!reference`); legacy `types:` too.
    let c = cfg("stages: [a, [b, [c]]]\nj: {stage: c, script: x}\n");
    assert_eq!(c.jobs().len(), 1);
    let c = cfg("types: [x]\nj: {stage: x, script: x}\n");
    assert_eq!(c.jobs().len(), 1);
    // `stages:` may be in an include chatops cannot read: a warning, not an error.
    let c = cfg("include: {remote: 'https://example.com/ci.yml'}\nj: {stage: lint, script: x}\n");
    assert!(
        c.warnings().iter().any(|w| w.contains("chosen stage lint")),
        "{:?}",
        c.warnings()
    );
}

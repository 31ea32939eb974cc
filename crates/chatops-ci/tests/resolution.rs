//! `include:`, `spec:` inputs, `extends:`, `!reference` and `workflow:rules`, through the
//! public API with an in-memory repository.

use std::collections::HashMap;
use std::io;

use chatops_ci::{load, load_with, CiConfig, CiError, Decision, Lookup, Source, Variables, When};

struct Mem(HashMap<String, String>);

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

fn repo(files: &[(&str, &str)]) -> Mem {
    Mem(files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn ok(files: &[(&str, &str)]) -> CiConfig {
    match load(&repo(files), ".gitlab-ci.yml") {
        Ok(c) => c,
        Err(e) => panic!("should load: {e}"),
    }
}

fn err(files: &[(&str, &str)]) -> CiError {
    match load(&repo(files), ".gitlab-ci.yml") {
        Ok(_) => panic!("should fail"),
        Err(e) => e,
    }
}

fn names(c: &CiConfig) -> Vec<&str> {
    c.jobs().iter().map(|j| j.name.as_str()).collect()
}

fn job<'a>(c: &'a CiConfig, name: &str) -> &'a chatops_ci::Job {
    match c.lookup(name) {
        Lookup::Found(j) => j,
        other => panic!("{name}: {other:?}"),
    }
}

fn chat() -> Variables {
    [
        ("CI_PIPELINE_SOURCE", "chat"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_DEFAULT_BRANCH", "main"),
    ]
    .into_iter()
    .collect()
}

fn decision(c: &CiConfig, name: &str) -> Decision {
    c.evaluate(job(c, name), &chat())
}

#[test]
fn local_includes_in_every_form() {
    let c = ok(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - ci/a.yml\n  - local: /ci/b.yml\n  - {local: 'ci/glob/*.yml'}\nmain-job: {script: m}\n",
        ),
        ("ci/a.yml", "a-job: {script: a}\n"),
        ("ci/b.yml", "include: ci/nested.yml\nb-job: {script: b}\n"),
        ("ci/nested.yml", "nested-job: {script: n}\n"),
        ("ci/glob/x.yml", "x-job: {script: x}\n"),
        ("ci/glob/y.yml", "y-job: {script: y}\n"),
        ("ci/glob/deeper/z.yml", "z-job: {script: z}\n"),
    ]);
    assert_eq!(
        names(&c),
        vec!["main-job", "a-job", "b-job", "nested-job", "x-job", "y-job"]
    );
    let c = ok(&[
        (".gitlab-ci.yml", "include: 'ci/a.yml'\n"),
        ("ci/a.yml", "a-job: {script: a}\n"),
    ]);
    assert_eq!(names(&c), vec!["a-job"]);
}

#[test]
fn the_including_file_wins_on_merge() {
    let c = ok(&[
        (
            ".gitlab-ci.yml",
            "include: ci/a.yml\nvariables: {A: main}\nshared:\n  script: [from-main]\n",
        ),
        (
            "ci/a.yml",
            "variables: {A: inc, B: inc}\nshared:\n  stage: deploy\n  script: [from-include]\n",
        ),
    ]);
    let j = job(&c, "shared");
    assert_eq!(j.script, vec!["from-main"]);
    assert_eq!(j.stage.as_deref(), Some("deploy"));
    match decision(&c, "shared") {
        Decision::Run { variables, .. } => {
            assert!(variables.contains(&("A".into(), "main".into())));
            assert!(variables.contains(&("B".into(), "inc".into())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn include_rules_and_other_kinds() {
    let files = [
        (
            ".gitlab-ci.yml",
            r#"
include:
  - local: ci/chat.yml
    rules:
      - if: $CI_PIPELINE_SOURCE == "chat"
  - local: ci/push.yml
    rules:
      - if: $CI_PIPELINE_SOURCE == "push"
  - remote: https://example.com/ci.yml
  - template: Auto-DevOps.gitlab-ci.yml
  - project: group/tools
    file: [a.yml, b.yml]
  - component: gitlab.com/org/comp@1.0
local-job: {script: x}
from-template:
  extends: .auto-deploy
"#,
        ),
        ("ci/chat.yml", "chat-job: {script: c}\n"),
        ("ci/push.yml", "push-job: {script: p}\n"),
    ];
    let c = ok(&files);
    assert_eq!(
        names(&c),
        vec!["local-job", "from-template", "chat-job", "push-job"]
    );
    let w = c.warnings().join("\n");
    assert!(
        w.contains("include: remote is not supported: https://example.com/ci.yml"),
        "{w}"
    );
    assert!(
        w.contains("include: template is not supported: Auto-DevOps.gitlab-ci.yml"),
        "{w}"
    );
    assert!(
        w.contains("include: project is not supported: group/tools (a.yml, b.yml)"),
        "{w}"
    );
    assert!(w.contains("include: component is not supported"), "{w}");
    assert!(matches!(decision(&c, "local-job"), Decision::Run { .. }));
    assert!(matches!(decision(&c, "chat-job"), Decision::Run { .. }));
    match decision(&c, "push-job") {
        Decision::Excluded { reason } => assert!(reason.contains("include: rules"), "{reason}"),
        other => panic!("{other:?}"),
    }
    match decision(&c, "from-template") {
        Decision::Excluded { reason } => assert!(reason.contains(".auto-deploy"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Project variables given at load time reach include rules.
    let vars: Variables = [("CI_PIPELINE_SOURCE", "push")].into_iter().collect();
    let c = load_with(&repo(&files), ".gitlab-ci.yml", &vars).unwrap_or_else(|e| panic!("{e}"));
    let push = job(&c, "push-job");
    assert_eq!(push.script, vec!["p"]);
}

#[test]
fn missing_local_include_is_a_warning_naming_it() {
    let c = ok(&[(".gitlab-ci.yml", "include: ci/gone.yml\njob: {script: x}\n")]);
    assert!(
        c.warnings().iter().any(|w| w.contains("ci/gone.yml")),
        "{:?}",
        c.warnings()
    );
    assert!(matches!(decision(&c, "job"), Decision::Run { .. }));
}

#[test]
fn spec_inputs_with_defaults_and_include_inputs() {
    let c = ok(&[
        (
            ".gitlab-ci.yml",
            "spec:\n  inputs:\n    stage: {default: test}\n    retries: {default: 2, type: number}\n---\n\
             include:\n  - local: ci/deploy.yml\n    inputs: {env: production}\n\
             job-$[[ inputs.stage ]]:\n  stage: $[[ inputs.stage ]]\n  script: echo $[[ inputs.retries ]]\n",
        ),
        (
            "ci/deploy.yml",
            "spec:\n  inputs:\n    env: {options: [staging, production]}\n    region: {default: eu}\n---\n\
             deploy-$[[ inputs.env ]]:\n  script: ./deploy $[[ inputs.env ]] $[[ inputs.region | truncate(0,1) ]]\n",
        ),
    ]);
    assert_eq!(names(&c), vec!["job-test", "deploy-production"]);
    assert_eq!(job(&c, "job-test").script, vec!["echo 2"]);
    assert_eq!(
        job(&c, "deploy-production").script,
        vec!["./deploy production e"]
    );

    let e = err(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: ci/d.yml\n    inputs: {env: moon}\nj: {script: x}\n",
        ),
        (
            "ci/d.yml",
            "spec:\n  inputs:\n    env: {options: [staging, production]}\n---\nd: {script: x}\n",
        ),
    ]);
    assert!(e.to_string().contains("allowed options"), "{e}");
    let e = err(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: ci/d.yml\n    inputs: {nope: 1}\nj: {script: x}\n",
        ),
        (
            "ci/d.yml",
            "spec:\n  inputs:\n    env: {default: a}\n---\nd: {script: x}\n",
        ),
    ]);
    assert!(
        e.to_string().contains("unknown input arguments: nope"),
        "{e}"
    );
    let e = err(&[
        (
            ".gitlab-ci.yml",
            "include:\n  - local: ci/d.yml\nj: {script: x}\n",
        ),
        (
            "ci/d.yml",
            "spec:\n  inputs:\n    env:\n---\nd: {script: x}\n",
        ),
    ]);
    assert!(
        e.to_string()
            .contains("`env` input: required value has not been provided"),
        "{e}"
    );
    assert_eq!(e.file(), Some("ci/d.yml"));
}

#[test]
fn multi_document_files_are_refused_clearly() {
    let e = err(&[(".gitlab-ci.yml", "a: {script: x}\n---\nb: {script: y}\n")]);
    assert!(e.to_string().contains("spec:"), "{e}");
    let e = err(&[(".gitlab-ci.yml", "a: {script: x}\n---\nb: 1\n---\nc: 2\n")]);
    assert!(e.to_string().contains("3 YAML documents"), "{e}");
}

#[test]
fn extends_merges_deeply_and_later_parents_win() {
    let c = ok(&[(
        ".gitlab-ci.yml",
        r#"
.base:
  image: ruby
  variables: {A: base, B: base}
  script: [base]
  tags: [one, two]
.other:
  variables: {B: other, C: other}
  tags: [three]
  before_script: [other-before]
job:
  extends: [.base, .other]
  variables: {C: job}
  stage: deploy
single:
  extends: .base
  script: [own]
"#,
    )]);
    let j = job(&c, "job");
    assert_eq!(j.script, vec!["base"]);
    assert_eq!(j.before_script, vec!["other-before"]);
    match decision(&c, "job") {
        Decision::Run { variables, .. } => assert_eq!(
            variables,
            vec![
                ("A".to_string(), "base".to_string()),
                ("B".to_string(), "other".to_string()),
                ("C".to_string(), "job".to_string())
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(job(&c, "single").script, vec!["own"]);
}

#[test]
fn extends_chains_of_eleven_and_their_limits() {
    let mut text = String::from(".l0: {script: [deep]}\n");
    for i in 1..=10 {
        text.push_str(&format!(".l{i}: {{extends: .l{}}}\n", i - 1));
    }
    text.push_str("job: {extends: .l10}\n");
    let c = ok(&[(".gitlab-ci.yml", &text)]);
    assert_eq!(job(&c, "job").script, vec!["deep"]);

    let mut text = String::from(".l0: {script: [deep]}\n");
    for i in 1..=11 {
        text.push_str(&format!(".l{i}: {{extends: .l{}}}\n", i - 1));
    }
    text.push_str("job: {extends: .l11}\n");
    let e = err(&[(".gitlab-ci.yml", &text)]);
    assert!(
        e.to_string().contains("nesting too deep in `extends`"),
        "{e}"
    );

    let e = err(&[(
        ".gitlab-ci.yml",
        ".a: {extends: .b}\n.b: {extends: .a}\njob: {extends: .a, script: x}\n",
    )]);
    assert!(
        e.to_string()
            .contains("circular dependency detected in `extends`"),
        "{e}"
    );
    assert!(e.line().is_some(), "{e}");
}

#[test]
fn references_resolve_nested_and_report_missing() {
    let c = ok(&[(
        ".gitlab-ci.yml",
        r#"
.setup:
  script: [echo setup, echo more]
  variables: {A: "1"}
.rules:
  rules:
    - if: $CI_PIPELINE_SOURCE == "chat"
.indirect:
  script:
    - !reference [.setup, script]
    - echo indirect
job:
  variables: !reference [.setup, variables]
  script:
    - !reference [.indirect, script]
    - echo job
  rules:
    - !reference [.rules, rules]
broken:
  script: !reference [.nothing, script]
tagged:
  tags: [!reference [.runner-tags]]
  script: [echo tagged]
"#,
    )]);
    assert_eq!(
        job(&c, "job").script,
        vec!["echo setup", "echo more", "echo indirect", "echo job"]
    );
    match decision(&c, "job") {
        Decision::Run { variables, .. } => assert_eq!(variables, vec![("A".into(), "1".into())]),
        other => panic!("{other:?}"),
    }
    // A missing reference under a key chatops does not use only warns.
    assert_eq!(job(&c, "tagged").script, vec!["echo tagged"]);
    assert!(matches!(decision(&c, "tagged"), Decision::Run { .. }));
    assert!(
        c.warnings().iter().any(|w| w.contains("tagged:tags")),
        "{:?}",
        c.warnings()
    );
    match decision(&c, "broken") {
        Decision::Excluded { reason } => {
            assert!(
                reason.contains("!reference [\".nothing\", \"script\"] could not be found"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn references_nest_up_to_ten_levels() {
    // Scripts: each reference in a list adds an array level; GitLab allows ten.
    let mut text = String::from(".r0: {script: [bottom]}\n");
    for i in 1..=8 {
        text.push_str(&format!(
            ".r{i}: {{script: [!reference [.r{}, script]]}}\n",
            i - 1
        ));
    }
    text.push_str("job: {script: [!reference [.r8, script]]}\n");
    let c = ok(&[(".gitlab-ci.yml", &text)]);
    assert_eq!(job(&c, "job").script, vec!["bottom"]);

    // Ten references deep resolve; eleven are refused.
    let chain = |n: usize| {
        let mut text = String::from(".v0: {variables: {A: deep}}\n");
        for i in 1..n {
            text.push_str(&format!(
                ".v{i}: {{variables: !reference [.v{}, variables]}}\n",
                i - 1
            ));
        }
        text.push_str(&format!(
            "job: {{script: x, variables: !reference [.v{}, variables]}}\n",
            n - 1
        ));
        text
    };
    let c = ok(&[(".gitlab-ci.yml", &chain(10))]);
    match decision(&c, "job") {
        Decision::Run { variables, .. } => assert_eq!(variables, vec![("A".into(), "deep".into())]),
        other => panic!("{other:?}"),
    }
    let e = err(&[(".gitlab-ci.yml", &chain(11))]);
    assert!(e.to_string().contains("too many nested references"), "{e}");
}

#[test]
fn workflow_rules_gate_every_job() {
    let text = r#"
workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "merge_request_event"
    - if: $CI_PIPELINE_SOURCE == "chat"
      variables: {FROM_WORKFLOW: "yes"}
job: {script: x}
"#;
    let c = ok(&[(".gitlab-ci.yml", text)]);
    match decision(&c, "job") {
        Decision::Run { variables, .. } => {
            assert!(variables.contains(&("FROM_WORKFLOW".into(), "yes".into())))
        }
        other => panic!("{other:?}"),
    }
    let text = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"push\"\njob: {script: x}\n";
    let c = ok(&[(".gitlab-ci.yml", text)]);
    assert_eq!(
        decision(&c, "job"),
        Decision::Excluded {
            reason: "workflow: rules excluded the pipeline".into()
        }
    );
    let text = "workflow:\n  rules:\n    - if: $CI_PIPELINE_SOURCE == \"chat\"\n      when: never\n    - when: always\njob: {script: x}\n";
    let c = ok(&[(".gitlab-ci.yml", text)]);
    assert_eq!(
        decision(&c, "job"),
        Decision::Excluded {
            reason: "workflow: rules excluded the pipeline".into()
        }
    );
}

#[test]
fn rules_exists_changes_and_delayed() {
    let c = ok(&[
        (
            ".gitlab-ci.yml",
            r#"
has-docker:
  script: x
  rules:
    - exists: [Dockerfile]
no-helm:
  script: x
  rules:
    - exists: ["charts/**/Chart.yaml"]
changes:
  script: x
  rules:
    - changes: [src/**/*]
      when: delayed
      start_in: 5 minutes
      allow_failure: true
"#,
        ),
        ("Dockerfile", "FROM scratch\n"),
    ]);
    assert!(matches!(decision(&c, "has-docker"), Decision::Run { .. }));
    assert_eq!(
        decision(&c, "no-helm"),
        Decision::Excluded {
            reason: "rules: no rule matched".into()
        }
    );
    match decision(&c, "changes") {
        Decision::Run {
            when,
            allow_failure,
            ..
        } => {
            assert_eq!(
                when,
                When::Delayed {
                    start_in: std::time::Duration::from_secs(300)
                }
            );
            assert!(allow_failure);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn trigger_jobs_are_jobs() {
    let c = ok(&[(".gitlab-ci.yml", "downstream:\n  trigger: group/project\n")]);
    assert_eq!(names(&c), vec!["downstream"]);
    assert!(job(&c, "downstream").script.is_empty());
}

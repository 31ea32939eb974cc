//! Job descriptions for `help` (issue #11): the comment directly above a job, or the job's
//! `CHAT_DESCRIPTION` variable, through the public API with an in-memory repository.

use std::collections::HashMap;
use std::io;

use chatops_ci::{load, CiConfig, Decision, Lookup, Source, Variables};

struct Mem(HashMap<String, String>);

impl Source for Mem {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.0.keys().cloned().collect())
    }
}

fn ok(files: &[(&str, &str)]) -> CiConfig {
    let mem = Mem(files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect());
    match load(&mem, ".gitlab-ci.yml") {
        Ok(c) => c,
        Err(e) => panic!("should load: {e}"),
    }
}

fn description<'a>(c: &'a CiConfig, name: &str) -> Option<&'a str> {
    match c.lookup(name) {
        Lookup::Found(j) => j.description.as_deref(),
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn comment_directly_above_a_job_describes_it() {
    let c = ok(&[(
        ".gitlab-ci.yml",
        "# The file's header, not a job's.\n\nstages: [a]\n\n# Deploys to the given env\ndeploy:\n  script: [echo d]\n\n# Two lines\n#   of comment,\n#\n# joined.\ntwo:\n  script: [echo t]\n\n# Separated by a blank line: not this job's.\n\nplain:\n  script: [echo p]\n  # the end of the job above, indented: not about `next`\nnext:\n  script: [echo n]\n",
    )]);
    assert_eq!(description(&c, "deploy"), Some("Deploys to the given env"));
    assert_eq!(
        description(&c, "two"),
        Some("Two lines of comment, joined.")
    );
    assert_eq!(description(&c, "plain"), None);
    assert_eq!(description(&c, "next"), None);
}

#[test]
fn chat_description_variable_wins_over_the_comment() {
    let c = ok(&[(
        ".gitlab-ci.yml",
        "# a comment\nvalue-form:\n  variables:\n    CHAT_DESCRIPTION: Restarts the web tier\n  script: [echo v]\nmap-form:\n  variables:\n    CHAT_DESCRIPTION:\n      value: the value\n      description: Rotates the logs\n  script: [echo m]\nvalue-in-map:\n  variables:\n    CHAT_DESCRIPTION: {value: From the value key}\n  script: [echo m]\n# not used: the job has no description variable, the comment counts\nother-var:\n  variables:\n    TARGET: {value: prod, description: the target, not the job}\n  script: [echo o]\n",
    )]);
    assert_eq!(description(&c, "value-form"), Some("Restarts the web tier"));
    assert_eq!(description(&c, "map-form"), Some("Rotates the logs"));
    assert_eq!(description(&c, "value-in-map"), Some("From the value key"));
    assert_eq!(
        description(&c, "other-var"),
        Some("not used: the job has no description variable, the comment counts")
    );
}

#[test]
fn description_variable_is_still_a_variable_and_global_one_describes_no_job() {
    let c = ok(&[(
        ".gitlab-ci.yml",
        "variables:\n  CHAT_DESCRIPTION: every job? no\njob:\n  variables:\n    CHAT_DESCRIPTION: Says hi\n  script: [echo hi]\nbare:\n  script: [echo b]\n",
    )]);
    assert_eq!(description(&c, "job"), Some("Says hi"));
    assert_eq!(description(&c, "bare"), None);
    let vars: Variables = [("CI_PIPELINE_SOURCE", "chat")].into_iter().collect();
    let job = match c.lookup("job") {
        Lookup::Found(j) => j.clone(),
        other => panic!("{other:?}"),
    };
    match c.evaluate(&job, &vars) {
        Decision::Run { variables, .. } => assert!(
            variables.contains(&("CHAT_DESCRIPTION".into(), "Says hi".into())),
            "{variables:?}"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn included_jobs_take_the_comment_from_their_own_file_and_extends_passes_the_variable() {
    let c = ok(&[
        (
            ".gitlab-ci.yml",
            "include: [{local: more.yml}]\n.tmpl:\n  variables:\n    CHAT_DESCRIPTION: From the template\nchild:\n  extends: .tmpl\n  script: [echo c]\n",
        ),
        ("more.yml", "# Lives in more.yml\nincluded:\n  script: [echo i]\n"),
    ]);
    assert_eq!(description(&c, "included"), Some("Lives in more.yml"));
    assert_eq!(description(&c, "child"), Some("From the template"));
}

#[test]
fn long_descriptions_are_cut_to_one_help_line() {
    let long = "word ".repeat(100);
    let c = ok(&[(
        ".gitlab-ci.yml",
        &format!("# {long}\njob:\n  script: [echo j]\n"),
    )]);
    let d = description(&c, "job").unwrap_or_default();
    assert!(d.chars().count() <= 200, "{}", d.len());
    assert!(d.ends_with('…'), "{d}");
}

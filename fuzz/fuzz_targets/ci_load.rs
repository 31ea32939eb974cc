//! The CI loader from bytes: a `.gitlab-ci.yml`, and one more file served for every path an
//! `include:` names (input: the CI file, a NUL, the included file). Every job found is then
//! evaluated for a chat pipeline, which runs `rules`, `only`/`except` and `workflow:rules`.
#![no_main]

use std::io;

use chatops_ci::{load_str, Source, Variables};
use libfuzzer_sys::fuzz_target;

struct Files {
    included: String,
}

impl Source for Files {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        Ok(path.ends_with(".yml").then(|| self.included.clone()))
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(vec![
            "inc.yml".into(),
            "ci/a.yml".into(),
            "Dockerfile".into(),
        ])
    }
}

fuzz_target!(|data: &[u8]| {
    let (main, included) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (
            data.get(..nul).unwrap_or_default(),
            data.get(nul + 1..).unwrap_or_default(),
        ),
        None => (data, &[][..]),
    };
    let main = String::from_utf8_lossy(main);
    let source = Files {
        included: String::from_utf8_lossy(included).into_owned(),
    };
    let Ok(config) = load_str(&source, ".gitlab-ci.yml", &main) else {
        return;
    };
    let vars: Variables = [
        ("CI_PIPELINE_SOURCE", "chat"),
        ("CI_COMMIT_BRANCH", "main"),
        ("CI_DEFAULT_BRANCH", "main"),
        ("CHAT_INPUT", "x"),
    ]
    .into_iter()
    .collect();
    for job in config.jobs() {
        let _ = config.evaluate(job, &vars);
        let _ = config.lookup(&job.name);
    }
});

//! Real-world evidence: every `.gitlab-ci.yml` of the shared corpus gives exactly the job list
//! its `.expect.json` names, and every GitLab schema fixture loads or fails with a clear error,
//! never a panic.
//!
//! The fixtures live outside the repository (`../shared/fixtures`, next to the work tree);
//! where they are absent the tests say so and pass.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chatops_ci::{load_str, Decision, DirSource, Source, Variables};

fn fixtures() -> Option<PathBuf> {
    // Beside the work tree, or beside the folder of work trees (`wt/NAME`), or named by
    // `CHATOPS_FIXTURES`.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates: Vec<PathBuf> = std::env::var_os("CHATOPS_FIXTURES")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            root.join("../../../shared/fixtures"),
            root.join("../../../../shared/fixtures"),
        ])
        .collect();
    let found = candidates.iter().find(|d| d.is_dir()).cloned();
    if found.is_none() {
        println!(
            "skipped: fixtures not found at {:?} (they sit beside the work tree as shared/fixtures)",
            candidates
        );
    }
    found
}

/// A source with no files, for corpus files that include nothing.
struct Empty;

impl Source for Empty {
    fn read(&self, _path: &str) -> std::io::Result<Option<String>> {
        Ok(None)
    }
    fn list(&self) -> std::io::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

fn strings(v: Option<&serde_json::Value>) -> Option<Vec<String>> {
    v?.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn yml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn corpus_job_lists_match_expectations() {
    let Some(root) = fixtures() else { return };
    let dir = root.join("gitlab-ci");
    let files = yml_files(&dir);
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let mut failures = Vec::new();
    let (mut runnable, mut excluded) = (0usize, 0usize);
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        let expect_path = PathBuf::from(format!("{}.expect.json", file.display()));
        let Ok(expect_text) = std::fs::read_to_string(&expect_path) else {
            failures.push(format!("{name}: no expect.json"));
            continue;
        };
        let expect: serde_json::Value = match serde_json::from_str(&expect_text) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{name}: bad expect.json: {e}"));
                continue;
            }
        };
        let wanted = strings(expect.get("jobs_with_local_includes"))
            .or_else(|| strings(expect.get("jobs")))
            .unwrap_or_default();
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let repo_dir = dir.join(name.trim_end_matches(".yml"));
        let dir_source = DirSource::new(&repo_dir);
        let source: &dyn Source = if repo_dir.is_dir() {
            &dir_source
        } else {
            &Empty
        };
        let start = Instant::now();
        match load_str(source, ".gitlab-ci.yml", &text) {
            Ok(cfg) => {
                // Every job can be decided for a chat pipeline, quickly and without panic.
                let vars: Variables = [
                    ("CI_PIPELINE_SOURCE", "chat"),
                    ("CI_COMMIT_BRANCH", "main"),
                    ("CI_DEFAULT_BRANCH", "main"),
                ]
                .into_iter()
                .collect();
                for job in cfg.jobs() {
                    match cfg.evaluate(job, &vars) {
                        Decision::Run { .. } => runnable += 1,
                        Decision::Excluded { reason } => {
                            excluded += 1;
                            assert!(!reason.is_empty(), "{name}: {}", job.name);
                        }
                    }
                }
                let got: Vec<String> = cfg.jobs().iter().map(|j| j.name.clone()).collect();
                if got != wanted {
                    let missing: Vec<&String> =
                        wanted.iter().filter(|w| !got.contains(w)).collect();
                    let extra: Vec<&String> = got.iter().filter(|g| !wanted.contains(g)).collect();
                    failures.push(format!(
                        "{name}: job list differs (got {}, want {}); missing {missing:?}; extra {extra:?}{}",
                        got.len(),
                        wanted.len(),
                        if missing.is_empty() && extra.is_empty() { "; order differs" } else { "" }
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}: failed to load: {e}")),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{name} took {:?}",
            start.elapsed()
        );
    }
    let exact = files.len() - failures.len();
    println!(
        "corpus: {exact}/{} exact; chat pipelines: {runnable} jobs runnable, {excluded} excluded",
        files.len()
    );
    for f in &failures {
        println!("  {f}");
    }
    assert!(
        failures.is_empty(),
        "{} corpus files differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn schema_fixtures_load_or_fail_clearly() {
    let Some(root) = fixtures() else { return };
    let base = root.join("gitlab-ci-schema");
    let mut wrong = Vec::new();
    let mut counts = (0, 0, 0); // positive loaded, negative loaded, negative refused
    for kind in ["positive", "negative"] {
        let mut stack = vec![base.join(kind)];
        let mut files = Vec::new();
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "yml") {
                    files.push(p);
                }
            }
        }
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let rel = file
                .strip_prefix(&base)
                .unwrap_or(&file)
                .display()
                .to_string();
            let result = std::panic::catch_unwind(|| load_str(&Empty, ".gitlab-ci.yml", &text));
            match (kind, result) {
                (_, Err(_)) => wrong.push(format!("{rel}: panicked")),
                ("positive", Ok(Ok(_))) => counts.0 += 1,
                ("positive", Ok(Err(e))) => {
                    wrong.push(format!("{rel}: valid fixture refused: {e}"))
                }
                (_, Ok(Ok(_))) => counts.1 += 1,
                (_, Ok(Err(e))) => {
                    counts.2 += 1;
                    let msg = e.to_string();
                    if !msg.starts_with(".gitlab-ci.yml") || msg.len() < 20 {
                        wrong.push(format!("{rel}: unclear error: {msg}"));
                    }
                }
            }
        }
    }
    println!(
        "schema fixtures: {} positive loaded; negative: {} loaded, {} refused",
        counts.0, counts.1, counts.2
    );
    for w in &wrong {
        println!("  {w}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

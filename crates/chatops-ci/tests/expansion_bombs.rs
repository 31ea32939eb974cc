//! Small files that expand to gigabytes are refused before the memory is spent (issue #9
//! item 3: a 1 MB CI file aliasing a 1 MiB string 10,000 times aborted the server at ~3 GB).
//!
//! Its own test binary, so that the process's peak memory (`VmHWM`) measures these loads
//! and nothing else. Each bomb would need about 10 GB; the bound allowed here is generous
//! (a few copies of the file and the 32 MiB expansion budget) and still far below that.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use chatops_ci::{load_str, CiError, Source};

/// Files of a repository held in memory.
struct Files(HashMap<String, String>);

impl Source for Files {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        Ok(self.0.get(path).cloned())
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.0.keys().cloned().collect())
    }
}

const MIB: usize = 1024 * 1024;
/// Most the peak memory may grow while one bomb is refused. Tests in this binary run in
/// parallel, so this covers all of them at once; each bomb alone would need ~10 GB.
const MAX_GROWTH: usize = 400 * MIB;

/// The process's peak resident memory so far, in bytes (Linux `VmHWM`).
fn peak_rss() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Loads `text` as `.gitlab-ci.yml` (with `others` beside it), expecting a refusal that names
/// the file, quickly and without the process's peak memory growing past [`MAX_GROWTH`].
fn refused(text: &str, others: &[(&str, &str)]) -> CiError {
    let mut files: HashMap<String, String> = others
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    files.insert(".gitlab-ci.yml".into(), text.to_string());
    let source = Files(files);
    let before = peak_rss();
    let start = Instant::now();
    let result = load_str(&source, ".gitlab-ci.yml", text);
    let elapsed = start.elapsed();
    let after = peak_rss();
    let Err(e) = result else {
        panic!("a file expanding to gigabytes was accepted");
    };
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}: {e}");
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            after.saturating_sub(before) < MAX_GROWTH,
            "peak memory grew by {} MiB refusing it: {e}",
            (after - before) / MIB
        );
    }
    e
}

fn big_string() -> String {
    "x".repeat(MIB)
}

#[test]
fn one_mib_string_aliased_ten_thousand_times_is_refused() {
    // The file from the issue: a 1 MiB anchored string, then 10^4 aliases of it.
    let mut text = format!("variables:\n  BIG: &big \"{}\"\n", big_string());
    text.push_str("job:\n  script: echo hi\n  tags:\n");
    for _ in 0..10_000 {
        text.push_str("    - *big\n");
    }
    assert!(text.len() < 2 * MIB, "the bomb itself is small");
    let e = refused(&text, &[]);
    let msg = e.to_string();
    assert!(msg.starts_with(".gitlab-ci.yml:"), "{msg}");
    assert!(msg.contains("32 MiB") && msg.contains("alias"), "{msg}");
}

#[test]
fn nested_alias_bombs_are_refused() {
    // 1 KiB, then lists of 64 aliases of the level below: the fourth level is 16 GiB.
    let mut text = format!("a0: &a0 \"{}\"\n", "y".repeat(1024));
    for i in 1..5 {
        let list = vec![format!("*a{}", i - 1); 64].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    text.push_str("job: {script: x}\n");
    let msg = refused(&text, &[]).to_string();
    assert!(msg.starts_with(".gitlab-ci.yml"), "{msg}");
    // Mapping keys and merge keys count as well.
    // (An explicit `?` key: implicit keys are limited to 1024 characters.)
    let mut text = format!(".k: &k\n  ? \"{}\"\n  : 1\n", "z".repeat(64 * 1024));
    for i in 0..1_000 {
        text.push_str(&format!(".m{i}: {{<<: *k}}\n"));
    }
    text.push_str("job: {script: x}\n");
    let msg = refused(&text, &[]).to_string();
    assert!(msg.contains("MiB"), "{msg}");
}

/// A 1 MiB value under `head`, then 10,000 jobs each `job` (which copies it): refused with a
/// message naming the file and `what` copies it.
fn copied_ten_thousand_times(head: &str, job: &str, what: &str) {
    let mut text = format!("{head}[\"{}\"]\n", big_string());
    for i in 0..10_000 {
        text.push_str(&format!("j{i}: {job}\n"));
    }
    let msg = refused(&text, &[]).to_string();
    assert!(msg.starts_with(".gitlab-ci.yml"), "{msg}");
    assert!(msg.contains(what) && msg.contains("MiB"), "{msg}");
}

#[test]
fn extends_of_a_large_job_ten_thousand_times_is_refused() {
    copied_ten_thousand_times(".big:\n  script: ", "{extends: .big}", "extends");
}

#[test]
fn references_to_a_large_script_ten_thousand_times_are_refused() {
    copied_ten_thousand_times(
        ".big:\n  script: ",
        "{script: !reference [.big, script]}",
        "!reference",
    );
}

#[test]
fn a_large_default_inherited_by_ten_thousand_jobs_is_refused() {
    copied_ten_thousand_times("default:\n  before_script: ", "{script: x}", "default");
}

#[test]
fn a_large_input_interpolated_ten_thousand_times_is_refused() {
    let main = format!(
        "include:\n  - local: t.yml\n    inputs:\n      big: \"{}\"\n",
        big_string()
    );
    let mut template = String::from("spec:\n  inputs:\n    big: {}\n---\n");
    for i in 0..10_000 {
        template.push_str(&format!("j{i}: {{script: \"echo $[[ inputs.big ]]\"}}\n"));
    }
    let msg = refused(&main, &[("t.yml", &template)]).to_string();
    assert!(msg.starts_with("t.yml"), "{msg}");
    assert!(msg.contains("inputs") && msg.contains("MiB"), "{msg}");
}

#[test]
fn real_sized_files_with_aliases_still_load() {
    // 200 jobs sharing a 4 KiB script through an alias and `extends`: about 1.6 MiB expanded.
    let mut text = format!(
        ".common: &common\n  script: [\"{}\"]\n  tags: [a, b]\n",
        "echo x; ".repeat(512)
    );
    for i in 0..200 {
        text.push_str(&format!(
            "j{i}:\n  <<: *common\n  variables: {{N: \"{i}\"}}\n"
        ));
        text.push_str(&format!("k{i}:\n  extends: .common\n"));
    }
    let files = Files(HashMap::new());
    let loaded = load_str(&files, ".gitlab-ci.yml", &text);
    assert!(loaded.is_ok(), "{:?}", loaded.err());
    assert_eq!(loaded.map(|c| c.jobs().len()).unwrap_or(0), 400);
}

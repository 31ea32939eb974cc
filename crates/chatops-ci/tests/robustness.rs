//! No input makes the reader panic or run long: generated expressions and YAML documents
//! (a deterministic-seed fuzz loop, so failures reproduce), alias bombs, deep nesting.

use std::io;
use std::time::{Duration, Instant};

use chatops_ci::{load_str, Decision, Lookup, Source, Variables};

struct Empty;

impl Source for Empty {
    fn read(&self, _path: &str) -> io::Result<Option<String>> {
        Ok(None)
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// xorshift64*: small, deterministic, good enough to spread inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or("")
    }
}

const EXPR_PIECES: &[&str] = &[
    "$A",
    "$B",
    "$UNDEF",
    "$CI_PIPELINE_SOURCE",
    "\"chat\"",
    "'x'",
    "\"\"",
    "null",
    "true",
    "false",
    "==",
    "!=",
    "=~",
    "!~",
    "&&",
    "||",
    "(",
    ")",
    "/ab/",
    "/a\\/b/i",
    "/[/",
    "/(a/",
    "$[[ inputs.x ]]",
    " ",
    "  ",
    "\"unterminated",
    "'",
    "/",
    "!",
    "=",
    "&",
    "|",
    "${A}",
    "/.*/m",
    "/ab/ismU",
    "\n",
    "é",
    "\\",
];

fn job_with_rule(expr: &str) -> String {
    // Single-quoted YAML scalar: double any quote so the YAML stays valid.
    format!(
        "job:\n  script: x\n  rules:\n    - if: '{}'\n",
        expr.replace('\'', "''").replace('\n', " ")
    )
}

#[test]
fn generated_expressions_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let vars: Variables = [("A", "ab"), ("B", "/^a/"), ("CI_PIPELINE_SOURCE", "chat")]
        .into_iter()
        .collect();
    let start = Instant::now();
    for _ in 0..3000 {
        let n = 1 + rng.below(12);
        let expr: String = (0..n)
            .map(|_| rng.pick(EXPR_PIECES))
            .collect::<Vec<_>>()
            .join(" ");
        let text = job_with_rule(&expr);
        let cfg = match load_str(&Empty, ".gitlab-ci.yml", &text) {
            Ok(c) => c,
            Err(e) => {
                // Only YAML-level trouble may refuse the file; the message names it.
                assert!(e.to_string().starts_with(".gitlab-ci.yml"), "{e}");
                continue;
            }
        };
        if let Lookup::Found(job) = cfg.lookup("job") {
            if let Decision::Excluded { reason } = cfg.evaluate(job, &vars) {
                assert!(!reason.is_empty());
            }
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn long_expressions_are_bounded() {
    let long = vec!["$A == \"x\""; 200].join(" || ");
    let cfg = load_str(&Empty, ".gitlab-ci.yml", &job_with_rule(&long));
    let cfg = cfg.unwrap_or_else(|e| panic!("{e}"));
    let Lookup::Found(job) = cfg.lookup("job") else {
        panic!("job missing")
    };
    match cfg.evaluate(job, &Variables::new()) {
        Decision::Excluded { reason } => assert!(reason.contains("Too many tokens"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let deep = format!("{}$A{}", "(".repeat(500), ")".repeat(500));
    let cfg = load_str(&Empty, ".gitlab-ci.yml", &job_with_rule(&deep));
    assert!(cfg.is_ok());
}

const YAML_PIECES: &[&str] = &[
    "job:",
    "  script: x",
    "  script: [a, [b]]",
    "  extends: .t",
    "  extends: [.t, .u]",
    ".t: &t",
    "  variables: {A: $B}",
    "  <<: *t",
    "  <<: [*t]",
    "*t",
    "&a [1, 2]",
    "  rules:",
    "    - if: $A",
    "    - when: never",
    "  only: [chat]",
    "  except: {refs: [x]}",
    "include: x.yml",
    "include: [{local: a.yml}]",
    "variables:",
    "  A: 1",
    "default:",
    "  before_script: y",
    "workflow: {rules: [{when: always}]}",
    "---",
    "spec:",
    "  inputs:",
    "    a: {default: 1}",
    "$[[ inputs.a ]]: {script: x}",
    "  script: !reference [.t, script]",
    "  timeout: 1h",
    "  timeout: nonsense",
    "  when: delayed",
    "  start_in: 5",
    "- a",
    "{",
    "}",
    "[",
    "]",
    ":",
    "  ",
    "\t",
    "'",
    "\"",
    "!!binary aGk=",
    "!custom x",
    "? complex",
    "null:",
    "~",
    "<<: 5",
    "  inherit: {default: false, variables: [A]}",
    "  trigger: x",
    "  run: []",
];

#[test]
fn generated_documents_never_panic() {
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let start = Instant::now();
    for _ in 0..3000 {
        let n = 1 + rng.below(14);
        let text: String = (0..n)
            .map(|_| rng.pick(YAML_PIECES))
            .collect::<Vec<_>>()
            .join("\n");
        let result = load_str(&Empty, ".gitlab-ci.yml", &text);
        match result {
            Ok(cfg) => {
                for job in cfg.jobs() {
                    let _ = cfg.evaluate(job, &Variables::new());
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len).map(|_| (rng.next() & 0x7f) as u8).collect();
        let text = String::from_utf8_lossy(&bytes);
        let _ = load_str(&Empty, ".gitlab-ci.yml", &text);
    }
}

#[test]
fn billion_laughs_is_refused_fast() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let mut prev = "a".to_string();
    for i in 0..9 {
        let name = format!("b{i}");
        text.push_str(&format!(
            "{name}: &{name} [{}]\n",
            vec![format!("*{prev}"); 9].join(",")
        ));
        prev = name;
    }
    text.push_str("job: {script: x}\n");
    let start = Instant::now();
    let result = load_str(&Empty, ".gitlab-ci.yml", &text);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    let e = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(e.starts_with(".gitlab-ci.yml"), "{e}");
}

#[test]
fn merge_key_bombs_are_refused_fast() {
    // Maps merged into maps: each level doubles the keys reached through aliases.
    let mut text = String::from(".l0: &l0 {k0: 1, k1: 2, k2: 3, k3: 4}\n");
    for i in 1..40 {
        text.push_str(&format!(
            ".l{i}: &l{i} {{a: *l{p}, b: *l{p}, <<: *l{p}}}\n",
            p = i - 1
        ));
    }
    text.push_str("job: {script: x}\n");
    let start = Instant::now();
    let _ = load_str(&Empty, ".gitlab-ci.yml", &text);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn reference_bombs_are_refused_fast() {
    let mut text = String::from(".r0: {s: [a, a, a, a, a, a, a, a]}\n");
    for i in 1..10 {
        let refs = vec![format!("!reference [.r{}, s]", i - 1); 8].join(", ");
        text.push_str(&format!(".r{i}: {{s: [{refs}]}}\n"));
    }
    text.push_str("job: {script: !reference [.r9, s]}\n");
    let start = Instant::now();
    let result = load_str(&Empty, ".gitlab-ci.yml", &text);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(result.is_err());
}

#[test]
fn deep_nesting_is_refused() {
    let text = format!(
        "job:\n  script: {}x{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let start = Instant::now();
    assert!(load_str(&Empty, ".gitlab-ci.yml", &text).is_err());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn huge_files_are_refused() {
    let text = format!("job: {{script: x}}\n# {}\n", "x".repeat(5 * 1024 * 1024));
    let e = load_str(&Empty, ".gitlab-ci.yml", &text).err();
    assert!(e
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("bytes"));
}

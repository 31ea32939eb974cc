//! Resolution on the merged raw tree, in GitLab's order: `extends:` (GitLab's
//! `Config::Extendable`), then `!reference` tags (`Config::Yaml::Tags::Resolver`).

use std::collections::HashMap;

use crate::load::Loaded;
use crate::yaml::{find_line, Budget, Raw, RawMap};
use crate::CiError;

/// Most ancestors along one `extends` chain (GitLab's `MAX_NESTING_LEVELS`).
const MAX_EXTENDS_NESTING: usize = 10;
/// Most nested `!reference` resolutions.
const MAX_REFERENCE_NESTING: usize = 10;

/// Applies `extends` then `!reference` to `loaded.root`.
pub(crate) fn resolve(loaded: &mut Loaded) -> Result<(), CiError> {
    extends(loaded)?;
    references(loaded)?;
    Ok(())
}

fn locate(loaded: &Loaded, key: &str, sub: Option<&str>) -> (String, Option<usize>) {
    let idx = loaded.origins.get(key).copied().unwrap_or(0);
    match loaded.files.get(idx) {
        Some(f) => {
            let line = match sub {
                Some(s) => find_line(&f.text, &[key, s]).or_else(|| find_line(&f.text, &[key])),
                None => find_line(&f.text, &[key]),
            };
            (f.path.clone(), line)
        }
        None => (String::new(), None),
    }
}

fn extends_keys(value: &Raw) -> Option<Vec<String>> {
    let m = value.as_map()?;
    match m.get("extends")? {
        Raw::Seq(items) => Some(items.iter().filter_map(Raw::scalar_string).collect()),
        other => other.scalar_string().map(|s| vec![s]),
    }
}

enum ExtendsError {
    Fatal(String),
    /// The chain reaches a key that is not defined: only the jobs on this chain are affected.
    Unknown(String),
}

fn extends(loaded: &mut Loaded) -> Result<(), CiError> {
    let keys: Vec<String> = loaded.root.keys().cloned().collect();
    let mut done: HashMap<String, (Raw, usize)> = HashMap::new();
    let unsupported = !loaded.unsupported.is_empty();
    for key in &keys {
        let mut ancestors = Vec::new();
        let found = extend_one(
            &loaded.root,
            key,
            &mut ancestors,
            &mut done,
            unsupported,
            &loaded.budget,
        );
        match found {
            Ok(_) => {}
            Err(ExtendsError::Fatal(msg)) => {
                let (file, line) = locate(loaded, key, Some("extends"));
                return Err(CiError::Invalid {
                    file,
                    line,
                    message: msg,
                });
            }
            Err(ExtendsError::Unknown(msg)) => {
                loaded.broken.insert(key.clone(), msg);
            }
        }
    }
    for (key, (value, _)) in done {
        loaded.root.insert(key, value);
    }
    Ok(())
}

/// The value of `key` with its `extends` applied (and its height in the chain). Called for a
/// parent (`ancestors` not empty), the copy it returns is merged into a child: that copy is
/// taken from `budget` first, so 10,000 jobs extending one large template are refused
/// instead of copying it 10,000 times.
fn extend_one(
    root: &RawMap,
    key: &str,
    ancestors: &mut Vec<String>,
    done: &mut HashMap<String, (Raw, usize)>,
    unsupported: bool,
    budget: &Budget,
) -> Result<(Raw, usize), ExtendsError> {
    let take = |v: &Raw| -> Result<(), ExtendsError> {
        if ancestors.is_empty() {
            return Ok(());
        }
        budget.take_copy(v).map_err(|e| {
            ExtendsError::Fatal(format!(
                "{key}: {e} once `extends` copies it into every job extending it; \
                 make the shared part smaller or extend it less often"
            ))
        })
    };
    // A memoised entry still counts its whole chain: GitLab re-walks every chain, so a deep
    // chain fails from every entry whose ancestors push it past the limit.
    if let Some((v, height)) = done.get(key) {
        if *height > 0 && ancestors.len() + height - 1 > MAX_EXTENDS_NESTING {
            return Err(ExtendsError::Fatal(format!(
                "{key}: nesting too deep in `extends`"
            )));
        }
        take(v)?;
        return Ok((v.clone(), *height));
    }
    let value = match root.get(key) {
        Some(v) => {
            take(v)?;
            v.clone()
        }
        None => Raw::Null,
    };
    let Some(parents) = extends_keys(&value) else {
        return Ok((value, 0));
    };
    let unknown: Vec<&str> = parents
        .iter()
        .filter(|p| !root.contains_key(p))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        // GitLab refuses the whole file; here only the jobs on this chain are unusable.
        let msg = format!("{key}: unknown keys in `extends` ({})", unknown.join(", "));
        return Err(ExtendsError::Unknown(if unsupported {
            format!("{msg}; they may come from an include chatops cannot read")
        } else {
            msg
        }));
    }
    let invalid: Vec<&str> = parents
        .iter()
        .filter(|p| !matches!(root.get(p), Some(Raw::Map(_))))
        .map(String::as_str)
        .collect();
    if !invalid.is_empty() {
        return Err(ExtendsError::Fatal(format!(
            "{key}: invalid base hashes in `extends` ({})",
            invalid.join(", ")
        )));
    }
    if ancestors.len() > MAX_EXTENDS_NESTING {
        return Err(ExtendsError::Fatal(format!(
            "{key}: nesting too deep in `extends`"
        )));
    }
    if ancestors.iter().any(|a| a == key) {
        return Err(ExtendsError::Fatal(format!(
            "{key}: circular dependency detected in `extends`"
        )));
    }
    ancestors.push(key.to_string());
    let mut merged = RawMap::new();
    let mut height = 0;
    for parent in &parents {
        let (base, h) = extend_one(root, parent, ancestors, done, unsupported, budget)?;
        height = height.max(h);
        if let Raw::Map(base) = base {
            merged.deep_merge(base);
        }
    }
    ancestors.pop();
    if let Raw::Map(own) = value {
        merged.deep_merge(own);
    }
    let result = Raw::Map(merged);
    done.insert(key.to_string(), (result.clone(), height + 1));
    Ok((result, height + 1))
}

/// Job keys whose value changes what a chat run does; a `!reference` that cannot be found
/// anywhere else (`tags`, `image`, `cache`...) is dropped with a warning instead of making
/// the job unusable.
const KEYS_THAT_MATTER: &[&str] = &[
    "script",
    "before_script",
    "after_script",
    "variables",
    "rules",
    "only",
    "except",
    "when",
    "start_in",
    "timeout",
    "allow_failure",
    "inherit",
    "trigger",
    "run",
    "resource_group",
    "stage",
];

fn references(loaded: &mut Loaded) -> Result<(), CiError> {
    let lenient = !loaded.unsupported.is_empty();
    let keys: Vec<String> = loaded.root.keys().cloned().collect();
    let snapshot = loaded.root.clone();
    let explain = |msg: String| {
        if lenient {
            format!("{msg}; it may come from an include chatops cannot read")
        } else {
            msg
        }
    };
    for key in keys {
        let Some(value) = loaded.root.get(&key).cloned() else {
            continue;
        };
        if !contains_tag(&value, 0) {
            continue;
        }
        let is_job = !crate::config::RESERVED.contains(&key.as_str());
        // Jobs (hidden ones included) resolve key by key, so that an unresolvable reference
        // under a key chatops ignores costs only that key.
        let entries: Vec<(String, Raw)> = match (&value, is_job) {
            (Raw::Map(m), true) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => vec![(String::new(), value.clone())],
        };
        let whole = entries.len() == 1 && entries.first().is_some_and(|(k, _)| k.is_empty());
        let mut out = RawMap::new();
        let mut broken = None;
        for (entry, v) in entries {
            if !contains_tag(&v, 0) {
                out.insert(entry, v);
                continue;
            }
            match resolve_value(&snapshot, v, 0, &loaded.budget) {
                Ok(v) => out.insert(entry, v),
                Err(RefError::Missing(msg))
                    if !whole && !KEYS_THAT_MATTER.contains(&entry.as_str()) =>
                {
                    loaded.warnings.push(format!(
                        "{key}:{entry}: {}; ignored, chatops does not use `{entry}`",
                        explain(msg)
                    ));
                }
                // GitLab refuses the whole file; only this key is unusable, so only it fails.
                Err(RefError::Missing(msg)) => {
                    broken.get_or_insert(explain(msg));
                }
                Err(RefError::Fatal(msg)) => {
                    let (file, line) = locate(loaded, &key, None);
                    return Err(CiError::Invalid {
                        file,
                        line,
                        message: msg,
                    });
                }
            }
        }
        if let Some(msg) = broken {
            loaded.broken.insert(key.clone(), msg);
            continue;
        }
        if whole {
            if let Some((_, v)) = out.into_iter().next() {
                loaded.root.insert(key, v);
            }
        } else {
            loaded.root.insert(key, Raw::Map(out));
        }
    }
    Ok(())
}

fn contains_tag(raw: &Raw, depth: usize) -> bool {
    if depth > crate::yaml::MAX_DEPTH {
        return false;
    }
    match raw {
        Raw::Tagged(..) => true,
        Raw::Seq(items) => items.iter().any(|i| contains_tag(i, depth + 1)),
        Raw::Map(m) => m.iter().any(|(_, v)| contains_tag(v, depth + 1)),
        _ => false,
    }
}

enum RefError {
    Missing(String),
    Fatal(String),
}

fn show_path(path: &[String]) -> String {
    let quoted: Vec<String> = path.iter().map(|p| format!("{p:?}")).collect();
    format!("!reference [{}]", quoted.join(", "))
}

/// `raw` with its `!reference` tags replaced by copies of what they name. Every copy is taken
/// from `budget` before it is made: that bounds both many references to one large value and
/// ten levels of lists of references (which would otherwise grow exponentially).
fn resolve_value(
    root: &RawMap,
    raw: Raw,
    nesting: usize,
    budget: &Budget,
) -> Result<Raw, RefError> {
    Ok(match raw {
        Raw::Tagged(tag, inner) if tag == "reference" => {
            let path: Vec<String> = match *inner {
                Raw::Seq(items) => items.iter().filter_map(Raw::scalar_string).collect(),
                _ => Vec::new(),
            };
            if path.is_empty() {
                return Err(RefError::Fatal(
                    "!reference needs an array of keys, like !reference [.job, script]".into(),
                ));
            }
            if nesting >= MAX_REFERENCE_NESTING {
                return Err(RefError::Fatal(format!(
                    "{}: too many nested references (at most {MAX_REFERENCE_NESTING})",
                    show_path(&path)
                )));
            }
            let mut cur: Option<&Raw> = None;
            for (i, part) in path.iter().enumerate() {
                cur = if i == 0 {
                    root.get(part)
                } else {
                    cur.and_then(Raw::as_map).and_then(|m| m.get(part))
                };
            }
            match cur {
                Some(found) => {
                    budget.take_copy(found).map_err(|e| {
                        RefError::Fatal(format!(
                            "{}: {e} once references are resolved; reference large values \
                             less often",
                            show_path(&path)
                        ))
                    })?;
                    resolve_value(root, found.clone(), nesting + 1, budget)?
                }
                None => {
                    return Err(RefError::Missing(format!(
                        "{} could not be found",
                        show_path(&path)
                    )))
                }
            }
        }
        // Other tags: GitLab knows only !reference; keep the value.
        Raw::Tagged(_, inner) => resolve_value(root, *inner, nesting, budget)?,
        Raw::Seq(items) => Raw::Seq(
            items
                .into_iter()
                .map(|i| resolve_value(root, i, nesting, budget))
                .collect::<Result<_, _>>()?,
        ),
        Raw::Map(m) => {
            let mut out = RawMap::new();
            for (k, v) in m {
                out.insert(k, resolve_value(root, v, nesting, budget)?);
            }
            Raw::Map(out)
        }
        other => other,
    })
}

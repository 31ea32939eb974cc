//! The two path-pattern dialects GitLab uses:
//!
//! - [`include_glob_matches`]: `include: local: 'ci/*.yml'`, which GitLab turns into an RE2
//!   regex (`*` = anything but `/`, `**` = anything) and runs over the repository's file list.
//! - [`fnmatch`]: `rules:exists`, Ruby's `File.fnmatch?` with `FNM_PATHNAME | FNM_DOTMATCH |
//!   FNM_EXTGLOB` (`*`, `?`, `[...]`, `{a,b}`, `**/` for any number of folders).

/// Most alternatives a `{a,b}` pattern may expand to.
const MAX_ALTERNATIVES: usize = 256;

/// Whether `path` (repository-relative, no leading `/`) matches an `include: local` wildcard.
pub(crate) fn include_glob_matches(pattern: &str, path: &str) -> bool {
    let pattern = pattern.trim_start_matches('/');
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' {
            if chars.peek() == Some(&'*') {
                chars.next();
                re.push_str(".*?");
            } else {
                re.push_str("[^/]*?");
            }
        } else {
            re.push_str(&regex::escape(&c.to_string()));
        }
    }
    re.push('$');
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(path))
}

/// Ruby's `File.fnmatch?(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB)`.
pub(crate) fn fnmatch(pattern: &str, path: &str) -> bool {
    let path_segs: Vec<&str> = path.split('/').collect();
    expand_braces(pattern).iter().any(|alt| {
        let segs: Vec<&str> = alt.split('/').collect();
        match_segments(&segs, &path_segs)
    })
}

/// `{a,b}c` -> `ac`, `bc` (nested braces supported, bounded).
fn expand_braces(pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut work = vec![pattern.to_string()];
    while let Some(p) = work.pop() {
        if out.len() + work.len() >= MAX_ALTERNATIVES {
            out.push(p);
            continue;
        }
        match find_brace(&p) {
            Some((open, close)) => {
                let inner = p.get(open + 1..close).unwrap_or("");
                let (pre, post) = (
                    p.get(..open).unwrap_or(""),
                    p.get(close + 1..).unwrap_or(""),
                );
                for alt in split_top_level(inner) {
                    work.push(format!("{pre}{alt}{post}"));
                }
            }
            None => out.push(p),
        }
    }
    out
}

/// The first top-level `{...}` with a comma-free or comma-holding body, honouring `\`.
fn find_brace(p: &str) -> Option<(usize, usize)> {
    let bytes = p.as_bytes();
    let mut i = 0;
    let mut open = None;
    let mut depth = 0;
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'\\') => i += 1,
            Some(b'{') => {
                if depth == 0 {
                    open = Some(i);
                }
                depth += 1;
            }
            Some(b'}') if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    return open.map(|o| (o, i));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

fn match_segments(pat: &[&str], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        // `**/` matches zero or more folders (not as the last segment, where it is `*`).
        Some((&"**", rest)) if !rest.is_empty() => {
            (0..=path.len()).any(|skip| match_segments(rest, path.get(skip..).unwrap_or(&[])))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, path_rest)) => match_segment(first, seg) && match_segments(rest, path_rest),
            None => false,
        },
    }
}

/// One path segment against one pattern segment: `*`, `?`, `[...]`, `\x`.
fn match_segment(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where to resume after the last `*`: (pattern index after it, text index it covers to).
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match_class(&p, pi, t.get(ti).copied().unwrap_or('\0')),
            Some('\\') => match (p.get(pi + 1), t.get(ti)) {
                (Some(a), Some(b)) if a == b => Some(pi + 2),
                _ => None,
            },
            Some(c) => (Some(c) == t.get(ti)).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).unwrap_or(&[]).iter().all(|c| *c == '*')
}

/// A `[...]` class at `p[start]`; the pattern index after it when `c` is in it.
fn match_class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|x| *x != ']') {
            let hi = *p.get(i + 2)?;
            if lo <= c && c <= hi {
                found = true;
            }
            i += 3;
        } else {
            if lo == c {
                found = true;
            }
            i += 1;
        }
    }
    (found != negate).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_globs_like_gitlab() {
        assert!(include_glob_matches("ci/*.yml", "ci/a.yml"));
        assert!(!include_glob_matches("ci/*.yml", "ci/sub/a.yml"));
        assert!(include_glob_matches("/ci/*.yml", "ci/a.yml"));
        assert!(include_glob_matches("ci/**.yml", "ci/sub/a.yml"));
        assert!(include_glob_matches("ci/**/*.yml", "ci/sub/deeper/a.yml"));
        assert!(!include_glob_matches("ci/**/*.yml", "ci/a.yml"));
        assert!(!include_glob_matches("ci/*.yml", "ci/a.yaml"));
        // `.` is literal.
        assert!(!include_glob_matches("ci/*.yml", "ci/axyml"));
    }

    #[test]
    fn fnmatch_like_ruby() {
        assert!(fnmatch("Dockerfile", "Dockerfile"));
        assert!(fnmatch("*.md", "README.md"));
        assert!(!fnmatch("*.md", "docs/README.md"));
        assert!(fnmatch("**/*.md", "docs/README.md"));
        assert!(fnmatch("**/*.md", "README.md"));
        assert!(fnmatch("docs/**/*.md", "docs/a/b/c.md"));
        assert!(fnmatch("*.{yml,yaml}", "a.yaml"));
        assert!(fnmatch("file?.txt", "file1.txt"));
        assert!(!fnmatch("file?.txt", "file10.txt"));
        assert!(fnmatch("[a-c]*.rs", "build.rs"));
        assert!(!fnmatch("[!a-c]*.rs", "build.rs"));
        // FNM_DOTMATCH: wildcards match leading dots.
        assert!(fnmatch("*", ".gitignore"));
        assert!(fnmatch("a*b*c*d", "axxbyyczzd"));
        assert!(!fnmatch("a*b*c*d", "axxbyyczz"));
    }
}

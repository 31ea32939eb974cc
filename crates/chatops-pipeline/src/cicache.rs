//! A cache of parsed CI files, so that a command does not re-read and re-parse the project's
//! `.gitlab-ci.yml` (and its includes) when nothing changed. Re-parsing was a third of the ack
//! path's time in the benchmark's profile.
//!
//! Validity is exact, never a time-to-live:
//! - a plain folder's entry remembers the files the loader read (and the ones it looked for
//!   and did not find) with their size, mtime and inode; any change to any of them, or an
//!   include glob (which depends on the whole tree), means a fresh load;
//! - a git entry is keyed by the commit it was read from, and the commit a branch points to is
//!   itself cached against the stamps of `HEAD`, `packed-refs` and the branch's ref file (git
//!   rewrites one of them, by rename, whenever the branch moves).
//!
//! Checking an entry costs a few `stat`s; a miss loads as before, off the actor thread.

use crate::error::PipelineError;
use crate::git::{self, GitSource, Revision};
use crate::settings::ProjectSettings;
use chatops_ci::{CiConfig, DirSource, Source, Variables};
use chatops_core::ProjectName;
use std::collections::HashMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// What identifies one version of a file: its size, mtime and inode (`None`: absent).
type Stamp = Option<(u64, SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?, m.ino()))
}

fn all_unchanged(stamps: &[(PathBuf, Stamp)]) -> bool {
    stamps.iter().all(|(p, s)| stamp(p) == *s)
}

struct Entry {
    revision: Revision,
    /// Git: the ref files whose stamps pin `revision`. Folder: empty.
    ref_stamps: Vec<(PathBuf, Stamp)>,
    ci: Arc<CiConfig>,
    /// Folder: the files read (or looked for); `None` when a glob made the entry uncacheable.
    file_stamps: Option<Vec<(PathBuf, Stamp)>>,
}

/// Parsed CI files per project. Shared by every command; the lock is held only to look up or
/// replace an entry (never during I/O or parsing).
#[derive(Default)]
pub struct CiCache {
    entries: Mutex<HashMap<ProjectName, Arc<Entry>>>,
}

impl CiCache {
    /// The cached revision and CI file if still valid. Cheap (a few `stat`s): fine on the actor
    /// thread.
    pub fn get(&self, project: &ProjectSettings) -> Option<(Revision, Arc<CiConfig>)> {
        let entry = self.entries.lock().ok()?.get(&project.name).cloned()?;
        if !all_unchanged(&entry.ref_stamps) {
            return None;
        }
        match &entry.revision {
            Revision::Git { .. } => {}
            Revision::Folder { .. } => {
                if !all_unchanged(entry.file_stamps.as_ref()?) {
                    return None;
                }
            }
        }
        Some((entry.revision.clone(), entry.ci.clone()))
    }

    /// Loads the project's CI file (blocking: git and file I/O) and caches it.
    pub fn load(
        &self,
        project: &ProjectSettings,
    ) -> Result<(Revision, Arc<CiConfig>), PipelineError> {
        let previous = self
            .entries
            .lock()
            .ok()
            .and_then(|m| m.get(&project.name).cloned());
        let ref_stamps = git_ref_stamps(project);
        let revision = match (&previous, &ref_stamps) {
            (Some(prev), Some(stamps)) if prev.ref_stamps == *stamps && !stamps.is_empty() => {
                prev.revision.clone()
            }
            _ => git::resolve(&project.repository, project.branch.as_deref())?,
        };
        let vars = include_variables(project, &revision);
        let (ci, file_stamps) = match &revision {
            Revision::Git { repo, sha, .. } => {
                let same_commit = previous.as_ref().and_then(|p| match &p.revision {
                    Revision::Git { sha: s, .. } if s == sha => Some(p.ci.clone()),
                    _ => None,
                });
                let ci = match same_commit {
                    Some(ci) => ci,
                    None => Arc::new(chatops_ci::load_with(
                        &GitSource::new(repo, sha.clone()),
                        &project.ci_file,
                        &vars,
                    )?),
                };
                (ci, None)
            }
            Revision::Folder { root } => {
                let source = Recording::new(root);
                let ci = chatops_ci::load_with(&source, &project.ci_file, &vars)?;
                (Arc::new(ci), source.stamps())
            }
        };
        let entry = Arc::new(Entry {
            revision: revision.clone(),
            ref_stamps: ref_stamps.unwrap_or_default(),
            ci: ci.clone(),
            file_stamps,
        });
        if let Ok(mut m) = self.entries.lock() {
            m.insert(project.name.clone(), entry);
        }
        Ok((revision, ci))
    }
}

/// The variables includes and `include: rules` see: predefined and the project's.
pub fn include_variables(project: &ProjectSettings, revision: &Revision) -> Variables {
    let mut vars = crate::pipeline::predefined_variables(project, revision);
    vars.extend(project.variables.iter().cloned());
    vars.extend(project.secrets.iter().cloned());
    vars.into_iter().collect()
}

/// For a git repository with a `.git` folder (or a bare one): the stamps of the files that
/// decide which commit the branch is. `Some(vec![])` for plain folders (nothing to pin);
/// `None` when the layout is unusual (a `.git` file of a linked work tree): always resolve.
fn git_ref_stamps(project: &ProjectSettings) -> Option<Vec<(PathBuf, Stamp)>> {
    let repo = &project.repository;
    if !git::is_git_repository(repo) {
        return Some(Vec::new());
    }
    let dot_git = repo.join(".git");
    let git_dir = if dot_git.is_dir() {
        dot_git
    } else if dot_git.exists() {
        return None;
    } else {
        repo.clone()
    };
    let head = git_dir.join("HEAD");
    let branch = match &project.branch {
        Some(b) => b.clone(),
        None => {
            let text = std::fs::read_to_string(&head).ok()?;
            text.trim().strip_prefix("ref: refs/heads/")?.to_owned()
        }
    };
    let mut stamps = Vec::new();
    for p in [
        head,
        git_dir.join("packed-refs"),
        git_dir.join("refs").join("heads").join(&branch),
    ] {
        let s = stamp(&p);
        stamps.push((p, s));
    }
    Some(stamps)
}

/// A folder source that remembers what it read, with each file's stamp taken before reading
/// (a change during the read then shows as a mismatch next time, never as a stale hit).
struct Recording {
    inner: DirSource,
    root: PathBuf,
    seen: Mutex<Vec<(PathBuf, Stamp)>>,
    listed: Mutex<bool>,
}

impl Recording {
    fn new(root: &Path) -> Recording {
        Recording {
            inner: DirSource::new(root),
            root: root.to_owned(),
            seen: Mutex::new(Vec::new()),
            listed: Mutex::new(false),
        }
    }

    fn stamps(&self) -> Option<Vec<(PathBuf, Stamp)>> {
        if self.listed.lock().map(|l| *l).unwrap_or(true) {
            return None;
        }
        self.seen.lock().ok().map(|s| s.clone())
    }
}

impl Source for Recording {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        let full = self.root.join(path.trim_start_matches('/'));
        let before = stamp(&full);
        if let Ok(mut seen) = self.seen.lock() {
            seen.push((full, before));
        }
        self.inner.read(path)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        if let Ok(mut l) = self.listed.lock() {
            *l = true;
        }
        self.inner.list()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(root: &Path) -> ProjectSettings {
        ProjectSettings::for_tests("p", root)
    }

    fn names(ci: &CiConfig) -> Vec<String> {
        ci.jobs().iter().map(|j| j.name.clone()).collect()
    }

    #[test]
    fn folder_entries_follow_every_file_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(
            root.join(".gitlab-ci.yml"),
            "include: [inc.yml]\na: {script: [x]}\n",
        )
        .expect("write");
        std::fs::write(root.join("inc.yml"), "b: {script: [y]}\n").expect("write");
        let p = project(root);
        let cache = CiCache::default();
        assert!(cache.get(&p).is_none(), "empty cache misses");
        let (_, ci) = cache.load(&p).expect("loads");
        assert_eq!(names(&ci), ["a", "b"]);
        let (_, hit) = cache.get(&p).expect("unchanged: hit");
        assert!(Arc::ptr_eq(&ci, &hit));
        // Changing an included file (same size, new content) invalidates the entry.
        std::fs::write(root.join("inc.yml"), "c: {script: [y]}\n").expect("write");
        assert!(cache.get(&p).is_none(), "an included file changed");
        let (_, ci) = cache.load(&p).expect("reloads");
        assert_eq!(names(&ci), ["a", "c"]);
    }

    #[test]
    fn git_entries_follow_the_branch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(root)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .status()
                .expect("git")
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::write(root.join(".gitlab-ci.yml"), "a: {script: [x]}\n").expect("write");
        git(&["add", "."]);
        git(&["commit", "-qm", "one"]);
        let p = project(root);
        let cache = CiCache::default();
        let (rev1, ci) = cache.load(&p).expect("loads");
        assert_eq!(names(&ci), ["a"]);
        assert!(cache.get(&p).is_some(), "same commit: hit");
        // The work tree changing is irrelevant; a new commit is not.
        std::fs::write(root.join(".gitlab-ci.yml"), "b: {script: [x]}\n").expect("write");
        assert!(cache.get(&p).is_some(), "uncommitted changes do not count");
        git(&["commit", "-qam", "two"]);
        assert!(cache.get(&p).is_none(), "the branch moved");
        let (rev2, ci) = cache.load(&p).expect("reloads");
        assert_ne!(rev1, rev2);
        assert_eq!(names(&ci), ["b"]);
    }
}

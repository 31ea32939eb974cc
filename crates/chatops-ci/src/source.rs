//! Where CI files are read from: the [`Source`] trait and [`DirSource`], a plain folder.
//!
//! The git-backed source lives in the pipeline crate; this crate only needs "read this
//! repository-relative path" and "list every path" (for `include` globs and `rules:exists`).

use std::io;
use std::path::{Component, Path, PathBuf};

/// Where CI files are read from: a plain folder, or a git commit.
pub trait Source: Send + Sync {
    /// Reads a repository-relative path (`.gitlab-ci.yml`, `ci/build.yml`). `Ok(None)` if absent.
    fn read(&self, path: &str) -> io::Result<Option<String>>;
    /// Every file path in the repository, repository-relative with `/` separators (for include
    /// globs). Called only when a glob needs it.
    fn list(&self) -> io::Result<Vec<String>>;
}

/// A [`Source`] over a folder on disk. Paths that would leave the folder are refused.
#[derive(Debug, Clone)]
pub struct DirSource {
    root: PathBuf,
}

/// Most files [`DirSource::list`] returns: a bound on the walk of a huge or looping tree.
const MAX_LISTED_FILES: usize = 200_000;

impl DirSource {
    /// A source reading files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirSource { root: root.into() }
    }

    /// The folder this source reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps a repository-relative path to a path under the root, refusing absolute paths and
    /// `..` (a CI file must not read outside its repository).
    fn resolve(&self, path: &str) -> io::Result<PathBuf> {
        let rel = Path::new(path);
        let mut out = self.root.clone();
        for part in rel.components() {
            match part {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        format!("path {path:?} leaves the repository"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

impl Source for DirSource {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        let full = self.resolve(path)?;
        // A symlink inside the repository may still point outside it: compare real paths.
        let real = match full.canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let root = self.root.canonicalize()?;
        if !real.starts_with(&root) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("path {path:?} leads outside the repository"),
            ));
        }
        if !real.is_file() {
            return Ok(None);
        }
        let bytes = std::fs::read(&real)?;
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8"))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.root.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // `.git` is the repository's database, not its content.
                if prefix.is_empty() && name == ".git" {
                    continue;
                }
                let rel = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                // file_type() does not follow symlinks, so a symlinked folder cannot loop.
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push((entry.path(), rel));
                } else {
                    out.push(rel);
                    if out.len() >= MAX_LISTED_FILES {
                        return Ok(out);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_repo(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chatops-ci-source-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("ci/sub")).ok();
        std::fs::write(dir.join(".gitlab-ci.yml"), "a: 1\n").ok();
        std::fs::write(dir.join("ci/b.yml"), "b: 2\n").ok();
        std::fs::write(dir.join("ci/sub/c.yml"), "c: 3\n").ok();
        dir
    }

    #[test]
    fn reads_present_and_absent_files() {
        let dir = temp_repo("read");
        let src = DirSource::new(&dir);
        assert_eq!(
            src.read("ci/b.yml").ok().flatten().as_deref(),
            Some("b: 2\n")
        );
        assert_eq!(
            src.read("./ci/b.yml").ok().flatten().as_deref(),
            Some("b: 2\n")
        );
        assert!(matches!(src.read("ci/none.yml"), Ok(None)));
        // A folder is not a file.
        assert!(matches!(src.read("ci"), Ok(None)));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_escaping_paths() {
        let dir = temp_repo("escape");
        let src = DirSource::new(&dir);
        assert!(src.read("../etc/passwd").is_err());
        assert!(src.read("ci/../../x").is_err());
        assert!(src.read("/etc/passwd").is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn lists_every_file_with_slashes() {
        let dir = temp_repo("list");
        let src = DirSource::new(&dir);
        let files = src.list().unwrap_or_default();
        assert_eq!(files, vec![".gitlab-ci.yml", "ci/b.yml", "ci/sub/c.yml"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

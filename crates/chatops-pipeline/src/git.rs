//! Reading a project's repository: a plain folder, or a git repository at its branch's HEAD.
//! git is driven through its CLI (`git show`, `git ls-tree`, `git clone --shared`): it is on
//! every machine that has repositories, and it reads every repository format git itself can.

use chatops_ci::Source;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where a project's files come from for one pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Revision {
    /// A plain folder: read and run in place.
    Folder { root: PathBuf },
    /// A git repository at `sha` of `branch`.
    Git {
        repo: PathBuf,
        sha: String,
        branch: String,
        default_branch: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("repository {path} does not exist: check `repository:` in the config")]
    Missing { path: PathBuf },
    #[error("git {args} failed in {path}: {message}")]
    Command {
        args: String,
        path: PathBuf,
        message: String,
    },
    #[error("could not run git: {0} (is git installed?)")]
    Spawn(io::Error),
}

/// True when `path` is itself a git repository (a work tree with `.git`, or a bare repository),
/// not merely a folder inside some other repository's work tree.
pub fn is_git_repository(path: &Path) -> bool {
    path.join(".git").exists()
        || (path.join("HEAD").is_file()
            && path.join("objects").is_dir()
            && path.join("refs").is_dir())
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, GitError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(GitError::Spawn)?;
    if !out.status.success() {
        return Err(GitError::Command {
            args: args.join(" "),
            path: repo.to_owned(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

fn git_line(repo: &Path, args: &[&str]) -> Result<String, GitError> {
    Ok(String::from_utf8_lossy(&git(repo, args)?).trim().to_owned())
}

/// Resolves what a pipeline of this project runs now: the folder, or the branch's HEAD commit.
/// Blocking (runs git): call it off the actor thread.
pub fn resolve(repository: &Path, branch: Option<&str>) -> Result<Revision, GitError> {
    if !repository.exists() {
        return Err(GitError::Missing {
            path: repository.to_owned(),
        });
    }
    if !is_git_repository(repository) {
        return Ok(Revision::Folder {
            root: repository.to_owned(),
        });
    }
    let default_branch = git_line(repository, &["symbolic-ref", "--short", "HEAD"])
        .unwrap_or_else(|_| "main".to_owned());
    let branch = branch.map(str::to_owned).unwrap_or(default_branch.clone());
    let sha = git_line(
        repository,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{branch}^{{commit}}"),
        ],
    )
    .map_err(|_| GitError::Command {
        args: format!("rev-parse {branch}"),
        path: repository.to_owned(),
        message: format!("branch `{branch}` not found"),
    })?;
    Ok(Revision::Git {
        repo: repository.to_owned(),
        sha,
        branch,
        default_branch,
    })
}

/// Reads files of a git commit without checking it out.
pub struct GitSource {
    repo: PathBuf,
    sha: String,
}

impl GitSource {
    pub fn new(repo: impl Into<PathBuf>, sha: impl Into<String>) -> GitSource {
        GitSource {
            repo: repo.into(),
            sha: sha.into(),
        }
    }
}

impl Source for GitSource {
    fn read(&self, path: &str) -> io::Result<Option<String>> {
        let path = path.trim_start_matches("./").trim_start_matches('/');
        if path.split('/').any(|part| part == "..") {
            return Ok(None);
        }
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.repo)
            .args(["cat-file", "blob", &format!("{}:{}", self.sha, path)])
            .output()?;
        if !out.status.success() {
            // cat-file fails for missing paths; tell "absent" from "git is broken" by asking git
            // whether the commit itself is readable.
            let commit_ok = Command::new("git")
                .arg("-C")
                .arg(&self.repo)
                .args(["cat-file", "-e", &format!("{}^{{commit}}", self.sha)])
                .status()?
                .success();
            if commit_ok {
                return Ok(None);
            }
            return Err(io::Error::other(format!(
                "git cannot read commit {} in {}: {}",
                self.sha,
                self.repo.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let out = git(
            &self.repo,
            &["ls-tree", "-r", "--name-only", "-z", &self.sha],
        )
        .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect())
    }
}

/// Checks `sha` out into `dest` (a fresh folder) as a detached clone that shares the
/// repository's objects: fast, and the project's own repository is never touched.
pub async fn checkout(repo: &Path, sha: &str, dest: &Path) -> Result<(), GitError> {
    let run = |args: Vec<std::ffi::OsString>, cwd: PathBuf| async move {
        let out = tokio::process::Command::new("git")
            .args(&args)
            .current_dir(&cwd)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .await
            .map_err(GitError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(GitError::Command {
                args: args
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" "),
                path: cwd,
                message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            })
        }
    };
    let parent = dest.parent().unwrap_or(Path::new(".")).to_owned();
    std::fs::create_dir_all(&parent).map_err(GitError::Spawn)?;
    run(
        vec![
            "clone".into(),
            "--quiet".into(),
            "--shared".into(),
            "--no-checkout".into(),
            repo.as_os_str().to_owned(),
            dest.as_os_str().to_owned(),
        ],
        parent,
    )
    .await?;
    run(
        vec![
            "checkout".into(),
            "--quiet".into(),
            "--detach".into(),
            sha.into(),
        ],
        dest.to_owned(),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(dir: &Path, script: &str) {
        let ok = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("sh runs")
            .success();
        assert!(ok, "script failed: {script}");
    }

    #[test]
    fn plain_folder_inside_a_work_tree_is_a_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        sh(dir.path(), "git init -q -b main . && mkdir sub");
        assert!(matches!(
            resolve(&dir.path().join("sub"), None),
            Ok(Revision::Folder { .. })
        ));
    }

    #[tokio::test]
    async fn reads_the_branch_head_not_the_work_tree() {
        let dir = tempfile::tempdir().expect("tempdir");
        sh(
            dir.path(),
            "git init -q -b trunk . && echo committed > f.txt && git add f.txt && git commit -qm one && echo dirty > f.txt",
        );
        let rev = resolve(dir.path(), None).expect("resolves");
        let Revision::Git {
            sha,
            branch,
            default_branch,
            ..
        } = rev
        else {
            panic!("expected git, got {rev:?}");
        };
        assert_eq!(branch, "trunk");
        assert_eq!(default_branch, "trunk");
        let source = GitSource::new(dir.path(), sha.clone());
        assert_eq!(
            source.read("f.txt").expect("reads").as_deref(),
            Some("committed\n")
        );
        assert_eq!(source.read("missing.txt").expect("reads"), None);
        assert_eq!(source.list().expect("lists"), vec!["f.txt".to_string()]);

        let dest = dir.path().join("builds").join("1");
        checkout(dir.path(), &sha, &dest).await.expect("checkout");
        assert_eq!(
            std::fs::read_to_string(dest.join("f.txt")).expect("file"),
            "committed\n"
        );
    }

    #[test]
    fn unknown_branch_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        sh(
            dir.path(),
            "git init -q -b main . && touch a && git add a && git commit -qm one",
        );
        let err = resolve(dir.path(), Some("nope")).expect_err("no such branch");
        assert!(err.to_string().contains("nope"), "{err}");
    }
}

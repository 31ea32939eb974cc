//! One process runs jobs from a data dir at a time: whoever holds `data_dir/chatops.lock`.
//!
//! Starting up recovers what a previous run left: jobs still marked running are marked
//! interrupted and their processes killed. A second process doing that beside a live server
//! killed the live server's jobs (issue #9 item 8). So `serve` (and `run`, `play`, `cancel`
//! when they run jobs themselves) first take an exclusive `flock` on the lock file, before the
//! store is opened, and hold it for their whole life; the holder's pid and command are written
//! in the file so that the next one can say who holds it. A lock held by a `serve` means: hand
//! the command to that server ([`crate::remote`]); held by anything else: wait for it.
//!
//! `flock` locks belong to the open file: the kernel drops them when the process dies, even by
//! `kill -9`, so a crash never leaves a stale lock. The file is opened close-on-exec (Rust's
//! default), so the jobs the holder starts never inherit, and never keep, the lock.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "chatops.lock";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Who holds a data dir's lock, as its file says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// `None` when the holder had not written its pid yet (or the file is unreadable).
    pub pid: Option<u32>,
    /// The holder's command: `serve`, `run`, `play`, `cancel`.
    pub command: String,
}

impl Holder {
    pub fn is_server(&self) -> bool {
        self.command == "serve"
    }

    /// "pid 1234" or "an unknown pid".
    pub fn pid_text(&self) -> String {
        match self.pid {
            Some(pid) => format!("pid {pid}"),
            None => "an unknown pid".into(),
        }
    }
}

/// Why the lock could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another chatops {} ({}) is using the data dir {}: only one process may run jobs from a data dir; {}",
        holder.command,
        holder.pid_text(),
        data_dir.display(),
        if holder.is_server() {
            "stop that server first, or give this one another `server.data_dir`"
        } else {
            "wait for it to end, or give this one another `server.data_dir`"
        }
    )]
    Held { holder: Holder, data_dir: PathBuf },
    #[error("cannot lock {}: {source}; check `server.data_dir` and its permissions", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Takes the data dir's lock for `command` (creating the folder and the file when missing),
/// without waiting: a held lock is an error naming its holder.
pub fn acquire(data_dir: &Path, command: &str) -> Result<DataDirLock, LockError> {
    let path = data_dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(data_dir).map_err(io)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is involved.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if locked != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::EWOULDBLOCK) {
            return Err(io(error));
        }
        return Err(LockError::Held {
            holder: holder_of(&mut file),
            data_dir: data_dir.to_owned(),
        });
    }
    let mine = format!("{} {command}\n", std::process::id());
    file.set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| file.write_all(mine.as_bytes()))
        .map_err(io)?;
    Ok(DataDirLock { _file: file, path })
}

/// Who holds the lock whose file is `file`. The holder writes its pid right after taking the
/// lock: an empty file is read again for a moment.
fn holder_of(file: &mut File) -> Holder {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        let mut words = text.split_whitespace();
        let pid = words.next().and_then(|p| p.parse().ok());
        let command = words.next().unwrap_or("process").to_owned();
        if (pid.is_some() && text.ends_with('\n')) || read.is_err() || Instant::now() >= deadline {
            return Holder { pid, command };
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder_and_is_free_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = acquire(&data, "serve").expect("first lock");
        match acquire(&data, "run") {
            Err(LockError::Held { holder, data_dir }) => {
                assert_eq!(holder.pid, Some(std::process::id()));
                assert!(holder.is_server());
                assert_eq!(data_dir, data);
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        let again = acquire(&data, "run").expect("free again");
        assert!(again.path().ends_with(LOCK_FILE));
    }
}

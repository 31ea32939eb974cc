//! Reading a job's log for people. The file on disk is the raw trace (ANSI colours, markers),
//! with secrets that appeared in one piece already masked as it was written. A secret the job
//! printed split by escapes (`S3cr\e[0mETVALUE`) is only whole once the trace is cleaned, so
//! every reader — the job page (`?raw=1` too), `chatops log`, `chatops run`'s live log, the end
//! of a log after a crash — goes through [`LogView`]: clean, then mask, always from the start
//! of the file (a read that starts in the middle of a secret or an escape could show part of
//! one). Nothing in chatops shows a log any other way.

use chatops_core::output::LogView;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Read size: a pipe's worth, as the executor writes.
const CHUNK: usize = 64 * 1024;

/// The end of a cleaned, masked log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LogTail {
    pub text: String,
    /// Cleaned bytes before `text` that were not kept.
    pub skipped: u64,
}

/// The last `max` bytes of the log at `path`, cleaned and masked (the whole file is read, so
/// the cut never falls inside a secret). A missing file is an empty log (the job has not
/// started).
pub fn read_tail(path: &Path, max: usize, secrets: &[String]) -> io::Result<LogTail> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LogTail::default()),
        Err(e) => return Err(e),
    };
    let mut view = LogView::new(secrets);
    let mut kept: Vec<u8> = Vec::new();
    let mut skipped = 0u64;
    let mut buf = vec![0u8; CHUNK];
    let keep = |kept: &mut Vec<u8>, skipped: &mut u64| {
        // Compact at twice the size: each byte moves at most once.
        if kept.len() > max.saturating_mul(2).max(CHUNK) {
            let excess = kept.len() - max;
            kept.drain(..excess);
            *skipped += excess as u64;
        }
    };
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        view.push(buf.get(..n).unwrap_or_default(), &mut kept);
        keep(&mut kept, &mut skipped);
    }
    view.finish(&mut kept);
    if let Some(excess) = kept.len().checked_sub(max).filter(|&n| n > 0) {
        kept.drain(..excess);
        skipped += excess as u64;
    }
    if skipped > 0 {
        // Start on a whole character.
        let partial = kept.iter().take_while(|&&b| b & 0xc0 == 0x80).count();
        kept.drain(..partial);
        skipped += partial as u64;
    }
    Ok(LogTail {
        text: String::from_utf8_lossy(&kept).into_owned(),
        skipped,
    })
}

/// Writes the whole log at `path`, cleaned and masked, to `out`.
pub fn copy(path: &Path, secrets: &[String], out: &mut impl Write) -> io::Result<()> {
    let mut follower = Follower::new(secrets);
    follower.poll(path, out)?;
    follower.finish(out)
}

/// Follows a log that is still being written (`chatops run`): each [`poll`](Follower::poll)
/// writes what the file gained, cleaned and masked; [`finish`](Follower::finish) what was held
/// back (the current line, a possible secret's start).
pub struct Follower {
    view: LogView,
    offset: u64,
    out: Vec<u8>,
}

impl Follower {
    pub fn new(secrets: &[String]) -> Follower {
        Follower {
            view: LogView::new(secrets),
            offset: 0,
            out: Vec::new(),
        }
    }

    /// Reads what `path` gained since the last poll (nothing when it does not exist yet).
    pub fn poll(&mut self, path: &Path, out: &mut impl Write) -> io::Result<()> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.offset += n as u64;
            self.view
                .push(buf.get(..n).unwrap_or_default(), &mut self.out);
            out.write_all(&self.out)?;
            self.out.clear();
        }
    }

    /// Writes what was held back; the log is over.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.view.finish(&mut self.out);
        out.write_all(&self.out)?;
        self.out.clear();
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &[u8] = b"\x1b[32;1m$ echo\x1b[0;m\nS3cr\x1b[0mETVALUE and S3crETVALUE\n";

    #[test]
    fn a_log_is_cleaned_then_masked_on_every_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.log");
        std::fs::write(&path, RAW).expect("write");
        let secrets = ["S3crETVALUE".to_owned()];
        let want = "$ echo\n[MASKED] and [MASKED]\n";
        let tail = read_tail(&path, 1 << 20, &secrets).expect("tail");
        assert_eq!(tail.text, want);
        assert_eq!(tail.skipped, 0);
        let mut out = Vec::new();
        copy(&path, &secrets, &mut out).expect("copy");
        assert_eq!(String::from_utf8_lossy(&out), want);
        // A short tail is cut from the masked text, never from the raw bytes.
        let tail = read_tail(&path, 10, &secrets).expect("tail");
        assert_eq!(tail.text, " [MASKED]\n");
        assert_eq!(tail.skipped, want.len() as u64 - 10);
        let missing = read_tail(&dir.path().join("none.log"), 10, &secrets).expect("missing");
        assert_eq!(missing, LogTail::default());
    }

    #[test]
    fn a_follower_masks_a_secret_written_across_two_polls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.log");
        let secrets = ["S3crETVALUE".to_owned()];
        let mut follower = Follower::new(&secrets);
        let mut out = Vec::new();
        follower.poll(&path, &mut out).expect("no file yet");
        std::fs::write(&path, &RAW[..20]).expect("write");
        follower.poll(&path, &mut out).expect("poll");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        file.write_all(&RAW[20..]).expect("append");
        follower.poll(&path, &mut out).expect("poll");
        follower.finish(&mut out).expect("finish");
        assert_eq!(
            String::from_utf8_lossy(&out),
            "$ echo\n[MASKED] and [MASKED]\n"
        );
    }
}

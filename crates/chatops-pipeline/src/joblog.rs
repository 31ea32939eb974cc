//! Reading a job's log for people. The file on disk is the raw trace (ANSI colours, markers),
//! with secrets that appeared in one piece already masked as it was written. A secret the job
//! printed split by escapes (`S3cr\e[0mETVALUE`) is only whole once the trace is cleaned, so
//! every reader — the job page (`?raw=1` too), `chatops log`, `chatops run`'s live log, the end
//! of a log after a crash — goes through [`LogView`]: clean, then mask, always from the start
//! of the file (a read that starts in the middle of a secret or an escape could show part of
//! one). Nothing in chatops shows a log any other way.

use chatops_exec::output::{ColourLogView, LogView};
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

/// The end of a log rendered with its colours ([`ColourLogView`]) for the job page.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ColouredTail {
    /// Whole lines, cleaned, masked, with normalised colour escapes; each line carries the
    /// colours in force at its start, so the cut at the front loses none.
    pub text: String,
    /// Rendered bytes before `text` that were not kept.
    pub skipped: u64,
    /// How much of the raw file was read: a live stream goes on from here.
    pub offset: u64,
}

/// The last `max` bytes (about: the cut falls after a line) of the log at `path`, rendered with
/// colours. `finished`: the job is over, so the last line (with no line break) is shown too;
/// otherwise it is held back until it ends (the live stream sends it then). The whole file is
/// read from the start: masking and colours need everything before the tail.
pub fn read_coloured_tail(
    path: &Path,
    max: usize,
    secrets: &[String],
    finished: bool,
) -> io::Result<ColouredTail> {
    let mut follower = ColourFollower::new(secrets);
    let mut kept: Vec<u8> = Vec::new();
    let mut skipped = 0u64;
    let trim = |kept: &mut Vec<u8>, skipped: &mut u64, over: usize| {
        if kept.len() > over {
            let from = kept.len() - max;
            // Cut after a line break: every line starts with its colours.
            let cut = kept
                .get(from..)
                .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
                .map_or(kept.len(), |i| from + i + 1);
            kept.drain(..cut);
            *skipped += cut as u64;
        }
    };
    loop {
        let before = kept.len();
        let read = follower.poll_some(path, &mut kept)?;
        if read == 0 {
            break;
        }
        if kept.len() != before {
            trim(&mut kept, &mut skipped, max.saturating_mul(2).max(CHUNK));
        }
    }
    if finished {
        follower.finish(&mut kept);
    }
    trim(&mut kept, &mut skipped, max);
    Ok(ColouredTail {
        text: String::from_utf8_lossy(&kept).into_owned(),
        skipped,
        offset: follower.offset(),
    })
}

/// Follows a log with its colours (the job page's live stream): like [`Follower`], through
/// [`ColourLogView`]. It remembers how much of the file it read, so a stream can resume at a
/// byte offset by replaying the file up to there silently ([`skip_to`](Self::skip_to)).
pub struct ColourFollower {
    view: ColourLogView,
    offset: u64,
    buf: Vec<u8>,
}

impl ColourFollower {
    pub fn new(secrets: &[String]) -> ColourFollower {
        ColourFollower {
            view: ColourLogView::new(secrets),
            offset: 0,
            buf: Vec::new(),
        }
    }

    /// How many raw bytes of the file were read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Reads at most one chunk (up to `limit` of the file, when given) and appends what it
    /// completes to `out`; returns how many raw bytes were read (0: nothing new, or no file).
    fn read_chunk(
        &mut self,
        path: &Path,
        limit: Option<u64>,
        out: &mut Vec<u8>,
    ) -> io::Result<usize> {
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let want = limit.map_or(CHUNK as u64, |l| {
            l.saturating_sub(self.offset).min(CHUNK as u64)
        });
        if want == 0 {
            return Ok(0);
        }
        self.buf.resize(want as usize, 0);
        let n = loop {
            match file.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.offset += n as u64;
        self.view.push(self.buf.get(..n).unwrap_or_default(), out);
        Ok(n)
    }

    /// Reads one chunk of what the file gained; returns the raw bytes read.
    pub fn poll_some(&mut self, path: &Path, out: &mut Vec<u8>) -> io::Result<usize> {
        self.read_chunk(path, None, out)
    }

    /// Reads everything the file gained since the last poll.
    pub fn poll(&mut self, path: &Path, out: &mut Vec<u8>) -> io::Result<()> {
        while self.read_chunk(path, None, out)? > 0 {}
        Ok(())
    }

    /// Reads the file up to `offset` (or its end), discarding the output: a stream resuming
    /// where a client left off sends only what follows.
    pub fn skip_to(&mut self, path: &Path, offset: u64) -> io::Result<()> {
        let mut discard = Vec::new();
        while self.read_chunk(path, Some(offset), &mut discard)? > 0 {
            discard.clear();
        }
        Ok(())
    }

    /// Appends what was held back (the last line); the log is over.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.view.finish(out);
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

    #[test]
    fn a_coloured_tail_masks_split_secrets_and_a_stream_resumes_at_an_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("1.log");
        std::fs::write(&path, RAW).expect("write");
        let secrets = ["S3crETVALUE".to_owned()];
        let tail = read_coloured_tail(&path, 1 << 20, &secrets, true).expect("tail");
        assert_eq!(
            tail.text,
            "\x1b[32;1m$ echo\x1b[0;m\n[MASKED]\x1b[0m and [MASKED]\n"
        );
        assert_eq!(tail.offset, RAW.len() as u64);
        // A short tail is cut after a line break, from the rendered text.
        let short = read_coloured_tail(&path, 30, &secrets, true).expect("tail");
        assert_eq!(short.text, "[MASKED]\x1b[0m and [MASKED]\n");
        assert_eq!(
            short.skipped,
            tail.text.len() as u64 - short.text.len() as u64
        );
        // Resuming at every offset gives exactly the rest of the rendering.
        let mut whole = ColourFollower::new(&secrets);
        let mut all = Vec::new();
        whole.poll(&path, &mut all).expect("poll");
        whole.finish(&mut all);
        for at in 0..=RAW.len() as u64 {
            let mut first = ColourFollower::new(&secrets);
            let mut head = Vec::new();
            first.skip_to(&path, at).expect("skip");
            assert_eq!(first.offset(), at);
            let mut rest = Vec::new();
            first.poll(&path, &mut rest).expect("poll");
            first.finish(&mut rest);
            let mut replay = ColourFollower::new(&secrets);
            replay.read_chunk(&path, Some(at), &mut head).expect("head");
            head.extend_from_slice(&rest);
            assert_eq!(head, all, "resumed at {at}");
            assert!(!String::from_utf8_lossy(&rest).contains("S3cr"));
        }
    }
}

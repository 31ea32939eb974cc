//! [`TraceSink`]: the one way a job's trace reaches its log file and its reply. Every executor
//! writes through one, so every job's log is masked alike and every reply is cut alike.
//!
//! Bytes are masked ([`SecretMasker`]: a secret split across two writes is still masked), then
//! appended to the log file (unbuffered: a live log wants every write on disk) and fed to an
//! [`OutputCollector`] that keeps bounded tails for the reply. A write error loses the rest of
//! the log (logged once), never the job.

use crate::output::{OutputCollector, SecretMasker};
use chatops_core::OutputBlock;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How much of each candidate reply output the collector keeps (the end of it). Above every
/// platform's message limit, so the adapters still choose the cut.
pub const REPLY_TAIL_BYTES: usize = 64 * 1024;

/// Reply rule 2's condition (contract §5): no `before_script` and exactly one `script`
/// command (blank lines are not commands). Every executor passes it to
/// [`TraceSink::finish`].
pub fn single_command(before_script: &[String], script: &[String]) -> bool {
    let commands = |l: &[String]| l.iter().filter(|c| !c.trim().is_empty()).count();
    commands(before_script) == 0 && commands(script) == 1
}

/// A job's trace on its way to the log file and the reply collector, secrets masked.
#[derive(Debug)]
pub struct TraceSink {
    /// `None` after a write error: the job goes on, the rest of the log is lost.
    file: Option<File>,
    log_path: PathBuf,
    masker: SecretMasker,
    /// Reused buffer for masked bytes.
    masked: Vec<u8>,
    collector: OutputCollector,
    secrets: Arc<[String]>,
    log_bytes: u64,
    stats: Arc<TraceStats>,
}

/// A sink's figures, readable from other threads while the job runs (an [`ExecHandle`]'s
/// [`log_bytes`](crate::ExecHandle::log_bytes)).
///
/// [`ExecHandle`]: crate::ExecHandle
#[derive(Debug, Default)]
pub struct TraceStats {
    log_bytes: AtomicU64,
    peak_retained: AtomicUsize,
}

impl TraceStats {
    /// Bytes written to the log so far.
    pub fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }

    /// The most memory the reply collector held (set when the sink finishes).
    pub fn peak_retained_bytes(&self) -> usize {
        self.peak_retained.load(Ordering::Relaxed)
    }
}

/// What a finished sink leaves.
#[derive(Clone, Debug)]
pub struct TraceEnd {
    /// The reply's output (contract §5), masked.
    pub output: OutputBlock,
    /// Bytes in the log file.
    pub log_bytes: u64,
    /// The most memory the reply collector held.
    pub peak_retained_bytes: usize,
}

impl TraceSink {
    /// Opens (creates, or empties) the log at `log_path`, creating its folder when missing.
    /// `secrets` are masked in the log and the reply; the reply keeps the last
    /// `reply_tail_bytes` of its output ([`REPLY_TAIL_BYTES`] is what chatops uses).
    pub fn open(
        log_path: &Path,
        secrets: Arc<[String]>,
        reply_tail_bytes: usize,
    ) -> io::Result<TraceSink> {
        let file = create_log(log_path)?;
        Ok(TraceSink {
            file: Some(file),
            log_path: log_path.to_path_buf(),
            masker: SecretMasker::new(&secrets),
            masked: Vec::new(),
            collector: OutputCollector::new(reply_tail_bytes),
            secrets,
            log_bytes: 0,
            stats: Arc::new(TraceStats::default()),
        })
    }

    /// Appends trace bytes (any size, split anywhere): masked, to the log file and the reply
    /// collector. The masker may hold back the end of a write that could start a secret until
    /// the next write (or [`finish`](Self::finish)).
    pub fn write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.masker.is_empty() {
            self.emit(bytes);
            return;
        }
        let mut masked = std::mem::take(&mut self.masked);
        masked.clear();
        self.masker.push(bytes, &mut masked);
        self.emit(&masked);
        self.masked = masked;
    }

    /// Bytes written to the log file so far.
    pub fn len(&self) -> u64 {
        self.log_bytes
    }

    /// Nothing written to the log file yet.
    pub fn is_empty(&self) -> bool {
        self.log_bytes == 0
    }

    /// The sink's figures, shared: a job's control reads them while the job runs.
    pub fn stats(&self) -> Arc<TraceStats> {
        Arc::clone(&self.stats)
    }

    /// Writes what the masker held back and cuts the reply's output. `single_command`: the
    /// job ran one command and no `before_script` (reply rule 2).
    pub fn finish(self, single_command: bool) -> OutputBlock {
        self.finish_with_stats(single_command).output
    }

    /// [`finish`](Self::finish), with the log's size and the collector's peak memory.
    pub fn finish_with_stats(mut self, single_command: bool) -> TraceEnd {
        let mut rest = Vec::new();
        self.masker.finish(&mut rest);
        self.emit(&rest);
        let peak_retained_bytes = self.collector.peak_retained_bytes();
        self.stats
            .peak_retained
            .store(peak_retained_bytes, Ordering::Relaxed);
        TraceEnd {
            output: self.collector.finish(single_command, &self.secrets),
            log_bytes: self.log_bytes,
            peak_retained_bytes,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // Unbuffered on purpose: reads are large when output floods, and a live log wants
        // every read on disk.
        if let Some(file) = &mut self.file {
            if let Err(e) = file.write_all(bytes) {
                tracing::error!(path = %self.log_path.display(), error = %e, "cannot write the job log; the rest of it is lost");
                self.file = None;
            }
        }
        self.collector.feed(bytes);
        self.log_bytes += bytes.len() as u64;
        self.stats
            .log_bytes
            .store(self.log_bytes, Ordering::Relaxed);
    }
}

/// Opens (creates, truncates) the job's log. The folder is nearly always there already, so it
/// is created only when the open says it is missing. (The watcher creates the file beforehand
/// on the blocking pool, so this open allocates no inode on the actor thread: on ext4 without
/// a journal that is slow after deletions.)
///
/// No `O_TRUNC`: on ext4, truncating a file, even an empty one, marks it to be flushed to
/// disk when closed (`auto_da_alloc`), which put the whole log's writeback on the actor
/// thread at the job's end. Only a log that has content is cut, with `ftruncate`.
fn create_log(path: &Path) -> io::Result<File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            // Cut below, only when there is something to cut.
            .truncate(false)
            .open(path)
    };
    let file = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match path.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => std::fs::create_dir_all(parent)?,
                None => return Err(e),
            }
            open()?
        }
        opened => opened?,
    };
    if file.metadata()?.len() > 0 {
        file.set_len(0)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_foreign_trace_is_logged_masked_and_cut_like_a_local_one() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("logs").join("7.log");
        std::fs::create_dir_all(dir.path().join("logs")).expect("the folder");
        std::fs::write(&log, "left over from an earlier run").expect("an old log");
        let secrets: Arc<[String]> = Arc::from(vec!["hunter2".to_owned()]);
        let mut sink = TraceSink::open(&log, secrets, REPLY_TAIL_BYTES).expect("the sink opens");
        let stats = sink.stats();
        assert!(sink.is_empty());
        // A runner's trace arrives in arbitrary pieces: a secret split across two.
        sink.write(b"section_start:1:step_script\r\x1b[0K\x1b[32;1m$ echo hi\x1b[0;m\nhi hun");
        sink.write(b"ter2\n");
        sink.write(b"section_end:1:step_script\r\x1b[0K");
        let end = sink.finish_with_stats(true);
        let on_disk = std::fs::read_to_string(&log).expect("the log");
        assert!(!on_disk.contains("hunter2"), "{on_disk:?}");
        assert!(on_disk.contains("hi [MASKED]\n"), "{on_disk:?}");
        assert!(!on_disk.contains("left over"));
        assert_eq!(end.output.text, "hi [MASKED]");
        assert_eq!(end.log_bytes, on_disk.len() as u64);
        assert_eq!(stats.log_bytes(), on_disk.len() as u64);
        assert!(stats.peak_retained_bytes() > 0);
        assert_eq!(stats.peak_retained_bytes(), end.peak_retained_bytes);
    }

    #[test]
    fn the_log_folder_is_created_when_missing() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let log = dir.path().join("a").join("b").join("1.log");
        let mut sink = TraceSink::open(&log, Arc::from([]), 16).expect("the sink opens");
        sink.write(b"x\n");
        assert_eq!(sink.len(), 2);
        assert_eq!(sink.finish(false).text, "x");
        assert_eq!(std::fs::read(&log).expect("the log"), b"x\n");
    }
}

//! What Linux says about a process: resident memory (`/proc/PID/status`) and CPU time
//! (`/proc/PID/stat`). Only the server process itself is counted, never its jobs' processes.

use crate::error::BenchError;
use std::time::Duration;

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss: u64,
    /// `VmHWM`: the peak resident set since the process started.
    pub peak: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> Result<Memory, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::Proc(path.clone(), e))?;
    parse_status(&text).ok_or(BenchError::ProcFormat(path))
}

/// `VmRSS`/`VmHWM` (kB in the file) from the text of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Option<Memory> {
    let kb = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .map(|k: u64| k * 1024)
    };
    Some(Memory {
        rss: kb("VmRSS:")?,
        peak: kb("VmHWM:")?,
    })
}

/// CPU time (user + system) `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| BenchError::Proc(path.clone(), e))?;
    let ticks = parse_stat_ticks(&text).ok_or(BenchError::ProcFormat(path))?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks()))
}

/// `utime + stime` (clock ticks) from the text of `/proc/PID/stat`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    // Field 2, the command name, is in parentheses and may itself hold spaces or ')': the
    // fields after the *last* ')' are fixed. After it come field 3 (state) onwards, so utime
    // (field 14) and stime (field 15) are the 12th and 13th there.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`, 100 on every common Linux).
fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Raises this process's open-file limit to its hard limit. 1,000 concurrent jobs need
/// thousands of descriptors (pipes, logs, sockets) in the server, which inherits the limit,
/// and a distribution's default soft limit of 1,024 would make the bench measure that instead.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_memory_in_bytes() {
        let text = "Name:\tchatops\nVmPeak:\t  900000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss: 20480 * 1024,
                peak: 40960 * 1024
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn stat_ticks_survive_odd_command_names() {
        // A comm of "a) b (c" must not shift the fields.
        let text =
            "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 3 0 1000 100000 500";
        assert_eq!(parse_stat_ticks(text), Some(42));
        assert_eq!(parse_stat_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let m = memory(pid).expect("own status");
        assert!(m.rss > 0 && m.peak >= m.rss, "{m:?}");
        assert!(cpu_time(pid).is_ok());
    }
}

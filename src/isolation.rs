//! What keeps a job away from the server's secrets (README, "Isolation and secrets"):
//! - [`harden_process`]: the server is not dumpable, so a job running as the same user cannot
//!   read `/proc/<server>/environ`, `mem` or `fd`, nor ptrace it; new files are private
//!   (umask 077).
//! - [`secure_data_dir`]: `data_dir` is 0700 and what is in it 0600 (or 0700 for folders),
//!   tightened with a warning when an older run left it more open.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Makes the process non-dumpable and its new files private. Call first thing in `main`,
/// before any secret is read or any job runs.
///
/// Not dumpable: `/proc/<pid>/environ|mem|fd|maps` become root-only and ptrace by the same
/// user is refused, so a job (`$PPID` is the server) cannot read the signing secrets and
/// tokens in the server's environment. The flag is reset for the job's shell at `execve`
/// (it belongs to the new program), so a job's own processes stay inspectable; it never comes
/// back for the server itself.
pub fn harden_process() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) and umask take plain integers and cannot fail in a
    // way that harms the process; prctl's result is checked.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "chatops: warning: cannot make the process non-dumpable ({}): jobs running as this user could read the server's environment",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: umask only sets the process's file mode mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// Whether the process is dumpable (for tests and the start-up log).
pub fn is_dumpable() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointer and returns the flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 1 }
}

/// Creates `data_dir` (0700) when missing; otherwise tightens it and what chatops keeps in it
/// (the link key, the store, the logs and checkouts folders, each log) to 0700/0600 where
/// group or others could read them. Returns a warning per path it had to tighten.
///
/// `job_user`: jobs run as another user, who must reach their checkout under
/// `data_dir/builds`: `data_dir` and `builds` are then 0711 (pass through, no listing, no
/// reading); everything else stays private to the server.
pub fn secure_data_dir(data_dir: &Path, job_user: bool) -> std::io::Result<Vec<String>> {
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    let mut warnings = Vec::new();
    let pass = if job_user { 0o011 } else { 0 };
    tighten(data_dir, pass, &mut warnings);
    for name in [
        "link.key",
        "chatops.db",
        "chatops.db-wal",
        "chatops.db-shm",
        "logs",
    ] {
        tighten(&data_dir.join(name), 0, &mut warnings);
    }
    let builds = data_dir.join("builds");
    tighten(&builds, pass, &mut warnings);
    if job_user {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&builds)?;
        for dir in [data_dir, builds.as_path()] {
            let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o711))?;
        }
    }
    let mut logs_opened = 0usize;
    if let Ok(entries) = std::fs::read_dir(data_dir.join("logs")) {
        for entry in entries.flatten() {
            let mut quiet = Vec::new();
            tighten(&entry.path(), 0, &mut quiet);
            logs_opened += quiet.len();
        }
    }
    if logs_opened > 0 {
        warnings.push(format!(
            "{logs_opened} job logs in {} were readable by other users: now 0600",
            data_dir.join("logs").display()
        ));
    }
    Ok(warnings)
}

/// Drops group and other permissions but `pass` from `path` (a missing path is fine).
fn tighten(path: &Path, pass: u32, warnings: &mut Vec<String>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 & !pass == 0 {
        return;
    }
    let wanted = mode & (0o700 | pass);
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
        Ok(()) => warnings.push(format!(
            "{} was readable by other users (mode {mode:o}): now {wanted:o}",
            path.display()
        )),
        Err(e) => warnings.push(format!(
            "{} is readable by other users (mode {mode:o}) and cannot be changed: {e}; chmod it to {wanted:o}",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_data_dir_is_tightened_with_warnings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("logs")).expect("dirs");
        std::fs::write(data.join("link.key"), [0u8; 32]).expect("key");
        std::fs::write(data.join("logs").join("1.log"), "x").expect("log");
        for p in [&data, &data.join("logs")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        for p in [data.join("link.key"), data.join("logs").join("1.log")] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let warnings = secure_data_dir(&data, false).expect("secure");
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("logs")), 0o700);
        assert_eq!(mode(&data.join("link.key")), 0o600);
        assert_eq!(mode(&data.join("logs").join("1.log")), 0o600);
        assert!(secure_data_dir(&data, false).expect("again").is_empty());
        let fresh = dir.path().join("new").join("data");
        secure_data_dir(&fresh, false).expect("create");
        assert_eq!(mode(&fresh), 0o700);
        // With a job user: data_dir and builds let it pass (to its checkout), nothing more.
        assert!(secure_data_dir(&data, true).expect("job user").is_empty());
        assert_eq!(mode(&data), 0o711);
        assert_eq!(mode(&data.join("builds")), 0o711);
        assert_eq!(mode(&data.join("logs")), 0o700);
        assert!(secure_data_dir(&data, true).expect("again").is_empty());
    }
}

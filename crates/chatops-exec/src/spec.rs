//! [`ExecSpec`]: everything an executor needs to run one job, on this host or elsewhere.

use chatops_core::JobId;
use std::ffi::OsStr;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Where the job's files come from, as the watcher resolved them when the job was planned.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Source {
    /// A plain folder, run in place (a runner gets no repository: `GIT_STRATEGY: none`).
    Folder(PathBuf),
    /// A git repository (work tree or bare) at `sha` (full 40-hex), read from `branch`;
    /// runners fetch it from chatops at `/git/<project>.git`.
    Git {
        repo: PathBuf,
        sha: String,
        branch: String,
    },
}

/// One of the job's variables, as a remote executor sends it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variable<'a> {
    pub key: &'a str,
    pub value: &'a str,
    /// A secret: masked wherever the executor shows variables.
    pub masked: bool,
}

/// What to run, where, and with what.
#[derive(Clone)]
pub struct ExecSpec {
    pub job_id: JobId,
    pub job_name: String,
    /// The project's name (`projects.<name>`).
    pub project: String,
    /// Where the job's files come from (what the watcher resolved).
    pub source: Source,
    /// `projects.<name>.tags`: which runners may take the job (remote executors only).
    pub tags: Vec<String>,
    /// The local working copy the shells run in. Empty for an executor whose
    /// [`needs_workdir`](crate::Executor::needs_workdir) is `false`.
    pub workdir: PathBuf,
    /// The job's variables, complete (the lead builds them per contract §4). The child gets these
    /// plus a small safe base from the server's environment (PATH, HOME, USER, LOGNAME, SHELL, LANG,
    /// LC_*, TZ, TMPDIR, TERM): never the server's other variables (they hold chatops' secrets).
    /// Later entries win over earlier ones with the same name.
    pub env: Vec<(String, String)>,
    /// Names of the entries of `env` that are secrets (`projects.<name>.secrets`).
    pub secret_names: Vec<String>,
    pub before_script: Vec<String>,
    pub script: Vec<String>,
    pub after_script: Vec<String>,
    /// For `before_script` + `script`; `after_script` has [`AFTER_SCRIPT_TIMEOUT`](crate::AFTER_SCRIPT_TIMEOUT).
    pub timeout: Duration,
    /// Created/truncated; parent dirs created.
    pub log_path: PathBuf,
    /// Masked in the log file and in the reply.
    pub secrets: Arc<[String]>,
    /// A folder for script files, created only when a script is too big to pass to the shell
    /// as an argument (over 64 KiB); usually it is never created.
    pub scratch_dir: PathBuf,
    /// Run the shells as this user (`server.job_user` / `projects.<name>.job_user`) instead of
    /// the server's. `None`: the server's user.
    pub user: Option<JobUser>,
}

/// A system user jobs run as: resolved once, when the config is loaded, so the spawn only
/// makes async-signal-safe calls (setgroups, setgid, setuid) between fork and exec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (as `initgroups` would set them).
    pub groups: Vec<u32>,
    /// The user's home, from the password database.
    pub home: PathBuf,
}

impl JobUser {
    /// Looks `name` up in the password and group databases.
    pub fn lookup(name: &str) -> Result<JobUser, String> {
        let c_name = std::ffi::CString::new(name)
            .map_err(|_| format!("`{name}` is not a user name (it holds a NUL byte)"))?;
        // SAFETY: getpwnam_r with a zeroed passwd, a buffer we own and its length; the
        // strings it points `pwd` into live in `buf`, read before `buf` goes.
        let (uid, gid, home) = unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let mut buf = vec![0 as libc::c_char; 16 * 1024];
            let rc = libc::getpwnam_r(
                c_name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            );
            if rc != 0 || result.is_null() {
                return Err(format!(
                    "no user `{name}` on this system (create it, or fix the name)"
                ));
            }
            let home = if pwd.pw_dir.is_null() {
                PathBuf::from("/")
            } else {
                PathBuf::from(<OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                    std::ffi::CStr::from_ptr(pwd.pw_dir).to_bytes(),
                ))
            };
            (pwd.pw_uid, pwd.pw_gid, home)
        };
        let mut groups: Vec<libc::gid_t> = vec![0; 64];
        loop {
            let mut n = libc::c_int::try_from(groups.len()).unwrap_or(libc::c_int::MAX);
            // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most `n` and
            // sets `n` to the number it needs.
            let rc =
                unsafe { libc::getgrouplist(c_name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
            let needed = usize::try_from(n).unwrap_or(0);
            if rc >= 0 {
                groups.truncate(needed);
                break;
            }
            if needed <= groups.len() || needed > 65536 {
                groups = vec![gid];
                break;
            }
            groups.resize(needed, 0);
        }
        Ok(JobUser {
            name: name.to_owned(),
            uid,
            gid,
            groups,
            home,
        })
    }
}

impl fmt::Debug for ExecSpec {
    /// Variable values and secrets stay out of debug output: they may be secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ExecSpec")
            .field("job_id", &self.job_id)
            .field("job_name", &self.job_name)
            .field("project", &self.project)
            .field("source", &self.source)
            .field("tags", &self.tags)
            .field("workdir", &self.workdir)
            .field("env_names", &names)
            .field("before_script", &self.before_script)
            .field("script", &self.script)
            .field("after_script", &self.after_script)
            .field("timeout", &self.timeout)
            .field("log_path", &self.log_path)
            .field("secrets", &self.secrets.len())
            .field("scratch_dir", &self.scratch_dir)
            .field("user", &self.user.as_ref().map(|u| &u.name))
            .finish()
    }
}

impl ExecSpec {
    /// The job's variables with whether each is secret, later entries winning (as the shell
    /// sees them): one per name, in the order of each name's last entry. A variable is secret
    /// when its name is in `secret_names` or its value is one of `secrets`.
    pub fn variables(&self) -> Vec<Variable<'_>> {
        let mut out: Vec<Variable<'_>> = Vec::with_capacity(self.env.len());
        for (i, (key, value)) in self.env.iter().enumerate() {
            let overridden = self
                .env
                .get(i + 1..)
                .unwrap_or_default()
                .iter()
                .any(|(k, _)| k == key);
            if overridden {
                continue;
            }
            let masked = self.secret_names.iter().any(|n| n == key)
                || (!value.is_empty() && self.secrets.iter().any(|s| s == value));
            out.push(Variable { key, value, masked });
        }
        out
    }
}

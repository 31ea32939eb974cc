//! The machine's own limits, measured the same way as chatops:
//! - [`serve_bare`]: a bare actix-web server whose handler reads the body and answers 200 with
//!   a small JSON (the framework's limit for the ack path). It runs as a separate process (this
//!   binary's hidden `baseline-server` subcommand) with actix-web's defaults, as chatops does.
//! - [`spawn_echo`] / [`spawn_sleep`]: `sh -c '...'` spawned directly from Tokio with pipes
//!   (the machine's process limit for command → reply); `bash` too, chatops' own job shell.
//! - [`shell_to_file`]: the shell writing the big job's bytes to a file.

use crate::error::BenchError;
use actix_web::{web, App, HttpResponse, HttpServer};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The answer of the bare handler: about the size of a chatops ack's envelope.
const BARE_ACK: &str = r#"{"response_type":"in_channel","text":"ok"}"#;

/// Runs the bare actix-web server until SIGTERM/SIGINT: binds `127.0.0.1:0`, logs
/// "baseline listening on http://ADDR" to stderr, answers every POST after reading its body.
pub fn serve_bare() -> std::io::Result<()> {
    actix_web::rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = HttpServer::new(|| {
            App::new().default_service(web::to(|body: web::Bytes| async move {
                // Reading the body is the point: chatops must read it to check the signature.
                std::hint::black_box(body.len());
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(BARE_ACK)
            }))
        })
        .listen(listener)?
        .shutdown_timeout(1)
        .run();
        eprintln!("baseline listening on http://{addr}");
        server.await
    })
}

/// The shell a direct spawn uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// `sh -c` (dash on Debian): the issue's baseline.
    Sh,
    /// `bash --noprofile --norc -c`: the shell chatops' executor prefers (as GitLab Runner's
    /// shell executor does), so the gap it alone explains shows.
    Bash,
}

impl Shell {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Shell::Sh => "sh",
            Shell::Bash => "bash",
        }
    }
}

/// Spawns `sh -c 'echo hi'` (or bash's equivalent) with stdin closed and stdout/stderr piped,
/// reads its output to the end and reaps it; returns the time that took.
pub async fn spawn_echo(shell: Shell) -> Result<Duration, BenchError> {
    let t0 = Instant::now();
    let mut cmd = match shell {
        Shell::Sh => tokio::process::Command::new("sh"),
        Shell::Bash => {
            let mut c = tokio::process::Command::new("bash");
            c.args(["--noprofile", "--norc"]);
            c
        }
    };
    let out = cmd
        .arg("-c")
        .arg("echo hi")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| BenchError::Baseline(format!("cannot spawn {}: {e}", shell.label())))?;
    let took = t0.elapsed();
    if !out.status.success() || out.stdout != b"hi\n" {
        return Err(BenchError::Baseline(format!(
            "{} -c 'echo hi' gave {} and {:?}",
            shell.label(),
            out.status,
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(took)
}

/// Spawns `sh -c 'sleep SECS'` the same way and waits for it.
pub async fn spawn_sleep(secs: u64) -> Result<(), BenchError> {
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("sleep {secs}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| BenchError::Baseline(format!("cannot spawn sh: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(BenchError::Baseline(format!(
            "sh -c 'sleep' gave {}",
            out.status
        )))
    }
}

/// Runs the big job's pipeline with its output going to a file in `dir`; returns the wall time.
/// The file is removed afterwards.
pub async fn shell_to_file(bytes: u64, dir: &Path) -> Result<Duration, BenchError> {
    let file = dir.join("big-baseline.out");
    let t0 = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(crate::server::big_baseline_script(bytes, &file))
        .stdin(Stdio::null())
        .status()
        .await
        .map_err(|e| BenchError::Baseline(format!("cannot spawn sh: {e}")))?;
    let took = t0.elapsed();
    let written = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let _ = std::fs::remove_file(&file);
    if !status.success() || written != bytes {
        return Err(BenchError::Baseline(format!(
            "the shell wrote {written} of {bytes} bytes ({status})"
        )));
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_spawns_work() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the test");
        rt.block_on(async {
            for shell in [Shell::Sh, Shell::Bash] {
                let took = spawn_echo(shell).await.expect("echo hi");
                assert!(took > Duration::ZERO);
            }
            spawn_sleep(0).await.expect("sleep 0");
            let dir = tempfile::tempdir().expect("tempdir");
            shell_to_file(4096, dir.path())
                .await
                .expect("4 kB to a file");
            assert!(!dir.path().join("big-baseline.out").exists(), "cleaned up");
        });
    }
}

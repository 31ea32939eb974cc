//! The git remote runners fetch git projects from: `/git/<project>.git/...`, smart HTTP through
//! `git http-backend` (a CGI program, spawned per request), behind Basic auth with user
//! `gitlab-ci-token` and a live job token of a job of that project. Fetch only: pushes get 403.

use crate::coordinator::Coordinator;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The largest fetch request body (wants and haves): plenty for any fetch.
const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// The most CGI header bytes read before the body.
const HEADER_LIMIT: usize = 64 * 1024;

pub(crate) fn configure(coordinator: Coordinator, cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/git")
            .app_data(web::Data::new(coordinator))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .default_service(web::to(serve)),
    );
}

fn challenge() -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header(("WWW-Authenticate", "Basic realm=\"chatops\""))
        .body("a job token is needed: user gitlab-ci-token, password the job's CI_JOB_TOKEN")
}

/// The password of a `gitlab-ci-token` Basic credential.
fn job_token(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("Authorization")?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == "gitlab-ci-token").then(|| password.to_owned())
}

async fn serve(c: web::Data<Coordinator>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let path = req.path().strip_prefix("/git/").unwrap_or("");
    let Some((project, rest)) = path.split_once(".git/") else {
        return HttpResponse::NotFound().body("no such repository");
    };
    let query = req.query_string();
    let push = rest == "git-receive-pack" || query.contains("service=git-receive-pack");
    if push {
        return HttpResponse::Forbidden().body("chatops' git remote is read-only");
    }
    if rest != "info/refs" && rest != "git-upload-pack" {
        return HttpResponse::NotFound().body("only smart-HTTP fetches are served");
    }
    if req.headers().get("Authorization").is_none() {
        return challenge();
    }
    let Some(token) = job_token(&req) else {
        return HttpResponse::Forbidden().body("only gitlab-ci-token with a job token may fetch");
    };
    let Some(repo) = c.inner.git_repo(project, &token) else {
        return HttpResponse::Forbidden()
            .body("this job token does not give access to this repository");
    };
    match backend(&req, &repo, rest, body).await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(repo = %repo.display(), error = %e, "git http-backend failed");
            HttpResponse::InternalServerError().body("the git backend failed; see chatops' log")
        }
    }
}

/// `GIT_PROJECT_ROOT` and `PATH_INFO` for `rest` of `repo` (a work tree or a bare repository).
fn locate(repo: &Path, rest: &str) -> (PathBuf, String) {
    if repo.join(".git").is_dir() {
        (repo.to_owned(), format!("/.git/{rest}"))
    } else {
        let name = repo
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = repo
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("/"));
        (root, format!("/{name}/{rest}"))
    }
}

async fn backend(
    req: &HttpRequest,
    repo: &Path,
    rest: &str,
    body: web::Bytes,
) -> std::io::Result<HttpResponse> {
    let (root, path_info) = locate(repo, rest);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let config = [
        // The sha a job wants may no longer be a branch tip.
        ("uploadpack.allowReachableSHA1InWant", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
        ("http.receivepack", "false"),
        // The repository belongs to whoever runs chatops, maybe not to this process's user.
        ("safe.directory", "*"),
    ];
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", &path_info)
        .env("QUERY_STRING", req.query_string())
        .env("REQUEST_METHOD", req.method().as_str())
        .env("CONTENT_TYPE", header("Content-Type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_USER", "gitlab-ci-token")
        .env("GIT_CONFIG_COUNT", config.len().to_string());
    for (i, (key, value)) in config.iter().enumerate() {
        cmd.env(format!("GIT_CONFIG_KEY_{i}"), key)
            .env(format!("GIT_CONFIG_VALUE_{i}"), value);
    }
    let protocol = header("Git-Protocol");
    if !protocol.is_empty() {
        cmd.env("GIT_PROTOCOL", protocol);
    }
    let encoding = header("Content-Encoding");
    if !encoding.is_empty() {
        cmd.env("HTTP_CONTENT_ENCODING", encoding);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("no stdin"))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| std::io::Error::other("no stdout"))?;
    // Fed from its own task: the backend may answer before it read everything.
    tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    // CGI headers, up to the blank line.
    let mut head = Vec::new();
    let body_start = loop {
        if let Some(at) = find_blank_line(&head) {
            break at;
        }
        if head.len() > HEADER_LIMIT {
            return Err(std::io::Error::other(
                "git http-backend sent too many header bytes",
            ));
        }
        let mut chunk = [0u8; 4096];
        let n = stdout.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other(
                "git http-backend ended before its headers",
            ));
        }
        head.extend_from_slice(&chunk[..n]);
    };
    let (headers, sep) = (&head[..body_start.0], body_start.1);
    let rest_of_head = head[body_start.0 + sep..].to_vec();
    let mut resp = HttpResponse::Ok();
    for line in String::from_utf8_lossy(headers).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("Status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok());
            if let Some(code) = code.and_then(|c| StatusCode::from_u16(c).ok()) {
                resp.status(code);
            }
        } else {
            resp.insert_header((name.trim(), value));
        }
    }
    let first = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(web::Bytes::from(rest_of_head))
    });
    let more = futures_util::stream::unfold((stdout, child), |(mut out, child)| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match out.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(web::Bytes::from(buf)), (out, child)))
            }
            Err(e) => Some((Err(e), (out, child))),
        }
    });
    use futures_util::StreamExt;
    Ok(resp.streaming(first.chain(more)))
}

/// Where the header block ends: (its length, the separator's length).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    let crlf = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

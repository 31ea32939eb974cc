//! The `runners:` config section (issue #10): which GitLab runners may take chat jobs from
//! chatops, and the coordinator's timings. Projects opt in with `executor: runner`.
//!
//! ```yaml
//! runners:
//!   tokens:
//!     - name: shell-1
//!       token: "${CHATOPS_RUNNER_TOKEN}"   # chatops runner-token create
//!       tags: [linux]
//!   lost_after: 90s
//! ```

use chatops_runner::{RunnerConfig, RunnerToken};
use serde::Deserialize;
use std::time::Duration;

/// `runners:`, as typed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunnersSection {
    /// The runner authentication tokens chatops accepts.
    pub tokens: Vec<TokenEntry>,
    /// How long `jobs/request` is held while nothing is queued (at most 50s).
    #[serde(default)]
    pub long_poll: Option<String>,
    /// A job offered to a runner that never answers is offered again after this.
    #[serde(default)]
    pub ack_timeout: Option<String>,
    /// A running job whose runner sends nothing for this long fails as lost.
    #[serde(default)]
    pub lost_after: Option<String>,
    /// How often runners send trace (and so see a cancel).
    #[serde(default)]
    pub update_interval: Option<String>,
    /// How long a canceled job's `after_script` may run on the runner.
    #[serde(default)]
    pub cancel_grace: Option<String>,
}

/// `runners.tokens[]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub token: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub run_untagged: bool,
}

fn yes() -> bool {
    true
}

/// Shortest token accepted after the `glrt-` prefix: guessable tokens let anyone take jobs
/// (and their secrets).
const MIN_TOKEN_CHARS: usize = 20;

/// GitLab runners touch a silent job only every 30 s (`forceSendInterval`): a shorter
/// `lost_after` fails jobs that merely print nothing for a while.
const RUNNER_HEARTBEAT: Duration = Duration::from_secs(30);

impl RunnersSection {
    /// Checks the section and builds the coordinator's settings. `Err` holds the key path
    /// (for the line number) and the message; warnings are pushed to `warnings`.
    pub fn settings(
        &self,
        public_url: &str,
        warnings: &mut Vec<String>,
    ) -> Result<RunnerConfig, (Vec<String>, String)> {
        let at = |rest: &[&str]| -> Vec<String> {
            std::iter::once("runners")
                .chain(rest.iter().copied())
                .map(str::to_owned)
                .collect()
        };
        if self.tokens.is_empty() {
            return Err((
                at(&["tokens"]),
                "runners.tokens is empty: add a token (`chatops runner-token create` makes one) or remove the runners section".into(),
            ));
        }
        let mut tokens: Vec<RunnerToken> = Vec::with_capacity(self.tokens.len());
        for entry in &self.tokens {
            let secret = entry.token.trim();
            let random = secret.strip_prefix("glrt-").unwrap_or_default();
            if random.chars().count() < MIN_TOKEN_CHARS {
                return Err((
                    at(&["tokens"]),
                    format!(
                        "runners.tokens `{}`: a runner token is `glrt-` and at least {MIN_TOKEN_CHARS} random characters; make one with `chatops runner-token create`",
                        entry.name
                    ),
                ));
            }
            if entry.name.trim().is_empty() {
                return Err((
                    at(&["tokens"]),
                    "runners.tokens: every token needs a `name` (it shows in logs and replies)"
                        .into(),
                ));
            }
            if tokens.iter().any(|t| t.name == entry.name) {
                return Err((
                    at(&["tokens"]),
                    format!("runners.tokens: the name `{}` is used twice", entry.name),
                ));
            }
            if tokens.iter().any(|t| t.token == secret) {
                return Err((
                    at(&["tokens"]),
                    format!(
                        "runners.tokens `{}`: this token is already another entry's; give each runner its own",
                        entry.name
                    ),
                ));
            }
            tokens.push(RunnerToken {
                name: entry.name.clone(),
                token: secret.to_owned(),
                tags: entry.tags.clone(),
                run_untagged: entry.run_untagged,
            });
        }
        let mut config = RunnerConfig::new(tokens, public_url);
        let duration = |key: &str, value: &Option<String>, into: &mut Duration| {
            if let Some(text) = value {
                *into = chatops_ci::parse_duration(text).map_err(|e| {
                    (
                        at(&[key]),
                        format!("runners.{key}: {e} (a duration like `90s` or `2m`)"),
                    )
                })?;
                if into.is_zero() {
                    return Err((at(&[key]), format!("runners.{key} must be more than 0")));
                }
            }
            Ok(())
        };
        duration("long_poll", &self.long_poll, &mut config.long_poll)?;
        duration("ack_timeout", &self.ack_timeout, &mut config.ack_timeout)?;
        duration("lost_after", &self.lost_after, &mut config.lost_after)?;
        duration(
            "update_interval",
            &self.update_interval,
            &mut config.update_interval,
        )?;
        duration("cancel_grace", &self.cancel_grace, &mut config.cancel_grace)?;
        if config.long_poll > chatops_runner::MAX_LONG_POLL {
            warnings.push(format!(
                "runners.long_poll is {:?}; chatops holds a runner's request at most {:?}",
                config.long_poll,
                chatops_runner::MAX_LONG_POLL
            ));
            config.long_poll = chatops_runner::MAX_LONG_POLL;
        }
        if config.lost_after <= RUNNER_HEARTBEAT {
            warnings.push(format!(
                "runners.lost_after is {:?}: gitlab-runner reports on a job that prints nothing only every 30s, so such jobs will be failed as lost; use more than 30s",
                config.lost_after
            ));
        }
        if public_url.starts_with("http://") && !is_loopback_url(public_url) {
            warnings.push(format!(
                "server.public_url `{public_url}` is plain http: runners would fetch code and send job tokens unencrypted; put chatops behind https"
            ));
        }
        Ok(config)
    }
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &str) -> RunnersSection {
        serde_yaml::from_str(yaml).expect("a runners section")
    }

    #[test]
    fn a_section_becomes_coordinator_settings() {
        let s = section(
            "tokens:\n  - {name: a, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa, tags: [linux]}\nlost_after: 2m\n",
        );
        let mut warnings = Vec::new();
        let c = s
            .settings("https://chatops.example.com", &mut warnings)
            .expect("valid");
        assert_eq!(c.lost_after, Duration::from_secs(120));
        assert_eq!(c.tokens[0].tags, vec!["linux".to_owned()]);
        assert!(c.tokens[0].run_untagged);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn weak_or_repeated_tokens_and_bad_durations_are_refused() {
        let mut w = Vec::new();
        for (yaml, says) in [
            ("tokens: []\n", "runner-token create"),
            ("tokens:\n  - {name: a, token: secret}\n", "glrt-"),
            ("tokens:\n  - {name: a, token: glrt-short}\n", "at least 20"),
            (
                "tokens:\n  - {name: a, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa}\n  - {name: a, token: glrt-bbbbbbbbbbbbbbbbbbbbbbbb}\n",
                "used twice",
            ),
            (
                "tokens:\n  - {name: a, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa}\n  - {name: b, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa}\n",
                "its own",
            ),
            (
                "tokens:\n  - {name: a, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa}\nlost_after: soon\n",
                "runners.lost_after",
            ),
        ] {
            let e = section(yaml)
                .settings("https://c", &mut w)
                .expect_err(yaml);
            assert!(e.1.contains(says), "{yaml} → {}", e.1);
        }
    }

    #[test]
    fn short_lost_after_and_plain_http_are_warned_about() {
        let s = section(
            "tokens:\n  - {name: a, token: glrt-aaaaaaaaaaaaaaaaaaaaaaaa}\nlost_after: 5s\n",
        );
        let mut w = Vec::new();
        s.settings("http://chatops.example.com", &mut w)
            .expect("valid");
        assert!(w.iter().any(|m| m.contains("lost_after")), "{w:?}");
        assert!(w.iter().any(|m| m.contains("plain http")), "{w:?}");
        let mut w = Vec::new();
        s.settings("http://127.0.0.1:8080", &mut w).expect("valid");
        assert!(!w.iter().any(|m| m.contains("plain http")), "{w:?}");
    }
}

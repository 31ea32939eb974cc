//! Signed links to job pages. A reply carries `{public_url}/jobs/{id}?t={token}`; the job page
//! answers only with the right token, so knowing a job id is not enough to read its log.
//!
//! That link is view-only: it goes to the whole channel. A *developer link* adds `&d={grant}`,
//! a separately signed grant naming the chat user it was made for and when it expires
//! ([`DeveloperGrant`]). It shows the page's Cancel button; the cancel runs as that user, so
//! their role is checked again when they press it (a user demoted since cannot cancel).

use chatops_core::{JobId, PlatformId, UserId};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime};

/// How long a developer link works: a working day; after that, ask chat for a new one.
pub const DEVELOPER_LINK_TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// Who a developer link was made for, as its grant says once verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeveloperGrant {
    pub platform: PlatformId,
    pub user: UserId,
    /// Unix seconds after which the grant is refused.
    pub expires: u64,
}

/// Signs and checks job-page tokens with a server-side key.
#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
    public_url: String,
}

impl LinkSigner {
    pub fn new(key: Vec<u8>, public_url: &str) -> LinkSigner {
        LinkSigner {
            key,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    fn mac(&self, job: JobId) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(b"chatops job page\0");
        mac.update(job.0.to_string().as_bytes());
        mac
    }

    /// The token for a job's page (hex, 32 chars: 128 bits are plenty for an unguessable link).
    pub fn token(&self, job: JobId) -> String {
        let bytes = self.mac(job).finalize().into_bytes();
        hex::encode(&bytes[..16])
    }

    /// Checks a token in constant time.
    pub fn verify(&self, job: JobId, token: &str) -> bool {
        let Ok(given) = hex::decode(token) else {
            return false;
        };
        if given.len() != 16 {
            return false;
        }
        self.mac(job).verify_truncated_left(&given).is_ok()
    }

    /// The full link to a job's page.
    pub fn url(&self, job: JobId) -> String {
        format!("{}/jobs/{}?t={}", self.public_url, job, self.token(job))
    }

    fn grant_mac(&self, job: JobId, subject: &str, expires: u64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        // A different label from the view token's: neither can stand in for the other.
        mac.update(b"chatops developer link\0");
        mac.update(job.0.to_string().as_bytes());
        mac.update(b"\0");
        mac.update(subject.as_bytes());
        mac.update(b"\0");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// A developer grant for `user` on `platform`, valid for `ttl` from now:
    /// `EXPIRES.HEX(platform:user).MAC` (URL-safe as it is).
    pub fn developer_grant(
        &self,
        job: JobId,
        platform: &PlatformId,
        user: &UserId,
        ttl: Duration,
    ) -> String {
        let expires = unix(SystemTime::now() + ttl);
        let subject = format!("{platform}:{user}");
        let mac = self
            .grant_mac(job, &subject, expires)
            .finalize()
            .into_bytes();
        format!(
            "{expires}.{}.{}",
            hex::encode(subject.as_bytes()),
            hex::encode(&mac[..16])
        )
    }

    /// Checks a developer grant (in constant time) and that it has not expired at `now`.
    pub fn verify_developer(
        &self,
        job: JobId,
        grant: &str,
        now: SystemTime,
    ) -> Option<DeveloperGrant> {
        let mut parts = grant.splitn(3, '.');
        let expires: u64 = parts.next()?.parse().ok()?;
        let subject = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
        let given = hex::decode(parts.next()?).ok()?;
        if given.len() != 16 || expires <= unix(now) {
            return None;
        }
        self.grant_mac(job, &subject, expires)
            .verify_truncated_left(&given)
            .ok()?;
        let (platform, user) = subject.split_once(':')?;
        Some(DeveloperGrant {
            platform: PlatformId::new(platform),
            user: UserId::new(user),
            expires,
        })
    }

    /// The developer link to a job's page: the view link plus a grant for `user`.
    pub fn developer_url(&self, job: JobId, platform: &PlatformId, user: &UserId) -> String {
        format!(
            "{}&d={}",
            self.url(job),
            self.developer_grant(job, platform, user, DEVELOPER_LINK_TTL)
        )
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_job() {
        let signer = LinkSigner::new(b"key".to_vec(), "http://x:1/");
        let t = signer.token(JobId(7));
        assert!(signer.verify(JobId(7), &t));
        assert!(!signer.verify(JobId(8), &t));
        assert!(!signer.verify(JobId(7), "zz"));
        assert!(!signer.verify(JobId(7), &t[..10]));
        assert_eq!(signer.url(JobId(7)), format!("http://x:1/jobs/7?t={t}"));
        let other = LinkSigner::new(b"other".to_vec(), "http://x:1");
        assert!(!other.verify(JobId(7), &t));
    }

    #[test]
    fn developer_grants_name_their_user_expire_and_fit_only_their_job() {
        let signer = LinkSigner::new(b"key".to_vec(), "http://x:1");
        let slack = PlatformId::new("slack");
        let user = UserId::new("U1");
        let grant = signer.developer_grant(JobId(7), &slack, &user, Duration::from_secs(60));
        let now = SystemTime::now();
        let checked = signer
            .verify_developer(JobId(7), &grant, now)
            .expect("valid grant");
        assert_eq!(
            (checked.platform, checked.user),
            (slack.clone(), user.clone())
        );
        assert!(signer.verify_developer(JobId(8), &grant, now).is_none());
        assert!(signer
            .verify_developer(JobId(7), &grant, now + Duration::from_secs(61))
            .is_none());
        // The view token is no grant, and a grant with another user in it fails its MAC.
        assert!(signer
            .verify_developer(JobId(7), &signer.token(JobId(7)), now)
            .is_none());
        let mut parts: Vec<&str> = grant.split('.').collect();
        let forged = hex::encode("slack:U2");
        parts[1] = &forged;
        assert!(signer
            .verify_developer(JobId(7), &parts.join("."), now)
            .is_none());
        assert!(signer.verify_developer(JobId(7), "1.2.3", now).is_none());
        let url = signer.developer_url(JobId(7), &slack, &user);
        assert!(url.starts_with(&signer.url(JobId(7))), "{url}");
        assert!(url.contains("&d="), "{url}");
    }
}

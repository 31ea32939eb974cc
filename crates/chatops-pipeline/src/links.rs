//! Signed links to job pages. A reply carries `{public_url}/jobs/{id}?t={token}`; the job page
//! answers only with the right token, so knowing a job id is not enough to read its log.

use chatops_core::JobId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

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
}

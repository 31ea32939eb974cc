//! Runner and job tokens: random url-safe strings with GitLab's prefixes (`glrt-` so
//! `gitlab-runner register --token` verifies instead of registering, `glcbt-` so the runner's
//! `token_mask_prefixes` masks job tokens), hashed for storage, compared in constant time.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `n` random url-safe characters.
fn random_chars(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if let Err(e) = getrandom::fill(&mut bytes) {
        // The OS has no randomness to give: no token may be minted from anything weaker.
        panic!("the operating system's random number generator failed: {e}");
    }
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect()
}

/// A new runner authentication token: `glrt-` and 24 random url-safe characters (144 bits),
/// for `chatops runner-token create`.
pub fn new_runner_token() -> String {
    format!("glrt-{}", random_chars(24))
}

/// A new job token (`glcbt-…`, 144 random bits), one per attempt.
pub(crate) fn new_job_token() -> String {
    format!("glcbt-{}", random_chars(24))
}

/// SHA-256 of a token, lowercase hex: what the store keeps.
pub(crate) fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether `token` hashes to `stored`, in time independent of where they differ.
pub(crate) fn matches(token: &str, stored: &str) -> bool {
    hash(token).as_bytes().ct_eq(stored.as_bytes()).into()
}

/// Whether two secrets are equal, in time independent of where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_prefixes_are_url_safe_and_differ() {
        let a = new_runner_token();
        let b = new_runner_token();
        assert!(a.starts_with("glrt-") && a.len() == 29, "{a}");
        assert_ne!(a, b);
        let j = new_job_token();
        assert!(j.starts_with("glcbt-"), "{j}");
        assert!(j[6..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn a_token_matches_only_its_own_hash() {
        let t = new_job_token();
        let h = hash(&t);
        assert!(matches(&t, &h));
        assert!(!matches(&new_job_token(), &h));
        assert!(!h.contains(&t));
    }
}

//! The control token: made with the OS's CSPRNG for `--token auto`, and
//! compared without telling, by timing, how much of a guess was right or
//! how long the token is.

use ring::digest::{SHA256, digest};

/// On an address beyond loopback a token must be at least this long.
pub const MIN_NETWORK_TOKEN: usize = 16;
/// Random bytes in a generated token (160 bits), written as hex.
const GENERATED_BYTES: usize = 20;

/// A fresh token for `--token auto`: 40 hex digits, URL-safe as it is.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; GENERATED_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| format!("cannot make a random token ({e}); pass --token SECRET instead"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The configured token, kept only as its SHA-256 digest. A guess is
/// hashed and the two fixed-size digests are compared in full, so the time
/// taken depends on neither the token's length nor on where a guess first
/// differs.
#[derive(Clone)]
pub struct Secret {
    digest: [u8; 32],
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    pub fn new(token: &str) -> Self {
        Secret {
            digest: sha256(token.as_bytes()),
        }
    }

    pub fn matches(&self, given: &str) -> bool {
        let given = sha256(given.as_bytes());
        given
            .iter()
            .zip(&self.digest)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_exact_token() {
        let s = Secret::new("s3 cr&t-of-some-length");
        assert!(s.matches("s3 cr&t-of-some-length"));
        for guess in [
            "",
            "s",
            "s3 cr&t-of-some-lengtH",
            "s3 cr&t-of-some-length ",
            "s3 cr&t-of-some-lengt",
        ] {
            assert!(!s.matches(guess), "{guess:?}");
        }
        assert!(!format!("{s:?}").contains("s3"), "never printed");
    }

    #[test]
    fn generated_tokens_are_long_distinct_and_url_safe() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.len(), 2 * GENERATED_BYTES);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}

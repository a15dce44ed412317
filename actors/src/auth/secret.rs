//! Random secrets (session ids, API tokens, setup codes) and the fast hash under which the
//! high-entropy ones are kept. Passwords are not handled here: they get argon2id
//! (`password.rs`), because a person picks them.

use blake2::{Blake2s256, Digest};
use subtle::ConstantTimeEq;

/// Bytes in a session id or an API token: 256 bits, far beyond guessing.
pub const SECRET_BYTES: usize = 32;

#[derive(Debug)]
pub struct RandomError(getrandom::Error);

impl std::fmt::Display for RandomError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the system random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomError {}

/// `N` bytes from the operating system's random source.
pub fn random<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(RandomError)?;
    Ok(b)
}

/// A fresh 256-bit secret as 64 lowercase hex digits (what cookies and headers carry).
pub fn new_secret() -> Result<String, RandomError> {
    Ok(hex(&random::<SECRET_BYTES>()?))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// What a secret is stored and looked up under: its BLAKE2s-256 digest. A stolen accounts
/// file or a timing side channel in a map lookup then reveals nothing usable: the secrets
/// have 256 bits of entropy, so a fast hash is enough (no salt or work factor needed).
pub type SecretKey = [u8; 32];

pub fn secret_key(secret: &str) -> SecretKey {
    Blake2s256::digest(secret.as_bytes()).into()
}

/// Constant-time equality, for comparing secrets a client sent with ours.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// True for a string that looks like one of our secrets (so junk is refused before hashing).
pub fn well_formed(s: &str) -> bool {
    s.len() == SECRET_BYTES * 2 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_hex_of_256_bits() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(well_formed(&a), "{a}");
        assert!(!well_formed("abc"));
        assert!(!well_formed(&"g".repeat(64)));
        assert_eq!(hex(&[0, 0xff, 0x1a]), "00ff1a");
    }

    #[test]
    fn keys_differ_for_different_secrets_and_compare_in_constant_time() {
        assert_ne!(secret_key("a"), secret_key("b"));
        assert_eq!(secret_key("a"), secret_key("a"));
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"ab"));
    }
}

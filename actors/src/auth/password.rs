//! Password hashing: argon2id, its parameters recorded in each hash (PHC string format), so a
//! later change of the defaults still verifies old hashes.
//!
//! The memory cost is what a hash costs in RAM while it runs, and the daemon's peak is its idle
//! level plus that (hashes run one at a time on the auth thread, `hasher.rs`). 4 MiB with 9
//! passes does about the work of OWASP's "19 MiB, 2 passes" (36 MiB·passes) while keeping the
//! peak within 4–5 MB of idle on a board whose whole budget is single-digit megabytes. Less
//! memory per guess helps a GPU attacker somewhat; the throttle (`throttle.rs`) and TLS are the
//! main defence of the login, and `nanokvmd user passwd` rehashes with whatever is default then.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::secret::{random, RandomError};

/// KiB of memory per hash.
pub const MEMORY_KIB: u32 = 4 * 1024;
/// Passes over that memory.
pub const PASSES: u32 = 9;
/// Lanes: the board has one core.
pub const LANES: u32 = 1;
/// A hash read from a file may not ask for more memory than this (a damaged or hostile file
/// must not make a login take the board's RAM).
const MAX_MEMORY_KIB: u32 = 64 * 1024;
const MAX_PASSES: u32 = 64;

pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;

#[derive(Debug)]
pub enum PasswordError {
    TooShort,
    TooLong,
    Random(RandomError),
    /// The stored hash is not an argon2id PHC string we accept.
    BadHash(String),
    Hashing(String),
}

impl std::fmt::Display for PasswordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordError::TooShort => {
                write!(f, "a password needs at least {MIN_PASSWORD} characters")
            }
            PasswordError::TooLong => write!(f, "a password may have at most {MAX_PASSWORD} bytes"),
            PasswordError::Random(e) => write!(f, "{e}"),
            PasswordError::BadHash(m) => write!(f, "stored password hash refused: {m}"),
            PasswordError::Hashing(m) => write!(f, "password hashing failed: {m}"),
        }
    }
}

impl std::error::Error for PasswordError {}

/// Checks the rules a new password must meet.
pub fn check_new(password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

fn hasher(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a new password with the default parameters and a fresh 128-bit salt.
pub fn hash(password: &str) -> Result<String, PasswordError> {
    check_new(password)?;
    hash_with(password, MEMORY_KIB, PASSES)
}

fn hash_with(password: &str, memory_kib: u32, passes: u32) -> Result<String, PasswordError> {
    let params = Params::new(memory_kib, passes, LANES, None)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    let salt = SaltString::encode_b64(&random::<16>().map_err(PasswordError::Random)?)
        .map_err(|e| PasswordError::Hashing(e.to_string()))?;
    hasher(params)
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hashing(e.to_string()))
}

/// Checks that `phc` is an argon2id hash with bounded parameters.
pub fn parse(phc: &str) -> Result<PasswordHash<'_>, PasswordError> {
    let parsed = PasswordHash::new(phc).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(PasswordError::BadHash(format!(
            "algorithm {} (only argon2id is accepted)",
            parsed.algorithm
        )));
    }
    let params = Params::try_from(&parsed).map_err(|e| PasswordError::BadHash(e.to_string()))?;
    if params.m_cost() > MAX_MEMORY_KIB || params.t_cost() > MAX_PASSES {
        return Err(PasswordError::BadHash(format!(
            "m={} t={} exceeds m={MAX_MEMORY_KIB} t={MAX_PASSES}",
            params.m_cost(),
            params.t_cost()
        )));
    }
    Ok(parsed)
}

/// True when `password` matches `phc` (with the parameters recorded in `phc`).
pub fn verify(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let parsed = parse(phc)?;
    if password.len() > MAX_PASSWORD {
        return Ok(false);
    }
    // The verifier takes algorithm, version and parameters from the hash itself.
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// A hash of a password nobody knows, verified when the account does not exist so that an
/// unknown user name costs the same time as a wrong password.
pub fn decoy() -> &'static str {
    "$argon2id$v=19$m=4096,t=9,p=1$ZGVjb3ktc2FsdC1ub3QtdXNlZA$/Y3cNXYEDXoQ2BnBozLPqyGpH5o9IRt5ISfXLMWRBVs"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_records_its_parameters_and_verifies() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=4096,t=9,p=1$"), "{h}");
        assert!(verify("correct horse", &h).unwrap());
        assert!(!verify("correct hors", &h).unwrap());
        // Two hashes of one password differ (fresh salt).
        assert_ne!(h, hash("correct horse").unwrap());
    }

    #[test]
    fn old_parameters_still_verify() {
        let h = hash_with("an older password", 1024, 2).unwrap();
        assert!(h.contains("m=1024,t=2"), "{h}");
        assert!(verify("an older password", &h).unwrap());
    }

    #[test]
    fn weak_or_hostile_hashes_are_refused() {
        assert!(verify("x", "plain").is_err());
        let argon2i =
            "$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(verify("x", argon2i).is_err());
        let huge = "$argon2id$v=19$m=4194304,t=3,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(verify("x", huge).is_err());
    }

    #[test]
    fn the_decoy_is_a_valid_hash_that_matches_nothing_plausible() {
        assert!(!verify("password", decoy()).unwrap());
    }

    #[test]
    fn password_rules() {
        assert!(matches!(check_new("short"), Err(PasswordError::TooShort)));
        assert!(check_new("long enough").is_ok());
        assert!(matches!(
            check_new(&"x".repeat(300)),
            Err(PasswordError::TooLong)
        ));
    }
}

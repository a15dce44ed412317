//! The accounts and API tokens, as kept in `accounts.json` in the data directory. Pure data:
//! reading and writing the file is `store.rs`'s business, hashing is `password.rs`'s.

use serde::{Deserialize, Serialize};

use super::secret::{hex, secret_key, SecretKey};

const FORMAT_VERSION: u32 = 1;
/// Names of users and tokens: what shows up in logs and in `nanokvmd token revoke NAME`.
pub const MAX_NAME: usize = 32;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// argon2id in PHC string form: algorithm, version, parameters, salt and hash.
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    pub name: String,
    /// BLAKE2s-256 of the token, hex: the token itself is shown once and never stored.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accounts {
    version: u32,
    pub users: Vec<User>,
    #[serde(default)]
    pub tokens: Vec<Token>,
}

#[derive(Debug, PartialEq)]
pub enum AccountsError {
    Parse(String),
    Version(u32),
    BadName(String),
    Duplicate(String),
    NoSuchUser(String),
    NoSuchToken(String),
}

impl std::fmt::Display for AccountsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountsError::Parse(e) => write!(f, "not a valid accounts file: {e}"),
            AccountsError::Version(v) => {
                write!(f, "accounts file version {v}; this build reads {FORMAT_VERSION}")
            }
            AccountsError::BadName(n) => write!(
                f,
                "{n:?} is not a valid name: 1..={MAX_NAME} of A-Z a-z 0-9 _ . -, starting with a letter or digit"
            ),
            AccountsError::Duplicate(n) => write!(f, "{n:?} exists already"),
            AccountsError::NoSuchUser(n) => write!(f, "no user {n:?}"),
            AccountsError::NoSuchToken(n) => write!(f, "no token {n:?}"),
        }
    }
}

impl std::error::Error for AccountsError {}

pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    name.len() <= MAX_NAME
        && bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn check_name(name: &str) -> Result<(), AccountsError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(AccountsError::BadName(name.into()))
    }
}

impl Accounts {
    pub fn new() -> Self {
        Self {
            version: FORMAT_VERSION,
            users: Vec::new(),
            tokens: Vec::new(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, AccountsError> {
        let a: Accounts =
            serde_json::from_slice(bytes).map_err(|e| AccountsError::Parse(e.to_string()))?;
        if a.version != FORMAT_VERSION {
            return Err(AccountsError::Version(a.version));
        }
        for name in a
            .users
            .iter()
            .map(|u| &u.name)
            .chain(a.tokens.iter().map(|t| &t.name))
        {
            check_name(name)?;
        }
        Ok(a)
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn add_user(&mut self, name: &str, password_hash: String) -> Result<(), AccountsError> {
        check_name(name)?;
        if self.user(name).is_some() {
            return Err(AccountsError::Duplicate(name.into()));
        }
        self.users.push(User {
            name: name.into(),
            password: password_hash,
        });
        Ok(())
    }

    pub fn set_password(&mut self, name: &str, password_hash: String) -> Result<(), AccountsError> {
        let user = self
            .users
            .iter_mut()
            .find(|u| u.name == name)
            .ok_or_else(|| AccountsError::NoSuchUser(name.into()))?;
        user.password = password_hash;
        Ok(())
    }

    /// Adds (or replaces, revoking the old one) the token `name` for the given secret.
    pub fn set_token(&mut self, name: &str, secret: &str) -> Result<(), AccountsError> {
        check_name(name)?;
        let hash = hex(&secret_key(secret));
        match self.tokens.iter_mut().find(|t| t.name == name) {
            Some(t) => t.hash = hash,
            None => self.tokens.push(Token {
                name: name.into(),
                hash,
            }),
        }
        Ok(())
    }

    pub fn revoke_token(&mut self, name: &str) -> Result<(), AccountsError> {
        let before = self.tokens.len();
        self.tokens.retain(|t| t.name != name);
        if self.tokens.len() == before {
            return Err(AccountsError::NoSuchToken(name.into()));
        }
        Ok(())
    }

    /// The name of the token whose secret hashes to `key`.
    pub fn token_for(&self, key: &SecretKey) -> Option<&str> {
        let wanted = hex(key);
        self.tokens
            .iter()
            .find(|t| super::secret::same_secret(t.hash.as_bytes(), wanted.as_bytes()))
            .map(|t| t.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["admin", "a", "ops.team-1", "A_b", &"x".repeat(32)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "with space",
            "é",
            &"x".repeat(33),
            "a/b",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn users_and_tokens_round_trip_through_json() {
        let mut a = Accounts::new();
        a.add_user("admin", "$argon2id$x".into()).unwrap();
        assert_eq!(
            a.add_user("admin", "y".into()),
            Err(AccountsError::Duplicate("admin".into()))
        );
        a.set_token("ffmpeg", "secret-one").unwrap();
        a.set_password("admin", "$argon2id$z".into()).unwrap();
        let b = Accounts::parse(&a.to_json()).unwrap();
        assert_eq!(a, b);
        assert_eq!(b.user("admin").unwrap().password, "$argon2id$z");
        assert_eq!(b.token_for(&secret_key("secret-one")), Some("ffmpeg"));
        assert_eq!(b.token_for(&secret_key("secret-two")), None);
        // The file never holds the token itself.
        assert!(!String::from_utf8_lossy(&a.to_json()).contains("secret-one"));
    }

    #[test]
    fn a_replaced_token_stops_working_and_revocation_removes_it() {
        let mut a = Accounts::new();
        a.set_token("t", "old").unwrap();
        a.set_token("t", "new").unwrap();
        assert_eq!(a.tokens.len(), 1);
        assert_eq!(a.token_for(&secret_key("old")), None);
        a.revoke_token("t").unwrap();
        assert_eq!(a.token_for(&secret_key("new")), None);
        assert_eq!(
            a.revoke_token("t"),
            Err(AccountsError::NoSuchToken("t".into()))
        );
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(matches!(
            Accounts::parse(b"{\"version\":1,\"users\":[{\"name\":\"a\""),
            Err(AccountsError::Parse(_))
        ));
        assert_eq!(
            Accounts::parse(b"{\"version\":7,\"users\":[]}"),
            Err(AccountsError::Version(7))
        );
        assert!(matches!(
            Accounts::parse(b"{\"version\":1,\"users\":[{\"name\":\"../x\",\"password\":\"p\"}]}"),
            Err(AccountsError::BadName(_))
        ));
    }
}

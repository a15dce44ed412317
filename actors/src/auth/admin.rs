//! The account commands for scripts: `nanokvmd user add|passwd NAME --password-stdin` and
//! `nanokvmd token new|revoke NAME`. They edit the accounts file in the data directory
//! directly (atomically); a running daemon notices within a second.

use std::io::{BufRead, Write};
use std::path::Path;

use super::accounts::AccountsError;
use super::store::{self, ACCOUNTS_FILE, SETUP_CODE_FILE};
use super::{load_accounts, password, secret, AuthError};

/// One line from standard input, without its line ending.
pub fn read_password(input: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading the password from standard input: {e}"))?;
    let pw = line.strip_suffix('\n').unwrap_or(&line);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Ok(pw.to_string())
}

fn save(dir: &Path, accounts: &super::accounts::Accounts) -> Result<(), AuthError> {
    store::ensure_dir(dir).map_err(AuthError::Store)?;
    store::write_atomic(&dir.join(ACCOUNTS_FILE), &accounts.to_json()).map_err(AuthError::Store)
}

fn accounts_err(dir: &Path) -> impl Fn(AccountsError) -> AuthError + '_ {
    move |e| AuthError::Accounts(dir.join(ACCOUNTS_FILE), e)
}

pub fn user_add(dir: &Path, name: &str, pw: &str) -> Result<(), AuthError> {
    let path = dir.join(ACCOUNTS_FILE);
    let mut accounts = load_accounts(&path)?;
    if accounts.user(name).is_some() {
        return Err(accounts_err(dir)(AccountsError::Duplicate(name.into())));
    }
    let hash = password::hash(pw)?;
    accounts.add_user(name, hash).map_err(accounts_err(dir))?;
    save(dir, &accounts)?;
    // Setup is over once an account exists.
    let _ = std::fs::remove_file(dir.join(SETUP_CODE_FILE));
    Ok(())
}

pub fn user_passwd(dir: &Path, name: &str, pw: &str) -> Result<(), AuthError> {
    let mut accounts = load_accounts(&dir.join(ACCOUNTS_FILE))?;
    if accounts.user(name).is_none() {
        return Err(accounts_err(dir)(AccountsError::NoSuchUser(name.into())));
    }
    let hash = password::hash(pw)?;
    accounts
        .set_password(name, hash)
        .map_err(accounts_err(dir))?;
    save(dir, &accounts)
}

/// Makes (or replaces) the token `name`; returns the token, which is not stored anywhere.
pub fn token_new(dir: &Path, name: &str) -> Result<String, AuthError> {
    let mut accounts = load_accounts(&dir.join(ACCOUNTS_FILE))?;
    let token = secret::new_secret().map_err(AuthError::Random)?;
    accounts
        .set_token(name, &token)
        .map_err(accounts_err(dir))?;
    save(dir, &accounts)?;
    Ok(token)
}

pub fn token_revoke(dir: &Path, name: &str) -> Result<(), AuthError> {
    let mut accounts = load_accounts(&dir.join(ACCOUNTS_FILE))?;
    accounts.revoke_token(name).map_err(accounts_err(dir))?;
    save(dir, &accounts)
}

/// Prints a new token on stdout (alone on its line, for scripts) and how to use it on stderr.
pub fn print_token(name: &str, token: &str) {
    let _ = writeln!(std::io::stdout(), "{token}");
    eprintln!(
        "token {name:?} created; it is shown only now. Use it as `Authorization: Bearer <token>`, e.g.\n  \
         ffmpeg -headers 'Authorization: Bearer <token>' -i https://HOST/api/stream/h264 ..."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("nanokvmd-admin-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn commands_edit_the_accounts_file() {
        let d = scratch("cmds");
        user_add(&d, "admin", "a good password").unwrap();
        assert!(user_add(&d, "admin", "another password").is_err());
        assert!(matches!(
            user_add(&d, "bob", "short"),
            Err(AuthError::Password(password::PasswordError::TooShort))
        ));
        user_passwd(&d, "admin", "a better password").unwrap();
        assert!(user_passwd(&d, "nobody", "a better password").is_err());
        let token = token_new(&d, "ffmpeg").unwrap();
        let a = load_accounts(&d.join(ACCOUNTS_FILE)).unwrap();
        assert!(password::verify("a better password", &a.user("admin").unwrap().password).unwrap());
        assert_eq!(a.token_for(&secret::secret_key(&token)), Some("ffmpeg"));
        token_revoke(&d, "ffmpeg").unwrap();
        assert!(token_revoke(&d, "ffmpeg").is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_password_is_one_line_of_stdin() {
        let mut input = std::io::Cursor::new(b"pass word\r\nnext".to_vec());
        assert_eq!(read_password(&mut input).unwrap(), "pass word");
    }
}

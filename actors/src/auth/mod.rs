//! Who may use the console: accounts with argon2id passwords, API tokens for tools, login
//! sessions held server-side, login throttling, and the one-time setup code that lets the
//! first admin be created. The pure parts (`accounts`, `sessions`, `throttle`, `password`,
//! `secret`) know nothing of I/O or the clock; `Auth` wires them to the clock, the data
//! directory and the auth thread (`worker`), and tells open WebSockets when their credential
//! is revoked. HTTP (cookies, headers) stays in `web/`.

pub mod accounts;
pub mod admin;
pub mod password;
pub mod secret;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod worker;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::time::Duration;

use async_channel::Receiver;
use event_listener::Event;
use futures_lite::future;

use crate::clock::{Clock, Micros};
use accounts::{Accounts, AccountsError};
use password::PasswordError;
use secret::{secret_key, well_formed, SecretKey};
pub use sessions::SessionLimits;
use sessions::Sessions;
use store::{FileStamp, StoreError, ACCOUNTS_FILE, SETUP_CODE_FILE};
use throttle::{AccountKey, Throttle, TryLater};
use worker::{AuthWorker, WorkerError};

/// How often expired sessions are closed and the accounts file is checked for changes made by
/// `nanokvmd user ...`/`token ...`: a revoked credential's WebSockets close within this.
const SWEEP_INTERVAL: Duration = Duration::from_millis(500);
/// A live console moves its session's idle timeout on at most this often (or four times per
/// idle timeout, when that is shorter).
const TOUCH_INTERVAL_US: Micros = 10_000_000;

#[derive(Debug)]
pub enum AuthError {
    Store(StoreError),
    Accounts(PathBuf, AccountsError),
    Password(PasswordError),
    Worker(WorkerError),
    Random(secret::RandomError),
    /// Wrong user name or password, or a wrong setup code: deliberately not saying which.
    Refused,
    /// Throttled: too many failures from this address or for this account.
    TryLater(TryLater),
    /// Setup is over (an account exists).
    SetupDone,
    /// The credential cannot do this (a token has no password to change).
    NotAUser,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Store(e) => write!(f, "{e}"),
            AuthError::Accounts(p, e) => write!(f, "{}: {e}", p.display()),
            AuthError::Password(e) => write!(f, "{e}"),
            AuthError::Worker(e) => write!(f, "{e}"),
            AuthError::Random(e) => write!(f, "{e}"),
            AuthError::Refused => write!(f, "wrong user name or password"),
            AuthError::TryLater(t) => write!(
                f,
                "too many failed attempts; try again in {} s",
                t.wait_us.div_ceil(1_000_000)
            ),
            AuthError::SetupDone => write!(f, "setup is done: an account exists; log in"),
            AuthError::NotAUser => write!(f, "only a logged-in user can do this"),
        }
    }
}

impl std::error::Error for AuthError {}

impl From<WorkerError> for AuthError {
    fn from(e: WorkerError) -> Self {
        AuthError::Worker(e)
    }
}

impl From<PasswordError> for AuthError {
    fn from(e: PasswordError) -> Self {
        AuthError::Password(e)
    }
}

/// Reads the accounts file; a missing file is an empty set of accounts.
pub fn load_accounts(path: &Path) -> Result<Accounts, AuthError> {
    match store::read_optional(path).map_err(AuthError::Store)? {
        None => Ok(Accounts::new()),
        Some(bytes) => {
            Accounts::parse(&bytes).map_err(|e| AuthError::Accounts(path.to_path_buf(), e))
        }
    }
}

/// What a request or WebSocket was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A login session (cookie), by the digest of its id.
    Session(SecretKey),
    /// An API token, by its name.
    Token(String),
}

/// Who is calling, and how they proved it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's name, or the token's.
    pub name: String,
    pub credential: Credential,
}

impl Caller {
    pub fn is_session(&self) -> bool {
        matches!(self.credential, Credential::Session(_))
    }
}

/// A new login session: the id for the cookie and its user.
#[derive(Debug)]
pub struct NewSession {
    pub id: String,
    pub user: String,
}

struct RevocationInner {
    revoked: Cell<bool>,
    event: Event,
}

/// Completes when the credential a WebSocket was opened with is revoked or expires.
#[derive(Clone)]
pub struct Revocation(Rc<RevocationInner>);

impl Revocation {
    pub async fn revoked(&self) {
        loop {
            if self.0.revoked.get() {
                return;
            }
            let listener = self.0.event.listen();
            if self.0.revoked.get() {
                return;
            }
            listener.await;
        }
    }
}

/// What a WebSocket session holds of its authentication: the signal that ends it, and a way
/// to keep its login session alive while the console is in use.
#[derive(Clone)]
pub struct SessionGuard {
    auth: Rc<Auth>,
    credential: Credential,
    revocation: Revocation,
    last_touch: Rc<Cell<Micros>>,
}

impl SessionGuard {
    pub async fn revoked(&self) {
        self.revocation.revoked().await
    }

    /// The client is active: moves the login session's idle timeout on (at most every 10 s).
    /// A session that ended meanwhile is signalled at once.
    pub fn activity(&self, now: Micros) {
        let every = TOUCH_INTERVAL_US.min(self.auth.limits().idle_us / 4);
        if now.saturating_sub(self.last_touch.get()) < every {
            return;
        }
        self.last_touch.set(now);
        if let Credential::Session(key) = &self.credential {
            if self
                .auth
                .state
                .borrow_mut()
                .sessions
                .touch(key, now)
                .is_none()
            {
                self.auth.signal(std::slice::from_ref(&self.credential));
            }
        }
    }
}

struct State {
    accounts: Accounts,
    /// Bumped by every change made here, so a reload started before it is not applied.
    generation: u64,
    stamp: Option<FileStamp>,
    sessions: Sessions,
    throttle: Throttle,
    setup_code: Option<String>,
    revocations: HashMap<Credential, Weak<RevocationInner>>,
}

pub struct Auth {
    dir: PathBuf,
    worker: AuthWorker,
    clock: Clock,
    state: RefCell<State>,
}

impl Auth {
    /// Loads the accounts from `dir` (creating it). Without any account, makes a one-time
    /// setup code and writes it to `dir/setup-code` (mode 0600). Runs before the executor.
    pub fn open(
        dir: &Path,
        limits: SessionLimits,
        clock: Clock,
        worker: AuthWorker,
    ) -> Result<Auth, AuthError> {
        store::ensure_dir(dir).map_err(AuthError::Store)?;
        let path = dir.join(ACCOUNTS_FILE);
        let stamp = store::stamp(&path);
        let accounts = load_accounts(&path)?;
        let setup_code = if accounts.users.is_empty() {
            let code = secret::hex(&secret::random::<16>().map_err(AuthError::Random)?);
            store::write_atomic(&dir.join(SETUP_CODE_FILE), format!("{code}\n").as_bytes())
                .map_err(AuthError::Store)?;
            Some(code)
        } else {
            let _ = std::fs::remove_file(dir.join(SETUP_CODE_FILE));
            None
        };
        Ok(Auth {
            dir: dir.to_path_buf(),
            worker,
            clock,
            state: RefCell::new(State {
                accounts,
                generation: 0,
                stamp,
                sessions: Sessions::new(limits),
                throttle: Throttle::new(),
                setup_code,
                revocations: HashMap::new(),
            }),
        })
    }

    /// The one-time setup code while no account exists.
    pub fn setup_code(&self) -> Option<String> {
        self.state.borrow().setup_code.clone()
    }

    pub fn setup_pending(&self) -> bool {
        self.state.borrow().accounts.users.is_empty()
    }

    pub fn limits(&self) -> SessionLimits {
        self.state.borrow().sessions.limits()
    }

    /// Checks a bearer token or a session cookie's id (the token wins when both are sent).
    /// A valid session's idle timeout moves on.
    pub fn authenticate(&self, bearer: Option<&str>, session_id: Option<&str>) -> Option<Caller> {
        let mut st = self.state.borrow_mut();
        if let Some(token) = bearer {
            if !well_formed(token) {
                return None;
            }
            let name = st.accounts.token_for(&secret_key(token))?.to_string();
            return Some(Caller {
                credential: Credential::Token(name.clone()),
                name,
            });
        }
        let id = session_id.filter(|id| well_formed(id))?;
        let key = secret_key(id);
        let user = st.sessions.touch(&key, self.clock.now_us())?;
        Some(Caller {
            name: user,
            credential: Credential::Session(key),
        })
    }

    /// Seconds left in a login session if nothing happens.
    pub fn remaining_secs(&self, caller: &Caller) -> Option<u64> {
        match &caller.credential {
            Credential::Session(key) => self
                .state
                .borrow()
                .sessions
                .remaining_us(key, self.clock.now_us())
                .map(|us| us / 1_000_000),
            Credential::Token(_) => None,
        }
    }

    fn account_key(&self, user: &str) -> (AccountKey, Option<String>) {
        match self.state.borrow().accounts.user(user) {
            Some(u) => (AccountKey::Known(user.into()), Some(u.password.clone())),
            None => (AccountKey::Unknown, None),
        }
    }

    /// Counts an attempt as a failure before it is checked (so parallel guesses are throttled
    /// too); a success clears it again.
    fn begin_attempt(&self, ip: IpAddr, account: &AccountKey) -> Result<(), AuthError> {
        let now = self.clock.now_us();
        let mut st = self.state.borrow_mut();
        st.throttle
            .check(ip, account, now)
            .map_err(AuthError::TryLater)?;
        st.throttle.failure(ip, account.clone(), now);
        Ok(())
    }

    fn new_session(&self, user: &str) -> Result<NewSession, AuthError> {
        let id = secret::new_secret().map_err(AuthError::Random)?;
        let now = self.clock.now_us();
        let evicted = self
            .state
            .borrow_mut()
            .sessions
            .create(secret_key(&id), user, now);
        if let Some(k) = evicted {
            self.signal(&[Credential::Session(k)]);
        }
        Ok(NewSession {
            id,
            user: user.into(),
        })
    }

    /// Checks a user name and password; a new session on success.
    pub async fn login(
        &self,
        ip: IpAddr,
        user: &str,
        password: String,
    ) -> Result<NewSession, AuthError> {
        let (account, hash) = self.account_key(user);
        self.begin_attempt(ip, &account)?;
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| password::decoy().to_string());
        let ok = self
            .worker
            .run(move || password::verify(&password, &hash))
            .await??;
        if ok && known {
            self.state.borrow_mut().throttle.success(ip, &account);
            log::info!("login: {user:?} from {ip}");
            self.new_session(user)
        } else {
            log::warn!(
                "login refused from {ip} for {user:?}: {}",
                if known {
                    "wrong password"
                } else {
                    "no such user"
                }
            );
            Err(AuthError::Refused)
        }
    }

    /// Creates the first admin with the one-time setup code; logs them in.
    pub async fn setup(
        &self,
        ip: IpAddr,
        code: &str,
        user: &str,
        password: String,
    ) -> Result<NewSession, AuthError> {
        self.begin_attempt(ip, &AccountKey::Unknown)?;
        let expected = self.setup_code().ok_or(AuthError::SetupDone)?;
        if !secret::same_secret(code.trim().as_bytes(), expected.as_bytes()) {
            log::warn!("setup refused from {ip}: wrong setup code");
            return Err(AuthError::Refused);
        }
        if !accounts::valid_name(user) {
            return Err(AuthError::Accounts(
                self.accounts_path(),
                AccountsError::BadName(user.into()),
            ));
        }
        let hash = self.worker.run(move || password::hash(&password)).await??;
        {
            let mut st = self.state.borrow_mut();
            if !st.accounts.users.is_empty() {
                return Err(AuthError::SetupDone);
            }
            st.accounts
                .add_user(user, hash)
                .map_err(|e| AuthError::Accounts(self.accounts_path(), e))?;
            st.setup_code = None;
            st.throttle.success(ip, &AccountKey::Unknown);
        }
        self.save().await?;
        let code_file = self.dir.join(SETUP_CODE_FILE);
        let _ = self
            .worker
            .run(move || std::fs::remove_file(code_file))
            .await;
        log::info!("setup: created the first admin {user:?} from {ip}");
        self.new_session(user)
    }

    /// Changes the caller's password after checking the current one; ends every other
    /// session of that user (their WebSockets close).
    pub async fn change_password(
        &self,
        ip: IpAddr,
        caller: &Caller,
        current: String,
        new: String,
    ) -> Result<(), AuthError> {
        let Credential::Session(keep) = caller.credential else {
            return Err(AuthError::NotAUser);
        };
        password::check_new(&new)?;
        let (account, hash) = self.account_key(&caller.name);
        let hash = hash.ok_or(AuthError::NotAUser)?;
        self.begin_attempt(ip, &account)?;
        let new_hash = self
            .worker
            .run(move || {
                if password::verify(&current, &hash)? {
                    password::hash(&new).map(Some)
                } else {
                    Ok(None)
                }
            })
            .await??;
        let Some(new_hash) = new_hash else {
            log::warn!(
                "password change refused for {:?} from {ip}: wrong current password",
                caller.name
            );
            return Err(AuthError::Refused);
        };
        let ended = {
            let mut st = self.state.borrow_mut();
            st.throttle.success(ip, &account);
            st.accounts
                .set_password(&caller.name, new_hash)
                .map_err(|e| AuthError::Accounts(self.accounts_path(), e))?;
            st.sessions.revoke_user(&caller.name, Some(&keep))
        };
        self.signal_sessions(ended);
        self.save().await?;
        log::info!("password changed for {:?}", caller.name);
        Ok(())
    }

    /// Ends a login session (logout).
    pub fn logout(&self, caller: &Caller) {
        if let Credential::Session(key) = &caller.credential {
            self.state.borrow_mut().sessions.revoke(key);
            self.signal(std::slice::from_ref(&caller.credential));
        }
    }

    /// The guard a WebSocket session holds for `caller`'s credential.
    pub fn guard(self: &Rc<Self>, caller: &Caller) -> SessionGuard {
        let mut st = self.state.borrow_mut();
        let inner = st
            .revocations
            .get(&caller.credential)
            .and_then(Weak::upgrade)
            .unwrap_or_else(|| {
                let inner = Rc::new(RevocationInner {
                    revoked: Cell::new(false),
                    event: Event::new(),
                });
                st.revocations
                    .insert(caller.credential.clone(), Rc::downgrade(&inner));
                inner
            });
        SessionGuard {
            auth: self.clone(),
            credential: caller.credential.clone(),
            revocation: Revocation(inner),
            last_touch: Rc::new(Cell::new(self.clock.now_us())),
        }
    }

    /// Tells the WebSockets opened with these credentials that they are revoked.
    fn signal(&self, credentials: &[Credential]) {
        let st = self.state.borrow();
        for c in credentials {
            if let Some(inner) = st.revocations.get(c).and_then(Weak::upgrade) {
                inner.revoked.set(true);
                inner.event.notify(usize::MAX);
            }
        }
    }

    fn signal_sessions(&self, keys: Vec<SecretKey>) {
        let creds: Vec<Credential> = keys.into_iter().map(Credential::Session).collect();
        self.signal(&creds);
    }

    fn accounts_path(&self) -> PathBuf {
        self.dir.join(ACCOUNTS_FILE)
    }

    /// Writes the accounts (on the auth thread: the fsyncs may take a while on an SD card).
    async fn save(&self) -> Result<(), AuthError> {
        let json = {
            let mut st = self.state.borrow_mut();
            st.generation += 1;
            st.accounts.to_json()
        };
        let path = self.accounts_path();
        self.worker
            .run(move || store::write_atomic(&path, &json))
            .await?
            .map_err(AuthError::Store)
    }

    /// Every half second until shutdown: ends expired sessions and picks up changes to the
    /// accounts file made by the `nanokvmd user`/`token` commands (a changed password ends
    /// that user's sessions, a revoked token its streams). Two loops, so that a reload waiting
    /// behind a password hash on the auth thread never delays an expiry.
    pub async fn sweep(self: Rc<Self>, shutdown: Receiver<()>) {
        let expire = async {
            loop {
                smol::Timer::after(SWEEP_INTERVAL).await;
                let expired = self.state.borrow_mut().sessions.expire(self.clock.now_us());
                self.signal_sessions(expired);
                self.state
                    .borrow_mut()
                    .revocations
                    .retain(|_, w| w.strong_count() > 0);
            }
        };
        let reload = async {
            loop {
                smol::Timer::after(SWEEP_INTERVAL).await;
                self.reload().await;
            }
        };
        future::or(future::or(expire, reload), async {
            let _ = shutdown.recv().await;
        })
        .await;
    }

    async fn reload(&self) {
        let (since, generation) = {
            let st = self.state.borrow();
            (st.stamp, st.generation)
        };
        let path = self.accounts_path();
        let read = self
            .worker
            .run(move || {
                let now = store::stamp(&path);
                if now == since {
                    return None;
                }
                Some((now, load_accounts(&path)))
            })
            .await;
        let Ok(Some((stamp, loaded))) = read else {
            return;
        };
        let mut st = self.state.borrow_mut();
        if st.generation != generation {
            return; // changed here meanwhile; the next sweep reads the file again
        }
        st.stamp = stamp;
        let new = match loaded {
            Ok(a) if stamp.is_some() => a,
            Ok(_) => {
                log::warn!(
                    "{}: removed; keeping the accounts in memory",
                    self.accounts_path().display()
                );
                return;
            }
            Err(e) => {
                log::warn!("not reloading the accounts: {e}");
                return;
            }
        };
        let mut ended = Vec::new();
        for old in &st.accounts.users {
            if new.user(&old.name).map(|u| &u.password) != Some(&old.password) {
                log::info!("user {:?} changed outside: ending their sessions", old.name);
                ended.push(old.name.clone());
            }
        }
        let tokens: Vec<Credential> = st
            .accounts
            .tokens
            .iter()
            .filter(|t| !new.tokens.contains(t))
            .map(|t| Credential::Token(t.name.clone()))
            .collect();
        let mut sessions = Vec::new();
        for name in &ended {
            sessions.extend(st.sessions.revoke_user(name, None));
        }
        if !new.users.is_empty() {
            st.setup_code = None;
        }
        st.accounts = new;
        drop(st);
        self.signal_sessions(sessions);
        self.signal(&tokens);
    }
}

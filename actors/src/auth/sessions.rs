//! The login sessions: held here, server-side, keyed by the digest of a random 256-bit id the
//! browser keeps in a cookie. Each has an idle timeout (activity moves it on) and an absolute
//! limit (nothing moves it). Pure: time comes in as an argument.

use std::collections::HashMap;

use super::secret::SecretKey;
use crate::clock::Micros;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionLimits {
    pub idle_us: Micros,
    pub absolute_us: Micros,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle_us: 3600 * 1_000_000,
            absolute_us: 24 * 3600 * 1_000_000,
        }
    }
}

/// Sessions held at once; the one idle longest goes when a new one needs the room.
pub const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
struct Session {
    user: String,
    created: Micros,
    last_seen: Micros,
}

#[derive(Debug, Default)]
pub struct Sessions {
    limits: SessionLimits,
    table: HashMap<SecretKey, Session>,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            table: HashMap::new(),
        }
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Records a new session under `key` (the digest of its id). Returns the key of a session
    /// evicted to make room, if one was.
    pub fn create(&mut self, key: SecretKey, user: &str, now: Micros) -> Option<SecretKey> {
        let evicted = if self.table.len() >= MAX_SESSIONS {
            let oldest = self
                .table
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k);
            oldest.inspect(|k| {
                self.table.remove(k);
            })
        } else {
            None
        };
        self.table.insert(
            key,
            Session {
                user: user.into(),
                created: now,
                last_seen: now,
            },
        );
        evicted
    }

    fn live(&self, s: &Session, now: Micros) -> bool {
        now.saturating_sub(s.last_seen) < self.limits.idle_us
            && now.saturating_sub(s.created) < self.limits.absolute_us
    }

    /// The user of a live session, after moving its idle timeout on (activity). An expired
    /// session is removed and refused.
    pub fn touch(&mut self, key: &SecretKey, now: Micros) -> Option<String> {
        let live = self.table.get(key).map(|s| self.live(s, now))?;
        if !live {
            self.table.remove(key);
            return None;
        }
        let s = self.table.get_mut(key)?;
        s.last_seen = s.last_seen.max(now);
        Some(s.user.clone())
    }

    pub fn revoke(&mut self, key: &SecretKey) -> bool {
        self.table.remove(key).is_some()
    }

    /// Ends every session of `user` except `keep`; returns the keys ended.
    pub fn revoke_user(&mut self, user: &str, keep: Option<&SecretKey>) -> Vec<SecretKey> {
        let ended: Vec<SecretKey> = self
            .table
            .iter()
            .filter(|(k, s)| s.user == user && Some(*k) != keep)
            .map(|(k, _)| *k)
            .collect();
        for k in &ended {
            self.table.remove(k);
        }
        ended
    }

    /// Removes the sessions that timed out; returns their keys.
    pub fn expire(&mut self, now: Micros) -> Vec<SecretKey> {
        let ended: Vec<SecretKey> = self
            .table
            .iter()
            .filter(|(_, s)| !self.live(s, now))
            .map(|(k, _)| *k)
            .collect();
        for k in &ended {
            self.table.remove(k);
        }
        ended
    }

    /// Seconds until the session runs out if nothing happens (for the console's display).
    pub fn remaining_us(&self, key: &SecretKey, now: Micros) -> Option<Micros> {
        let s = self.table.get(key)?;
        let idle_end = s.last_seen + self.limits.idle_us;
        let abs_end = s.created + self.limits.absolute_us;
        Some(idle_end.min(abs_end).saturating_sub(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Micros = 1_000_000;

    fn limits() -> SessionLimits {
        SessionLimits {
            idle_us: 10 * S,
            absolute_us: 100 * S,
        }
    }

    fn key(n: u8) -> SecretKey {
        [n; 32]
    }

    #[test]
    fn idle_sessions_expire_and_activity_keeps_them() {
        let mut s = Sessions::new(limits());
        s.create(key(1), "alice", 0);
        s.create(key(2), "alice", 0);
        for t in (5..=60).step_by(5) {
            assert_eq!(
                s.touch(&key(1), t * S).as_deref(),
                Some("alice"),
                "at {t} s"
            );
        }
        // key(2) saw no activity for 10 s.
        assert_eq!(s.touch(&key(2), 60 * S), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn the_absolute_limit_holds_however_active() {
        let mut s = Sessions::new(limits());
        s.create(key(1), "alice", 0);
        for t in 1..100 {
            assert!(s.touch(&key(1), t * S).is_some(), "at {t} s");
        }
        assert_eq!(s.touch(&key(1), 100 * S), None);
    }

    #[test]
    fn expire_reports_what_ended() {
        let mut s = Sessions::new(limits());
        s.create(key(1), "a", 0);
        s.create(key(2), "b", 5 * S);
        assert_eq!(s.expire(12 * S), vec![key(1)]);
        assert_eq!(s.remaining_us(&key(2), 12 * S), Some(3 * S));
    }

    #[test]
    fn revoking_a_user_spares_the_session_that_asked() {
        let mut s = Sessions::new(limits());
        s.create(key(1), "alice", 0);
        s.create(key(2), "alice", 0);
        s.create(key(3), "bob", 0);
        let mut ended = s.revoke_user("alice", Some(&key(1)));
        ended.sort();
        assert_eq!(ended, vec![key(2)]);
        assert!(s.touch(&key(1), S).is_some());
        assert!(s.touch(&key(3), S).is_some());
        assert!(s.revoke(&key(1)));
        assert!(s.touch(&key(1), S).is_none());
        // A key nobody issued is refused.
        assert!(s.touch(&key(9), S).is_none());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_longest_idle() {
        let mut s = Sessions::new(limits());
        for i in 0..MAX_SESSIONS {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            s.create(k, "u", i as Micros);
        }
        let evicted = s.create(key(0xff), "u", 1000);
        assert_eq!(evicted, Some([0u8; 32]));
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}

//! Login throttling, per source address and per account: a few free failures, then growing
//! delays, then a lockout window. Both tables are bounded, so a flood of addresses costs a
//! fixed amount of memory. Pure: time comes in as an argument.
//!
//! IPv6 addresses count per /64 (one host usually has a whole /64 to rotate through). The
//! account table is keyed only by existing accounts plus one shared entry for unknown names,
//! so guessing names cannot grow it. Its lockout is milder than the address's, because anyone
//! can trip it: it slows a distributed guesser down without locking the owner out for long.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use crate::clock::Micros;

const S: Micros = 1_000_000;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures answered without any wait.
    pub free: u32,
    /// The wait after the first failure past `free`; it doubles with every further one.
    pub first_delay: Micros,
    pub max_delay: Micros,
    /// This many failures lock the key for `lockout`.
    pub lock_after: u32,
    pub lockout: Micros,
    /// A key without failures for this long is forgotten.
    pub forget_after: Micros,
}

pub const PER_ADDRESS: Policy = Policy {
    free: 3,
    first_delay: S,
    max_delay: 30 * S,
    lock_after: 10,
    lockout: 15 * 60 * S,
    forget_after: 15 * 60 * S,
};

pub const PER_ACCOUNT: Policy = Policy {
    free: 5,
    first_delay: S,
    max_delay: 30 * S,
    lock_after: 30,
    lockout: 5 * 60 * S,
    forget_after: 15 * 60 * S,
};

/// Addresses tracked at once.
pub const MAX_ADDRESSES: usize = 4096;
/// Accounts tracked at once (there are few; the bound is for safety).
pub const MAX_ACCOUNTS: usize = 256;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    last_failure: Micros,
    /// No attempt is heard before this.
    not_before: Micros,
}

#[derive(Debug)]
struct Table<K> {
    policy: Policy,
    capacity: usize,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(policy: Policy, capacity: usize) -> Self {
        Self {
            policy,
            capacity,
            entries: HashMap::new(),
        }
    }

    fn forgotten(&self, e: &Entry, now: Micros) -> bool {
        now >= e.not_before && now.saturating_sub(e.last_failure) >= self.policy.forget_after
    }

    /// How long the key must still wait, if it must.
    fn wait(&self, key: &K, now: Micros) -> Option<Micros> {
        let e = self.entries.get(key)?;
        (now < e.not_before).then(|| e.not_before - now)
    }

    fn failure(&mut self, key: K, now: Micros) {
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            self.make_room(now);
        }
        let policy = self.policy;
        let forgotten = self
            .entries
            .get(&key)
            .is_some_and(|e| self.forgotten(e, now));
        let e = self.entries.entry(key).or_default();
        if forgotten {
            *e = Entry::default();
        }
        e.failures += 1;
        e.last_failure = now;
        let wait = if e.failures >= policy.lock_after {
            policy.lockout
        } else if e.failures > policy.free {
            let doublings = (e.failures - policy.free - 1).min(20);
            (policy.first_delay << doublings).min(policy.max_delay)
        } else {
            0
        };
        e.not_before = e.not_before.max(now + wait);
    }

    /// Drops forgotten entries; if none is, the one whose last failure is oldest.
    fn make_room(&mut self, now: Micros) {
        let before = self.entries.len();
        let policy = self.policy;
        self.entries.retain(|_, e| {
            !(now >= e.not_before && now.saturating_sub(e.last_failure) >= policy.forget_after)
        });
        if self.entries.len() < before {
            return;
        }
        if let Some(k) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_failure)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&k);
        }
    }

    fn clear(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// The source address as throttled: IPv4 as is, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    V4(u32),
    V6Prefix(u64),
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(u32::from(v4)),
                None => AddressKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Which account an attempt was for: a known one, or any unknown name (one shared entry).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AccountKey {
    Known(String),
    Unknown,
}

#[derive(Debug)]
pub struct Throttle {
    addresses: Table<AddressKey>,
    accounts: Table<AccountKey>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an attempt is not heard now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TryLater {
    pub wait_us: Micros,
}

impl Throttle {
    pub fn new() -> Self {
        Self {
            addresses: Table::new(PER_ADDRESS, MAX_ADDRESSES),
            accounts: Table::new(PER_ACCOUNT, MAX_ACCOUNTS),
        }
    }

    /// May an attempt from `ip` for `account` be checked now?
    pub fn check(&self, ip: IpAddr, account: &AccountKey, now: Micros) -> Result<(), TryLater> {
        let wait = self
            .addresses
            .wait(&ip.into(), now)
            .max(self.accounts.wait(account, now));
        match wait {
            Some(wait_us) => Err(TryLater { wait_us }),
            None => Ok(()),
        }
    }

    pub fn failure(&mut self, ip: IpAddr, account: AccountKey, now: Micros) {
        self.addresses.failure(ip.into(), now);
        self.accounts.failure(account, now);
    }

    /// A successful login clears its address and account.
    pub fn success(&mut self, ip: IpAddr, account: &AccountKey) {
        self.addresses.clear(&ip.into());
        self.accounts.clear(account);
    }

    #[cfg(test)]
    pub fn tracked(&self) -> (usize, usize) {
        (self.addresses.entries.len(), self.accounts.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn known(n: &str) -> AccountKey {
        AccountKey::Known(n.into())
    }

    #[test]
    fn free_failures_then_growing_delays_then_lockout() {
        let mut t = Throttle::new();
        let a = ip("10.0.0.1");
        let mut now = 0;
        let mut waits = Vec::new();
        for _ in 0..PER_ADDRESS.lock_after {
            assert_eq!(t.check(a, &known("admin"), now), Ok(()), "at {now}");
            t.failure(a, known("admin"), now);
            let wait = t
                .check(a, &known("admin"), now)
                .err()
                .map_or(0, |w| w.wait_us);
            waits.push(wait / S);
            now += wait;
        }
        assert_eq!(waits, vec![0, 0, 0, 1, 2, 4, 8, 16, 30, 15 * 60]);
        // Locked: refused until the window has passed, also just before its end.
        assert!(t.check(a, &known("admin"), now - S).is_err());
        assert_eq!(t.check(a, &known("admin"), now), Ok(()));
    }

    #[test]
    fn another_address_is_not_slowed_by_one_that_fails() {
        let mut t = Throttle::new();
        for _ in 0..5 {
            t.failure(ip("10.0.0.1"), AccountKey::Unknown, 0);
        }
        assert!(t.check(ip("10.0.0.1"), &known("bob"), 0).is_err());
        assert_eq!(t.check(ip("10.0.0.2"), &known("bob"), 0), Ok(()));
    }

    #[test]
    fn many_addresses_against_one_account_are_slowed_per_account() {
        let mut t = Throttle::new();
        for i in 0..PER_ACCOUNT.free + 1 {
            t.failure(ip(&format!("10.1.0.{i}")), known("admin"), 0);
        }
        let fresh = ip("192.168.9.9");
        assert!(t.check(fresh, &known("admin"), 0).is_err());
        assert_eq!(t.check(fresh, &known("other"), 0), Ok(()));
    }

    #[test]
    fn success_clears_and_time_forgets() {
        let mut t = Throttle::new();
        let a = ip("10.0.0.1");
        for _ in 0..5 {
            t.failure(a, known("x"), 0);
        }
        t.success(a, &known("x"));
        assert_eq!(t.check(a, &known("x"), 0), Ok(()));
        for _ in 0..5 {
            t.failure(a, known("x"), 0);
        }
        // After the forget window the count starts again from zero.
        let later = PER_ADDRESS.forget_after + 60 * S;
        t.failure(a, known("x"), later);
        assert_eq!(t.check(a, &known("x"), later), Ok(()));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            AddressKey::from(ip("2001:db8:1:2::1")),
            AddressKey::from(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            AddressKey::from(ip("2001:db8:1:2::1")),
            AddressKey::from(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            AddressKey::from(ip("::ffff:10.0.0.1")),
            AddressKey::from(ip("10.0.0.1"))
        );
    }

    #[test]
    fn the_tables_stay_bounded_under_many_addresses() {
        let mut t = Throttle::new();
        for i in 0..20_000u32 {
            let a = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.failure(a, AccountKey::Unknown, Micros::from(i));
            let (addresses, accounts) = t.tracked();
            assert!(addresses <= MAX_ADDRESSES, "{addresses} addresses tracked");
            assert!(accounts <= MAX_ACCOUNTS);
        }
        // The most recent offenders are still tracked.
        let last = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + 19_999));
        t.failure(last, AccountKey::Unknown, 20_000);
        t.failure(last, AccountKey::Unknown, 20_000);
        t.failure(last, AccountKey::Unknown, 20_000);
        assert!(t.check(last, &known("n"), 20_000).is_err());
    }
}

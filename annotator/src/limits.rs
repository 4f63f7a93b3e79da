//! Rate limits, in this process (several server processes each count their own). Fixed windows
//! per key; a refused request learns how many seconds to wait (`Retry-After`).
//!
//! Sign-in counts failures, not attempts, under three keys, so that guessing is slow and yet no
//! one can lock a named account out for its owner:
//! - per client address (an attacker's own address runs out first);
//! - per (account, address): the owner at their own address is not slowed by failures elsewhere;
//! - per account, for clients without a *device cookie* for that account (given at a successful
//!   sign-in in that browser) and from addresses that never signed in to it successfully (kept
//!   for 30 days, in memory): a botnet spread over many addresses runs into this one, and the
//!   owner's browser or usual address does not.
//!
//! The API limits accept, submit and return per credential and per address; they are settings of
//! `annotator serve` (0 turns one off, for load generators on one address).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::Millis;

/// At most `count` events per `window_ms` for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub window_ms: Millis,
}

impl Limit {
    pub const fn per_minute(count: u32) -> Limit {
        Limit {
            count,
            window_ms: 60_000,
        }
    }
}

/// Failed sign-ins per client address.
pub const SIGN_IN_PER_ADDRESS: Limit = Limit {
    count: 20,
    window_ms: 10 * 60_000,
};
/// Failed sign-ins per (account, client address).
pub const SIGN_IN_PER_ACCOUNT_ADDRESS: Limit = Limit {
    count: 5,
    window_ms: 10 * 60_000,
};
/// Failed sign-ins per account from clients without the account's device cookie.
pub const SIGN_IN_PER_ACCOUNT: Limit = Limit {
    count: 50,
    window_ms: 60 * 60_000,
};
/// API session creation per client address (passwords and codes; requester-minted sessions count
/// per requester token instead).
pub const SESSIONS_PER_ADDRESS: Limit = Limit::per_minute(30);
/// Sessions the requester's token may mint per minute (an integration signing its crowd in).
pub const SESSIONS_PER_REQUESTER_TOKEN: Limit = Limit::per_minute(1200);
/// MTurk and Prolific starts per client address.
pub const ENTRIES_PER_ADDRESS: Limit = Limit::per_minute(30);
/// Description submissions per worker on the pages.
pub const SUBMIT_PER_WORKER: Limit = Limit::per_minute(30);

/// The API's limits on accept, submit and return (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    pub per_credential: Option<Limit>,
    pub per_address: Option<Limit>,
}

impl Default for ApiLimits {
    /// A person describes a set in tens of seconds; 60 requests a minute is a script's pace.
    fn default() -> Self {
        ApiLimits {
            per_credential: Some(Limit::per_minute(60)),
            per_address: Some(Limit::per_minute(600)),
        }
    }
}

impl ApiLimits {
    /// From `--api-limit-per-credential` and `--api-limit-per-address` (per minute, 0 = off).
    pub fn per_minute(per_credential: u32, per_address: u32) -> Self {
        let limit = |n: u32| (n > 0).then(|| Limit::per_minute(n));
        ApiLimits {
            per_credential: limit(per_credential),
            per_address: limit(per_address),
        }
    }

    pub fn off() -> Self {
        ApiLimits {
            per_credential: None,
            per_address: None,
        }
    }
}

/// Keys past this many are pruned of finished windows.
const MAX_KEYS: usize = 100_000;

/// Fixed-window counters per key, and the addresses each account signed in from.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (Millis, u32)>>,
    known: Mutex<HashMap<String, Millis>>,
}

/// How long an address that signed in to an account stays exempt from the per-account limit.
const KNOWN_ADDRESS_MS: Millis = 30 * 24 * 60 * 60_000;

fn wait_s(start: Millis, limit: Limit, now: Millis) -> i64 {
    ((start + limit.window_ms - now + 999) / 1000).max(1)
}

impl RateLimiter {
    /// Counts one event; `Err(seconds to wait)` when the key is over its limit (then nothing is
    /// counted).
    pub fn hit(&self, key: &str, limit: Limit, now: Millis) -> Result<(), i64> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > MAX_KEYS {
            // Windows are at most an hour long.
            windows.retain(|_, (start, _)| now - *start < 60 * 60_000);
        }
        let entry = windows.entry(key.to_owned()).or_insert((now, 0));
        if now - entry.0 >= limit.window_ms {
            *entry = (now, 0);
        }
        if entry.1 >= limit.count {
            // Counted by the limit's name (the key before ':'), never by address or account.
            crate::telemetry::global().rate_limited(key.split(':').next().unwrap_or(key));
            return Err(wait_s(entry.0, limit, now));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Whether the key is over its limit, without counting: `Err(seconds to wait)` if it is.
    pub fn check(&self, key: &str, limit: Limit, now: Millis) -> Result<(), i64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        match windows.get(key) {
            Some((start, n)) if now - *start < limit.window_ms && *n >= limit.count => {
                Err(wait_s(*start, limit, now))
            }
            _ => Ok(()),
        }
    }

    /// Records a successful sign-in, so that this address is not held to the per-account limit.
    pub fn signed_in(&self, kind: &str, address: &str, account: &str, now: Millis) {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.len() > MAX_KEYS {
            known.retain(|_, at| now - *at < KNOWN_ADDRESS_MS);
        }
        known.insert(format!("{kind}\u{1f}{account}\u{1f}{address}"), now);
    }

    /// Whether this address signed in to this account successfully lately.
    pub fn known_address(&self, kind: &str, address: &str, account: &str, now: Millis) -> bool {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known
            .get(&format!("{kind}\u{1f}{account}\u{1f}{address}"))
            .is_some_and(|at| now - *at < KNOWN_ADDRESS_MS)
    }

    /// Whether a sign-in to `account` from `address` may be tried now. `trusted_device`: the
    /// client carries this account's device cookie.
    pub fn sign_in_allowed(
        &self,
        kind: &str,
        address: &str,
        account: &str,
        trusted_device: bool,
        now: Millis,
    ) -> Result<(), i64> {
        let trusted = trusted_device || self.known_address(kind, address, account, now);
        for (key, limit) in sign_in_keys(kind, address, account, trusted) {
            if let Err(wait) = self.check(&key, limit, now) {
                crate::telemetry::global().rate_limited(&format!("{kind}-signin"));
                return Err(wait);
            }
        }
        Ok(())
    }

    /// Counts a failed sign-in under its keys.
    pub fn sign_in_failed(
        &self,
        kind: &str,
        address: &str,
        account: &str,
        trusted_device: bool,
        now: Millis,
    ) {
        crate::telemetry::global().signin_failed(kind);
        for (key, limit) in sign_in_keys(kind, address, account, trusted_device) {
            let _ = self.hit(&key, limit, now);
        }
    }
}

/// The keys a sign-in is counted under: per address, per (account, address), and per account
/// unless the client is trusted for it.
fn sign_in_keys(kind: &str, address: &str, account: &str, trusted: bool) -> Vec<(String, Limit)> {
    let mut keys = vec![
        (format!("{kind}-ip:{address}"), SIGN_IN_PER_ADDRESS),
        (
            format!("{kind}-acct-ip:{account}\u{1f}{address}"),
            SIGN_IN_PER_ACCOUNT_ADDRESS,
        ),
    ];
    if !trusted {
        keys.push((format!("{kind}-acct:{account}"), SIGN_IN_PER_ACCOUNT));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_refuses_past_the_count_and_forgets_after_the_window() {
        let l = RateLimiter::default();
        let limit = Limit {
            count: 2,
            window_ms: 1000,
        };
        assert!(l.hit("a", limit, 0).is_ok());
        assert!(l.hit("a", limit, 10).is_ok());
        assert_eq!(l.check("a", limit, 500), Err(1));
        assert_eq!(l.hit("a", limit, 500), Err(1));
        assert!(l.hit("b", limit, 500).is_ok());
        assert!(l.hit("a", limit, 1000).is_ok());
    }

    #[test]
    fn failures_elsewhere_do_not_lock_the_owner_out() {
        let l = RateLimiter::default();
        // A botnet: many addresses, each failing a few times, against one account.
        for i in 0..SIGN_IN_PER_ACCOUNT.count {
            let ip = format!("198.51.100.{}", i % 200);
            assert!(l.sign_in_allowed("w", &ip, "alice", false, 0).is_ok());
            l.sign_in_failed("w", &ip, "alice", false, 0);
        }
        // New clients without the cookie wait; the owner's browser (device cookie) does not.
        assert!(
            l.sign_in_allowed("w", "203.0.113.5", "alice", false, 1)
                .is_err()
        );
        assert!(
            l.sign_in_allowed("w", "203.0.113.5", "alice", true, 1)
                .is_ok()
        );
        // One address guessing many accounts runs out of its own allowance.
        for i in 0..SIGN_IN_PER_ADDRESS.count {
            l.sign_in_failed("w", "192.0.2.1", &format!("user{i}"), false, 2);
        }
        assert!(l.sign_in_allowed("w", "192.0.2.1", "bob", true, 3).is_err());
        assert!(l.sign_in_allowed("w", "192.0.2.2", "bob", false, 3).is_ok());
    }
}

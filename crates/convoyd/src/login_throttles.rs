//! Failed logins, counted per user name and per client address (`convoy_core::login_throttle`
//! holds the rule): past the limit, a login is refused before any password is checked.

use std::net::IpAddr;
use std::sync::Mutex;

use convoy_core::login_throttle::{LoginThrottle, ThrottlePolicy};
use jiff::Timestamp;

/// Most names and most addresses remembered (each table; about 100 bytes an entry).
const CAPACITY: usize = 10_000;

pub struct LoginThrottles {
    tables: Mutex<Tables>,
}

struct Tables {
    users: LoginThrottle<String>,
    sources: LoginThrottle<IpAddr>,
}

/// Why a login is refused, and for how long.
#[derive(Debug)]
pub struct Refusal {
    pub reason: String,
    pub retry_after_seconds: u64,
}

impl LoginThrottles {
    pub fn new(per_user: ThrottlePolicy, per_source: ThrottlePolicy) -> Self {
        LoginThrottles {
            tables: Mutex::new(Tables {
                users: LoginThrottle::new(per_user, CAPACITY),
                sources: LoginThrottle::new(per_source, CAPACITY),
            }),
        }
    }

    /// Refuses a login for `user` from `source` while either has failed too often.
    pub fn check(&self, user: &str, source: Option<IpAddr>, now: Timestamp) -> Result<(), Refusal> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(wait) = tables.users.refused(&user.to_string(), now) {
            let policy = tables.users.policy();
            return Err(Refusal {
                reason: format!(
                    "login refused: {} failed logins for user {user:?} within {} s; \
                     try again in {} s",
                    policy.max_failures,
                    policy.window.as_secs(),
                    ceil_seconds(wait),
                ),
                retry_after_seconds: ceil_seconds(wait),
            });
        }
        if let Some(source) = source.map(key)
            && let Some(wait) = tables.sources.refused(&source, now)
        {
            let policy = tables.sources.policy();
            return Err(Refusal {
                reason: format!(
                    "login refused: {} failed logins from {source} within {} s; try again in {} s",
                    policy.max_failures,
                    policy.window.as_secs(),
                    ceil_seconds(wait),
                ),
                retry_after_seconds: ceil_seconds(wait),
            });
        }
        Ok(())
    }

    /// Counts a failed login; `user` is None for a name no user can have.
    pub fn failed(&self, user: Option<&str>, source: Option<IpAddr>, now: Timestamp) {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(user) = user {
            tables.users.record_failure(user.to_string(), now);
        }
        if let Some(source) = source {
            tables.sources.record_failure(key(source), now);
        }
    }
}

/// An IPv6 client usually holds a whole /64, so that is what is counted.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn ceil_seconds(d: jiff::SignedDuration) -> u64 {
    let millis = d.as_millis().max(0) as u64;
    millis.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;

    fn policy(max_failures: u32) -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures,
            window: SignedDuration::from_secs(60),
        }
    }

    #[test]
    fn refusals_name_the_user_or_the_source() {
        let throttles = LoginThrottles::new(policy(2), policy(3));
        let now = Timestamp::from_second(1_700_000_000).unwrap();
        let home: IpAddr = "2001:db8::1".parse().unwrap();
        let neighbour: IpAddr = "2001:db8::2".parse().unwrap();
        throttles.failed(Some("admin"), Some(home), now);
        throttles.failed(Some("admin"), Some(home), now);
        let refusal = throttles.check("admin", None, now).unwrap_err();
        assert!(
            refusal.reason.contains("for user \"admin\""),
            "{}",
            refusal.reason
        );
        assert_eq!(refusal.retry_after_seconds, 60);
        assert!(throttles.check("other", Some(home), now).is_ok());
        throttles.failed(None, Some(home), now);
        // The same /64 counts as one source.
        let refusal = throttles.check("other", Some(neighbour), now).unwrap_err();
        assert!(
            refusal.reason.contains("from 2001:db8::"),
            "{}",
            refusal.reason
        );
        assert!(
            throttles
                .check("other", Some("192.0.2.1".parse().unwrap()), now)
                .is_ok()
        );
    }
}

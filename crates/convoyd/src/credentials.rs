//! Agent credentials already checked against the store, so that the several requests an agent
//! makes per command do not each look its credential up again. Enrolment and host deletion
//! forget a host's entries; the store stays the authority.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct CredentialCache {
    /// SHA-256 of a credential -> the host it belongs to, and a count of forgets so that a
    /// lookup that raced with a forget is not cached.
    hosts: Mutex<(HashMap<String, String>, u64)>,
}

/// Taken before looking a credential up in the store; see [`CredentialCache::remember`].
#[derive(Debug, Clone, Copy)]
pub struct Generation(u64);

impl CredentialCache {
    /// The cached host of a credential, or the generation to pass to `remember` after
    /// looking it up in the store.
    pub fn hostname(&self, credential_hash: &str) -> Result<String, Generation> {
        let hosts = self.hosts.lock().expect("credential cache lock");
        hosts
            .0
            .get(credential_hash)
            .cloned()
            .ok_or(Generation(hosts.1))
    }

    /// Caches what the store said, unless a host was forgotten since the lookup began.
    pub fn remember(&self, since: Generation, credential_hash: String, hostname: &str) {
        let mut hosts = self.hosts.lock().expect("credential cache lock");
        if hosts.1 == since.0 {
            hosts.0.insert(credential_hash, hostname.to_string());
        }
    }

    pub fn forget_host(&self, hostname: &str) {
        let mut hosts = self.hosts.lock().expect("credential cache lock");
        hosts.0.retain(|_, host| host != hostname);
        hosts.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_host_is_looked_up_again() {
        let cache = CredentialCache::default();
        let generation = cache.hostname("h1").unwrap_err();
        cache.remember(generation, "h1".into(), "worker-0");
        cache.remember(generation, "h2".into(), "worker-1");
        assert_eq!(cache.hostname("h1").ok().as_deref(), Some("worker-0"));
        cache.forget_host("worker-0");
        assert!(cache.hostname("h1").is_err());
        assert_eq!(cache.hostname("h2").ok().as_deref(), Some("worker-1"));
    }

    #[test]
    fn a_lookup_that_raced_with_a_forget_is_not_cached() {
        let cache = CredentialCache::default();
        let generation = cache.hostname("old").unwrap_err();
        // The host re-enrols while the store lookup of its old credential is under way.
        cache.forget_host("worker-0");
        cache.remember(generation, "old".into(), "worker-0");
        assert!(cache.hostname("old").is_err());
    }
}

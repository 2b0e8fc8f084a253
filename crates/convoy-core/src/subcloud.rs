//! Subclouds as a System Controller sees them: their states, the rules for changing them, and
//! what an audit concludes. The strings are dcmanager's (spec/dcmanager-api.md §6).

use std::collections::{BTreeMap, BTreeSet};

use crate::ValidationError;
use crate::names::named_enum;
use serde::{Deserialize, Serialize};

/// Whether the System Controller manages the subcloud (syncs and orchestrates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Management {
    Managed,
    Unmanaged,
}

named_enum!(Management, field = "management-state", {
    Managed => "managed",
    Unmanaged => "unmanaged",
});

/// Whether the subcloud's controller answered its last audits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Online,
    Offline,
}

named_enum!(Availability, field = "availability-status", {
    Online => "online",
    Offline => "offline",
});

/// How one audited endpoint of a subcloud compares with the System Controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncStatus {
    InSync,
    OutOfSync,
    Unknown,
}

named_enum!(SyncStatus, field = "sync_status", {
    InSync => "in-sync",
    OutOfSync => "out-of-sync",
    Unknown => "unknown",
});

/// The endpoints Convoy audits. dcmanager has seven; Convoy shows only those it really audits.
pub const ENDPOINTS: [&str; 2] = ["identity", "software"];

/// The deploy status of a subcloud attached to an existing site controller.
pub const DEPLOY_COMPLETE: &str = "complete";

/// Longest subcloud or group description dcmanager accepts.
pub const MAX_DESCRIPTION_LEN: usize = 255;

/// The Default group: always there, id 1, cannot be renamed or deleted.
pub const DEFAULT_GROUP_ID: i64 = 1;
pub const DEFAULT_GROUP_NAME: &str = "Default";

/// A subcloud's overall sync status, as dcmanager lists it: the first endpoint's status, or
/// `out-of-sync` if any endpoint differs from it.
pub fn overall_sync(endpoints: &[SyncStatus]) -> SyncStatus {
    match endpoints.split_first() {
        None => SyncStatus::Unknown,
        Some((first, rest)) if rest.iter().all(|s| s == first) => *first,
        Some(_) => SyncStatus::OutOfSync,
    }
}

/// The `software` sync status of a subcloud: `unknown` unless it is managed and online (then
/// its own deployed software was read by the audit), else `in-sync` when it has deployed
/// everything the System Controller has. Today "deployed software" is the set of patches
/// applied (or committed) on each site; releases can join the same sets.
pub fn software_sync(
    management: Management,
    availability: Availability,
    system_controller: &BTreeSet<String>,
    subcloud: Option<&BTreeSet<String>>,
) -> SyncStatus {
    match (management, availability, subcloud) {
        (Management::Managed, Availability::Online, Some(deployed)) => {
            if system_controller.is_subset(deployed) {
                SyncStatus::InSync
            } else {
                SyncStatus::OutOfSync
            }
        }
        _ => SyncStatus::Unknown,
    }
}

/// The System Controller's users a subcloud lacks or holds differently, compared by digest
/// (name → digest of name, role and password hash). Users only the subcloud has are left alone.
pub fn users_to_sync<'a>(
    own: &'a BTreeMap<String, String>,
    subcloud: &BTreeMap<String, String>,
) -> Vec<&'a str> {
    own.iter()
        .filter(|(name, digest)| subcloud.get(*name) != Some(*digest))
        .map(|(name, _)| name.as_str())
        .collect()
}

/// The `identity` sync status: `unknown` unless managed and online; then `in-sync` once the
/// subcloud holds every user of the System Controller as it is (`synced`: it did, or a push
/// just made it so).
pub fn identity_sync(
    management: Management,
    availability: Availability,
    synced: bool,
) -> SyncStatus {
    match (management, availability) {
        (Management::Managed, Availability::Online) if synced => SyncStatus::InSync,
        (Management::Managed, Availability::Online) => SyncStatus::OutOfSync,
        _ => SyncStatus::Unknown,
    }
}

/// Availability after an audit: `online` as soon as one audit succeeds; `offline` once
/// `failed_audits` consecutive audits have failed and reach `offline_after`; otherwise as it was.
pub fn availability_after(
    previous: Availability,
    succeeded: bool,
    failed_audits: u32,
    offline_after: u32,
) -> Availability {
    if succeeded {
        Availability::Online
    } else if failed_audits >= offline_after.max(1) {
        Availability::Offline
    } else {
        previous
    }
}

/// Why a management change is refused, with dcmanager's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagementRefusal {
    #[error("Subcloud {0} already managed")]
    AlreadyManaged(String),
    #[error("Subcloud {0} already unmanaged")]
    AlreadyUnmanaged(String),
    #[error(
        "Unable to manage {0}: its deploy_status must be either 'complete' or 'rehome-pending'"
    )]
    NotDeployed(String),
    #[error("Subcloud is not online.")]
    NotOnline,
}

/// Checks a change of management state. Managing needs the subcloud online unless `force`
/// (dcmanager lets force manage an offline subcloud) and deployed.
pub fn check_management_change(
    name: &str,
    current: Management,
    wanted: Management,
    availability: Availability,
    deploy_status: &str,
    force: bool,
) -> Result<(), ManagementRefusal> {
    match (current, wanted) {
        (Management::Managed, Management::Managed) => {
            Err(ManagementRefusal::AlreadyManaged(name.into()))
        }
        (Management::Unmanaged, Management::Unmanaged) => {
            Err(ManagementRefusal::AlreadyUnmanaged(name.into()))
        }
        (Management::Unmanaged, Management::Managed) => {
            if !matches!(deploy_status, DEPLOY_COMPLETE | "rehome-pending") {
                Err(ManagementRefusal::NotDeployed(name.into()))
            } else if availability != Availability::Online && !force {
                Err(ManagementRefusal::NotOnline)
            } else {
                Ok(())
            }
        }
        (Management::Managed, Management::Unmanaged) => Ok(()),
    }
}

/// A subcloud group's scheduling: how its subclouds are updated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyType {
    Parallel,
    Serial,
}

named_enum!(ApplyType, field = "update_apply_type", {
    Parallel => "parallel",
    Serial => "serial",
});

/// A group name as dcmanager accepts it: non-empty, at most 255 characters, not all digits
/// (a reference of digits is an id) and not `Default` (which exists). Message as dcmanager's.
pub fn validate_group_name(name: &str) -> Result<(), ValidationError> {
    let refused = || ValidationError::new("name", "Invalid group name");
    if name.is_empty()
        || name.len() > MAX_DESCRIPTION_LEN
        || name.chars().all(|c| c.is_ascii_digit())
        || name == DEFAULT_GROUP_NAME
        || name.chars().any(char::is_control)
    {
        return Err(refused());
    }
    Ok(())
}

pub fn validate_group_description(description: &str) -> Result<(), ValidationError> {
    if description.is_empty() || description.len() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            "description",
            "Invalid group description",
        ));
    }
    Ok(())
}

/// 1..5000, as dcmanager.
pub fn validate_max_parallel(value: i64) -> Result<(), ValidationError> {
    if !(1..=5000).contains(&value) {
        return Err(ValidationError::new(
            "max_parallel_subclouds",
            "Invalid group max_parallel_subclouds",
        ));
    }
    Ok(())
}

/// A subcloud name: the rule for every Convoy name (letters, digits, `-`, `_`, `.`, at most 63),
/// and not all digits, since a reference of digits means an id.
pub fn validate_subcloud_name(name: &str) -> Result<(), ValidationError> {
    crate::validation::validate_name("name", name)?;
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(ValidationError::new(
            "name",
            "must not be all digits (a reference of digits means an id)",
        ));
    }
    Ok(())
}

/// A free-text field of a subcloud (description, location): at most 255 characters, no control
/// characters (they would break the tables).
pub fn validate_text(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.len() > MAX_DESCRIPTION_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// The port a convoyd listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7400;

/// The URL of a subcloud's convoyd from a bootstrap address: a URL (`https://host:port`) is
/// taken as it is; a bare address (`10.10.10.12`, `[fd01::2]`, `host:port`, as dcmanager's
/// clients send it) means HTTPS, on port 7400 unless it names one.
pub fn subcloud_url(address: &str) -> Result<String, ValidationError> {
    let address = address.trim().trim_end_matches('/');
    let invalid = |reason: &str| ValidationError::new("bootstrap-address", reason);
    if address.is_empty() || address.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            "must be the address or URL of the subcloud's convoyd",
        ));
    }
    if let Some((scheme, _)) = address.split_once("://") {
        return match scheme {
            "https" | "http" => Ok(address.to_string()),
            _ => Err(invalid("the scheme must be https (or http for tests)")),
        };
    }
    let has_port = match address.rsplit_once(':') {
        // A bare IPv6 address has colons but no port.
        Some((host, port)) => {
            port.chars().all(|c| c.is_ascii_digit())
                && !port.is_empty()
                && (host.ends_with(']') || !host.contains(':'))
        }
        None => false,
    };
    let host = if address.contains(':') && !address.starts_with('[') && !has_port {
        format!("[{address}]")
    } else {
        address.to_string()
    };
    Ok(if has_port {
        format!("https://{host}")
    } else {
        format!("https://{host}:{DEFAULT_PORT}")
    })
}

/// How a reference to a subcloud or group reads: digits are an id, anything else a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Id(i64),
    Name(String),
}

impl Reference {
    pub fn parse(text: &str) -> Reference {
        match text.parse::<i64>() {
            Ok(id) if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) => {
                Reference::Id(id)
            }
            _ => Reference::Name(text.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_round_trip_through_serde() {
        for s in SyncStatus::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for m in Management::ALL {
            assert_eq!(
                serde_json::to_string(&m).unwrap(),
                format!("\"{}\"", m.as_str())
            );
        }
        for a in Availability::ALL {
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
    }

    #[test]
    fn overall_sync_is_out_of_sync_when_endpoints_differ() {
        use SyncStatus::*;
        assert_eq!(overall_sync(&[]), Unknown);
        assert_eq!(overall_sync(&[InSync]), InSync);
        assert_eq!(overall_sync(&[Unknown, Unknown]), Unknown);
        assert_eq!(overall_sync(&[InSync, Unknown]), OutOfSync);
        assert_eq!(overall_sync(&[OutOfSync, OutOfSync]), OutOfSync);
    }

    #[test]
    fn software_is_in_sync_when_the_subcloud_has_everything_the_controller_has() {
        use Availability::*;
        use Management::*;
        let sc = set(&["P1", "P2"]);
        let check = |m, a, sub: Option<&BTreeSet<String>>| software_sync(m, a, &sc, sub);
        assert_eq!(
            check(Managed, Online, Some(&set(&["P1", "P2", "P3"]))),
            SyncStatus::InSync
        );
        assert_eq!(
            check(Managed, Online, Some(&set(&["P1"]))),
            SyncStatus::OutOfSync
        );
        assert_eq!(check(Managed, Online, None), SyncStatus::Unknown);
        assert_eq!(
            check(Unmanaged, Online, Some(&set(&["P1", "P2"]))),
            SyncStatus::Unknown
        );
        assert_eq!(
            check(Managed, Offline, Some(&set(&["P1", "P2"]))),
            SyncStatus::Unknown
        );
        assert_eq!(
            software_sync(Managed, Online, &set(&[]), Some(&set(&[]))),
            SyncStatus::InSync
        );
    }

    #[test]
    fn only_users_missing_or_different_on_the_subcloud_are_synced() {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let own = map(&[("admin", "a1"), ("alice", "b1"), ("bob", "c1")]);
        let theirs = map(&[("admin", "a1"), ("alice", "b0"), ("service", "s")]);
        assert_eq!(users_to_sync(&own, &theirs), vec!["alice", "bob"]);
        assert!(users_to_sync(&own, &own).is_empty());
        use Availability::*;
        use Management::*;
        assert_eq!(identity_sync(Managed, Online, true), SyncStatus::InSync);
        assert_eq!(identity_sync(Managed, Online, false), SyncStatus::OutOfSync);
        assert_eq!(identity_sync(Unmanaged, Online, true), SyncStatus::Unknown);
        assert_eq!(identity_sync(Managed, Offline, true), SyncStatus::Unknown);
    }

    #[test]
    fn a_subcloud_goes_offline_only_after_enough_failed_audits() {
        use Availability::*;
        assert_eq!(availability_after(Online, false, 1, 2), Online);
        assert_eq!(availability_after(Online, false, 2, 2), Offline);
        assert_eq!(availability_after(Offline, true, 0, 2), Online);
        assert_eq!(availability_after(Offline, false, 1, 2), Offline);
        // A threshold of 0 means 1.
        assert_eq!(availability_after(Online, false, 1, 0), Offline);
    }

    #[test]
    fn management_changes_follow_dcmanager() {
        use Availability::*;
        use Management::*;
        let check = |cur, want, avail, deploy, force| {
            check_management_change("sc1", cur, want, avail, deploy, force)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            check(Managed, Managed, Online, "complete", false),
            Err("Subcloud sc1 already managed".into())
        );
        assert_eq!(
            check(Unmanaged, Unmanaged, Online, "complete", false),
            Err("Subcloud sc1 already unmanaged".into())
        );
        assert_eq!(
            check(Unmanaged, Managed, Offline, "complete", false),
            Err("Subcloud is not online.".into())
        );
        assert_eq!(check(Unmanaged, Managed, Offline, "complete", true), Ok(()));
        assert_eq!(
            check(Unmanaged, Managed, Online, "not-deployed", true),
            Err("Unable to manage sc1: its deploy_status must be either 'complete' or 'rehome-pending'".into())
        );
        assert_eq!(
            check(Managed, Unmanaged, Offline, "complete", false),
            Ok(())
        );
    }

    #[test]
    fn group_fields_are_refused_with_dcmanagers_messages() {
        assert!(validate_group_name("east").is_ok());
        for bad in ["", "Default", "123", &"x".repeat(256)] {
            assert_eq!(
                validate_group_name(bad).unwrap_err().reason,
                "Invalid group name"
            );
        }
        assert!(validate_group_description("").is_err());
        assert!(validate_max_parallel(0).is_err());
        assert!(validate_max_parallel(5001).is_err());
        assert!(validate_max_parallel(5000).is_ok());
    }

    #[test]
    fn bootstrap_addresses_become_urls() {
        for (given, url) in [
            ("https://10.0.0.2:7400", "https://10.0.0.2:7400"),
            ("http://127.0.0.1:9000/", "http://127.0.0.1:9000"),
            ("10.10.10.12", "https://10.10.10.12:7400"),
            ("10.10.10.12:8443", "https://10.10.10.12:8443"),
            ("fd01::2", "https://[fd01::2]:7400"),
            ("[fd01::2]:8443", "https://[fd01::2]:8443"),
            ("[fd01::2]", "https://[fd01::2]:7400"),
            ("sc1.example", "https://sc1.example:7400"),
        ] {
            assert_eq!(subcloud_url(given).unwrap(), url, "{given}");
        }
        for bad in ["", "ftp://x", "a b"] {
            assert!(subcloud_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references_of_digits_are_ids() {
        assert_eq!(Reference::parse("12"), Reference::Id(12));
        assert_eq!(Reference::parse("sc-1"), Reference::Name("sc-1".into()));
        assert_eq!(Reference::parse("+1"), Reference::Name("+1".into()));
        assert!(validate_subcloud_name("42").is_err());
        assert!(validate_subcloud_name("subcloud-1").is_ok());
    }
}

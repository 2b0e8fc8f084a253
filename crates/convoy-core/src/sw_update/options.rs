//! What an operator chooses when creating a software-update strategy (spec §4.1, §4.2): the
//! kind, how each personality's hosts are applied, what happens to instances, which alarms
//! block, and how many workers may be updated at once.
//!
//! The option structs deserialize the REST create body with its hyphenated keys
//! (`controller-apply-type`, …); the mandatory keys are the original's (the three apply types
//! and `default-instance-action`), the others take the original's defaults. Serde checks the
//! shape; [`SwPatchOptions::validate`] and [`SwUpgradeOptions::validate`] check the ranges with
//! the original's messages.

use std::ops::RangeInclusive;

use serde::{Deserialize, Deserializer, Serialize};

use crate::ValidationError;
use crate::names::named_enum;

/// The two software-update strategies, by the VIM's strategy name (`sw-upgrade` is what
/// `sw-manager sw-deploy-strategy` creates).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SwUpdateKind {
    SwPatch,
    SwUpgrade,
}

named_enum!(SwUpdateKind, field = "name", {
    SwPatch => "sw-patch",
    SwUpgrade => "sw-upgrade",
});

impl SwUpdateKind {
    /// The values `max-parallel-worker-hosts` may take: 2..100 for sw-patch, 2..10 for
    /// sw-upgrade (the VIM API's bounds).
    pub fn max_parallel_worker_hosts_range(self) -> RangeInclusive<u32> {
        match self {
            SwUpdateKind::SwPatch => 2..=100,
            SwUpdateKind::SwUpgrade => 2..=10,
        }
    }

    /// The `sw-manager` command area that drives this kind.
    pub fn command(self) -> &'static str {
        match self {
            SwUpdateKind::SwPatch => "patch-strategy",
            SwUpdateKind::SwUpgrade => "sw-deploy-strategy",
        }
    }
}

/// How the hosts of one personality are taken through the update.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyType {
    /// One host (or one group) per stage.
    Serial,
    /// Several hosts per stage. Accepted for controllers at create, but the build then fails
    /// with [`PARALLEL_CONTROLLERS_REASON`], as in the original.
    Parallel,
    /// These hosts are left alone.
    Ignore,
}

named_enum!(ApplyType, field = "apply-type", {
    Serial => "serial",
    Parallel => "parallel",
    Ignore => "ignore",
});

impl ApplyType {
    /// Parses an apply type given for `field` (`controller-apply-type`, …), naming that field
    /// in the error.
    pub fn parse_for(field: &str, value: &str) -> Result<ApplyType, ValidationError> {
        value.parse::<ApplyType>().map_err(|e| ValidationError {
            field: field.into(),
            reason: e.reason,
        })
    }
}

/// The build reason when controllers are asked to go in parallel.
pub const PARALLEL_CONTROLLERS_REASON: &str = "parallel apply type not allowed for controllers";

/// What happens to a host's instances before it is locked. Convoy runs no hypervisor: the
/// host's `InstanceAction` hook does the work (`stop`, `start`, `migrate`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceAction {
    StopStart,
    Migrate,
}

named_enum!(InstanceAction, field = "default-instance-action", {
    StopStart => "stop-start",
    Migrate => "migrate",
});

/// Which active alarms stop a strategy (spec §4.4).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlarmRestrictions {
    /// Every alarm not on the ignore list blocks.
    #[default]
    Strict,
    /// Only management-affecting alarms not on the ignore list block.
    Relaxed,
    /// No alarm blocks (sw-upgrade only).
    Permissive,
}

named_enum!(AlarmRestrictions, field = "alarm-restrictions", {
    Strict => "strict",
    Relaxed => "relaxed",
    Permissive => "permissive",
});

/// `max-parallel-worker-hosts` when the body does not say.
pub const DEFAULT_MAX_PARALLEL_WORKER_HOSTS: u32 = 2;

/// The original's answer (400) to a `max-parallel-worker-hosts` out of range.
pub const INVALID_MAX_PARALLEL_WORKER_HOSTS: &str = "Invalid value for max-parallel-worker-hosts";

fn default_max_parallel_worker_hosts() -> u32 {
    DEFAULT_MAX_PARALLEL_WORKER_HOSTS
}

fn ignore() -> ApplyType {
    ApplyType::Ignore
}

/// The options that shape a strategy's stages, common to both kinds: what the build reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOptions {
    pub kind: SwUpdateKind,
    pub controller_apply_type: ApplyType,
    pub storage_apply_type: ApplyType,
    pub swift_apply_type: ApplyType,
    pub worker_apply_type: ApplyType,
    pub max_parallel_worker_hosts: u32,
    pub default_instance_action: InstanceAction,
    pub alarm_restrictions: AlarmRestrictions,
}

fn check_common(
    kind: SwUpdateKind,
    max_parallel_worker_hosts: u32,
    alarm_restrictions: AlarmRestrictions,
) -> Result<(), ValidationError> {
    if !kind
        .max_parallel_worker_hosts_range()
        .contains(&max_parallel_worker_hosts)
    {
        return Err(ValidationError::new(
            "max-parallel-worker-hosts",
            INVALID_MAX_PARALLEL_WORKER_HOSTS,
        ));
    }
    if kind == SwUpdateKind::SwPatch && alarm_restrictions == AlarmRestrictions::Permissive {
        return Err(ValidationError::new(
            "alarm-restrictions",
            "\"permissive\" is only for sw-upgrade strategies; use strict or relaxed",
        ));
    }
    Ok(())
}

/// The body of `POST /api/orchestration/sw-patch/strategy` (spec §4.2).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SwPatchOptions {
    pub controller_apply_type: ApplyType,
    pub storage_apply_type: ApplyType,
    /// Kept for the REST shape; Convoy has no swift hosts, so it changes nothing.
    #[serde(default = "ignore")]
    pub swift_apply_type: ApplyType,
    pub worker_apply_type: ApplyType,
    #[serde(default = "default_max_parallel_worker_hosts")]
    pub max_parallel_worker_hosts: u32,
    pub default_instance_action: InstanceAction,
    #[serde(default)]
    pub alarm_restrictions: AlarmRestrictions,
}

impl Default for SwPatchOptions {
    /// `sw-manager patch-strategy create`'s defaults: the first value each option lists.
    fn default() -> Self {
        SwPatchOptions {
            controller_apply_type: ApplyType::Serial,
            storage_apply_type: ApplyType::Serial,
            swift_apply_type: ApplyType::Ignore,
            worker_apply_type: ApplyType::Serial,
            max_parallel_worker_hosts: DEFAULT_MAX_PARALLEL_WORKER_HOSTS,
            default_instance_action: InstanceAction::StopStart,
            alarm_restrictions: AlarmRestrictions::Strict,
        }
    }
}

impl SwPatchOptions {
    /// Checks what serde cannot: `max-parallel-worker-hosts` in 2..100 (the original's
    /// message) and no `permissive` alarm restrictions. `controller-apply-type: parallel` is
    /// accepted here and fails the build, as in the original.
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_common(
            SwUpdateKind::SwPatch,
            self.max_parallel_worker_hosts,
            self.alarm_restrictions,
        )
    }

    pub fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            kind: SwUpdateKind::SwPatch,
            controller_apply_type: self.controller_apply_type,
            storage_apply_type: self.storage_apply_type,
            swift_apply_type: self.swift_apply_type,
            worker_apply_type: self.worker_apply_type,
            max_parallel_worker_hosts: self.max_parallel_worker_hosts,
            default_instance_action: self.default_instance_action,
            alarm_restrictions: self.alarm_restrictions,
        }
    }
}

/// Accepts `"release": "24.09"` as well as the server's list form `["24.09"]`.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The body of `POST /api/orchestration/sw-upgrade/strategy` (`sw-manager sw-deploy-strategy
/// create`, spec §4.1, §4.2): the sw-patch options plus the release to deploy, `rollback` and
/// `delete` (remove the deploy record once complete).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SwUpgradeOptions {
    pub controller_apply_type: ApplyType,
    pub storage_apply_type: ApplyType,
    #[serde(default = "ignore")]
    pub swift_apply_type: ApplyType,
    pub worker_apply_type: ApplyType,
    #[serde(default = "default_max_parallel_worker_hosts")]
    pub max_parallel_worker_hosts: u32,
    pub default_instance_action: InstanceAction,
    #[serde(default)]
    pub alarm_restrictions: AlarmRestrictions,
    /// The release to deploy: a string or a list of one (the server's form).
    #[serde(default, deserialize_with = "one_or_many")]
    pub release: Vec<String>,
    #[serde(default)]
    pub rollback: bool,
    #[serde(default)]
    pub delete: bool,
}

impl Default for SwUpgradeOptions {
    /// `sw-manager sw-deploy-strategy create`'s defaults, with no release chosen yet.
    fn default() -> Self {
        let p = SwPatchOptions::default();
        SwUpgradeOptions {
            controller_apply_type: p.controller_apply_type,
            storage_apply_type: p.storage_apply_type,
            swift_apply_type: p.swift_apply_type,
            worker_apply_type: p.worker_apply_type,
            max_parallel_worker_hosts: p.max_parallel_worker_hosts,
            default_instance_action: p.default_instance_action,
            alarm_restrictions: p.alarm_restrictions,
            release: Vec::new(),
            rollback: false,
            delete: false,
        }
    }
}

impl SwUpgradeOptions {
    /// Checks `max-parallel-worker-hosts` in 2..10 and that at most one release is named
    /// (Convoy deploys one release at a time). "Cannot set both release and rollback" and
    /// an unknown release are build failures, as in the original (see `build`).
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_common(
            SwUpdateKind::SwUpgrade,
            self.max_parallel_worker_hosts,
            self.alarm_restrictions,
        )?;
        if self.release.len() > 1 {
            return Err(ValidationError::new(
                "release",
                format!(
                    "names {} releases; a strategy deploys one release at a time",
                    self.release.len()
                ),
            ));
        }
        for release in &self.release {
            crate::validation::validate_name("release", release)?;
        }
        Ok(())
    }

    /// The release to deploy, if one was named.
    pub fn release(&self) -> Option<&str> {
        self.release.first().map(String::as_str)
    }

    pub fn apply_options(&self) -> ApplyOptions {
        ApplyOptions {
            kind: SwUpdateKind::SwUpgrade,
            controller_apply_type: self.controller_apply_type,
            storage_apply_type: self.storage_apply_type,
            swift_apply_type: self.swift_apply_type,
            worker_apply_type: self.worker_apply_type,
            max_parallel_worker_hosts: self.max_parallel_worker_hosts,
            default_instance_action: self.default_instance_action,
            alarm_restrictions: self.alarm_restrictions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn enums_use_the_original_strings() {
        for k in SwUpdateKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for a in ApplyType::ALL {
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for i in InstanceAction::ALL {
            assert_eq!(serde_json::to_value(i).unwrap(), i.as_str());
        }
        for r in AlarmRestrictions::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        assert_eq!(SwUpdateKind::SwUpgrade.as_str(), "sw-upgrade");
        assert_eq!(InstanceAction::StopStart.as_str(), "stop-start");
        let err = ApplyType::parse_for("worker-apply-type", "sometimes").unwrap_err();
        assert_eq!(err.field, "worker-apply-type");
        assert!(err.reason.contains("serial, parallel, ignore"), "{err}");
    }

    #[test]
    fn the_spec_create_body_parses_and_defaults_fill_the_rest() {
        let body = json!({"controller-apply-type":"serial","storage-apply-type":"serial",
            "swift-apply-type":"ignore","worker-apply-type":"parallel",
            "max-parallel-worker-hosts":4,"default-instance-action":"stop-start",
            "alarm-restrictions":"strict"});
        let o: SwPatchOptions = serde_json::from_value(body).unwrap();
        assert_eq!(o.worker_apply_type, ApplyType::Parallel);
        assert_eq!(o.max_parallel_worker_hosts, 4);
        assert_eq!(o.validate(), Ok(()));

        let minimal = json!({"controller-apply-type":"ignore","storage-apply-type":"ignore",
            "worker-apply-type":"serial","default-instance-action":"migrate"});
        let o: SwPatchOptions = serde_json::from_value(minimal).unwrap();
        assert_eq!(o.max_parallel_worker_hosts, 2);
        assert_eq!(o.alarm_restrictions, AlarmRestrictions::Strict);
        assert_eq!(o.swift_apply_type, ApplyType::Ignore);
    }

    #[test]
    fn mandatory_keys_and_unknown_keys_are_refused() {
        for missing in [
            "controller-apply-type",
            "storage-apply-type",
            "worker-apply-type",
            "default-instance-action",
        ] {
            let mut body = json!({"controller-apply-type":"serial","storage-apply-type":"serial",
                "worker-apply-type":"serial","default-instance-action":"migrate"});
            body.as_object_mut().unwrap().remove(missing);
            let err = serde_json::from_value::<SwPatchOptions>(body).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
        let body = json!({"controller-apply-type":"serial","storage-apply-type":"serial",
            "worker-apply-type":"serial","default-instance-action":"migrate","bogus":1});
        assert!(serde_json::from_value::<SwPatchOptions>(body).is_err());
    }

    #[test]
    fn controllers_in_parallel_are_accepted_at_create() {
        let o = SwPatchOptions {
            controller_apply_type: ApplyType::Parallel,
            ..SwPatchOptions::default()
        };
        assert_eq!(o.validate(), Ok(()));
    }

    #[test]
    fn permissive_is_for_sw_upgrade_only() {
        let patch = SwPatchOptions {
            alarm_restrictions: AlarmRestrictions::Permissive,
            ..SwPatchOptions::default()
        };
        assert_eq!(patch.validate().unwrap_err().field, "alarm-restrictions");
        let upgrade = SwUpgradeOptions {
            alarm_restrictions: AlarmRestrictions::Permissive,
            ..SwUpgradeOptions::default()
        };
        assert_eq!(upgrade.validate(), Ok(()));
    }

    #[test]
    fn sw_upgrade_body_takes_a_release_as_string_or_list() {
        let base = json!({"controller-apply-type":"serial","storage-apply-type":"serial",
            "worker-apply-type":"serial","default-instance-action":"stop-start"});
        let mut one = base.clone();
        one["release"] = json!("24.09");
        let o: SwUpgradeOptions = serde_json::from_value(one).unwrap();
        assert_eq!(o.release(), Some("24.09"));
        let mut list = base.clone();
        list["release"] = json!(["24.09"]);
        list["delete"] = json!(true);
        let o: SwUpgradeOptions = serde_json::from_value(list).unwrap();
        assert_eq!(o.release(), Some("24.09"));
        assert!(o.delete);
        let o: SwUpgradeOptions = serde_json::from_value(base).unwrap();
        assert_eq!(o.release(), None);
        let two = SwUpgradeOptions {
            release: vec!["a".into(), "b".into()],
            ..SwUpgradeOptions::default()
        };
        assert_eq!(two.validate().unwrap_err().field, "release");
    }

    proptest! {
        #[test]
        fn max_parallel_worker_hosts_bounds_follow_the_kind(n in 0u32..200) {
            let patch = SwPatchOptions { max_parallel_worker_hosts: n, ..SwPatchOptions::default() };
            prop_assert_eq!(patch.validate().is_ok(), (2..=100).contains(&n));
            let upgrade = SwUpgradeOptions { max_parallel_worker_hosts: n, ..SwUpgradeOptions::default() };
            prop_assert_eq!(upgrade.validate().is_ok(), (2..=10).contains(&n));
            if let Err(e) = patch.validate() {
                prop_assert_eq!(e.field.as_str(), "max-parallel-worker-hosts");
                prop_assert_eq!(e.reason.as_str(), INVALID_MAX_PARALLEL_WORKER_HOSTS);
            }
        }
    }
}

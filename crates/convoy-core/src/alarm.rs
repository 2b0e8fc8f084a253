//! Alarms: conditions a site raises while they last and clears when they end, in the shape of
//! StarlingX's fault management (an alarm id such as `200.001`, a severity, the entity it is
//! about such as `host=worker-1`, a reason, and whether it affects management: strategies
//! refuse to run over management-affecting alarms).
//!
//! Some alarms Convoy raises itself, from what it knows of its hosts; [`desired_host_alarms`]
//! says which should be active, and [`reconcile`] what to raise and clear to get there.

use serde::{Deserialize, Serialize};

use crate::ValidationError;
use crate::names::named_enum;

/// How bad an alarm is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Major,
    Minor,
    Warning,
}

named_enum!(Severity, field = "severity", {
    Critical => "critical",
    Major => "major",
    Minor => "minor",
    Warning => "warning",
});

/// Checks an alarm id: three digits, a dot, three digits (`200.001`).
pub fn validate_alarm_id(field: &str, id: &str) -> Result<(), ValidationError> {
    let bytes = id.as_bytes();
    let shaped = bytes.len() == 7
        && bytes[3] == b'.'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 3 || b.is_ascii_digit());
    if shaped {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{id:?} is not an alarm id: three digits, a dot, three digits (200.001)"),
        ))
    }
}

/// Longest entity or reason accepted.
pub const MAX_ENTITY_LEN: usize = 255;
pub const MAX_REASON_LEN: usize = 1024;

/// Checks an entity: `key=value` pairs joined by `.` (`host=worker-1`,
/// `host=worker-1.process=ntpd`), keys in lowercase letters, `_` and `-`, values without
/// spaces, `=` or `.`.
pub fn validate_entity(field: &str, entity: &str) -> Result<(), ValidationError> {
    let refuse = |reason: String| Err(ValidationError::new(field, reason));
    if entity.is_empty() || entity.len() > MAX_ENTITY_LEN {
        return refuse(format!("must be 1 to {MAX_ENTITY_LEN} characters"));
    }
    for pair in entity.split('.') {
        let Some((key, value)) = pair.split_once('=') else {
            return refuse(format!(
                "{pair:?} is not key=value (an entity is like host=worker-1)"
            ));
        };
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-');
        let value_ok = !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '=' && c != '.');
        if !key_ok || !value_ok {
            return refuse(format!(
                "{pair:?} is not key=value with a lowercase key and a value without spaces, \
                 '=' or '.'"
            ));
        }
    }
    Ok(())
}

/// Checks a reason: 1 to 1024 characters of printable text.
pub fn validate_reason(field: &str, reason: &str) -> Result<(), ValidationError> {
    if reason.trim().is_empty() || reason.len() > MAX_REASON_LEN {
        return Err(ValidationError::new(
            field,
            format!("must be 1 to {MAX_REASON_LEN} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not hold control characters",
        ));
    }
    Ok(())
}

/// The entity of a host: `host=<hostname>`.
pub fn host_entity(hostname: &str) -> String {
    format!("host={hostname}")
}

/// Whether `entity` is about `hostname` (the host itself or something on it): what an agent
/// may raise and clear.
pub fn entity_on_host(entity: &str, hostname: &str) -> bool {
    let own = host_entity(hostname);
    entity == own || entity.starts_with(&format!("{own}."))
}

/// One alarm as it should be active (Convoy's own, or one asked for).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DesiredAlarm {
    pub alarm_id: &'static str,
    pub entity: String,
    pub severity: Severity,
    pub reason: String,
    pub mgmt_affecting: bool,
}

/// A host locked by an operator (StarlingX's `200.001`).
pub const HOST_LOCKED: &str = "200.001";
/// A host whose agent has missed its heartbeats.
pub const HOST_OFFLINE: &str = "200.004";

/// Patches are partly applied or partly removed: some host has yet to install (StarlingX's
/// `900.001`, which the patch strategy ignores).
pub const PATCHING_IN_PROGRESS: &str = "900.001";
/// The entity of the site's patching: not a host, so no agent can clear it.
pub const PATCHING_ENTITY: &str = "subsystem=patching";

/// The patching alarm, while patches are `Partial-Apply` or `Partial-Remove`.
pub fn desired_patching_alarm(states: &[crate::patch::PatchState]) -> Option<DesiredAlarm> {
    use crate::patch::PatchState;
    let pending = states
        .iter()
        .filter(|s| matches!(s, PatchState::PartialApply | PatchState::PartialRemove))
        .count();
    (pending > 0).then(|| DesiredAlarm {
        alarm_id: PATCHING_IN_PROGRESS,
        entity: PATCHING_ENTITY.into(),
        severity: Severity::Minor,
        reason: format!(
            "Patching operation in progress: {pending} patch(es) partly applied or removed; \
             install them on the hosts (convoy patch host-install)."
        ),
        mgmt_affecting: false,
    })
}

/// A software deploy is under way (`900.005`, "upgrade in progress", which both strategies
/// ignore): from `deploy start` until the deploy completes.
pub const DEPLOY_IN_PROGRESS: &str = "900.005";
/// The entity of the site's software deploy.
pub const DEPLOY_ENTITY: &str = "subsystem=software-deploy";

/// The deploy alarm, while the site's deploy of `release` in `state` has not completed.
pub fn desired_deploy_alarm(
    deploy: Option<(&str, crate::sw_update::release::DeployState)>,
) -> Option<DesiredAlarm> {
    use crate::sw_update::release::DeployState;
    let (release, state) = deploy?;
    (state != DeployState::Completed).then(|| DesiredAlarm {
        alarm_id: DEPLOY_IN_PROGRESS,
        entity: DEPLOY_ENTITY.into(),
        severity: Severity::Minor,
        reason: format!(
            "Software deploy of {release} in progress ({state}); complete it, or delete it \
             (convoy software deploy show)."
        ),
        mgmt_affecting: false,
    })
}

/// What Convoy knows of a host that its own alarms follow from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCondition {
    pub hostname: String,
    pub locked: bool,
    pub offline: bool,
}

/// The alarms Convoy itself keeps active for these hosts: each locked host has `200.001`, each
/// offline host `200.004` (a locked host that is offline is expected to be: no `200.004`).
pub fn desired_host_alarms(hosts: &[HostCondition]) -> Vec<DesiredAlarm> {
    let mut desired = Vec::new();
    for host in hosts {
        if host.locked {
            desired.push(DesiredAlarm {
                alarm_id: HOST_LOCKED,
                entity: host_entity(&host.hostname),
                severity: Severity::Warning,
                reason: format!(
                    "{} was administratively locked to take it out-of-service.",
                    host.hostname
                ),
                mgmt_affecting: false,
            });
        } else if host.offline {
            desired.push(DesiredAlarm {
                alarm_id: HOST_OFFLINE,
                entity: host_entity(&host.hostname),
                severity: Severity::Critical,
                reason: format!(
                    "{} is offline: its agent has missed its heartbeats.",
                    host.hostname
                ),
                mgmt_affecting: true,
            });
        }
    }
    desired.sort();
    desired
}

/// What to raise and what to clear so that the alarms active now (`active`: id and entity)
/// become `desired`. An alarm that is active and desired is left alone.
pub fn reconcile<'a>(
    desired: &'a [DesiredAlarm],
    active: &[(String, String)],
) -> (Vec<&'a DesiredAlarm>, Vec<(String, String)>) {
    let raise = desired
        .iter()
        .filter(|d| {
            !active
                .iter()
                .any(|(id, entity)| id == d.alarm_id && *entity == d.entity)
        })
        .collect();
    let clear = active
        .iter()
        .filter(|(id, entity)| {
            !desired
                .iter()
                .any(|d| d.alarm_id == id && d.entity == *entity)
        })
        .cloned()
        .collect();
    (raise, clear)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_ids_entities_and_reasons_are_checked_by_field() {
        assert!(validate_alarm_id("alarm_id", "200.001").is_ok());
        for bad in ["200001", "20.0001", "200.01", "abc.def", "200.0011", ""] {
            let err = validate_alarm_id("alarm_id", bad).unwrap_err();
            assert_eq!(err.field, "alarm_id", "{bad}");
        }
        for good in [
            "host=worker-1",
            "host=worker-1.process=ntpd",
            "subcloud=sc_1",
        ] {
            assert!(validate_entity("entity", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "host",
            "host=",
            "=x",
            "Host=a",
            "host=a b",
            "host=a..b=c",
        ] {
            assert!(validate_entity("entity", bad).is_err(), "{bad}");
        }
        assert!(validate_reason("reason", "disk 91% full").is_ok());
        assert!(validate_reason("reason", " ").is_err());
        assert!(validate_reason("reason", "a\nb").is_err());
        assert!(validate_reason("reason", &"x".repeat(2000)).is_err());
    }

    #[test]
    fn an_agent_may_touch_only_its_own_hosts_entities() {
        assert!(entity_on_host("host=worker-1", "worker-1"));
        assert!(entity_on_host("host=worker-1.disk=sda", "worker-1"));
        assert!(!entity_on_host("host=worker-10", "worker-1"));
        assert!(!entity_on_host("host=worker-2", "worker-1"));
    }

    fn host(name: &str, locked: bool, offline: bool) -> HostCondition {
        HostCondition {
            hostname: name.into(),
            locked,
            offline,
        }
    }

    #[test]
    fn locked_and_offline_hosts_have_their_alarms() {
        let desired = desired_host_alarms(&[
            host("a", true, false),
            host("b", false, true),
            host("c", true, true),
            host("d", false, false),
        ]);
        let ids: Vec<(&str, &str)> = desired
            .iter()
            .map(|d| (d.alarm_id, d.entity.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                (HOST_LOCKED, "host=a"),
                (HOST_LOCKED, "host=c"),
                (HOST_OFFLINE, "host=b")
            ]
        );
    }

    #[test]
    fn patching_is_in_progress_while_a_patch_is_partly_applied_or_removed() {
        use crate::patch::PatchState::*;
        assert_eq!(
            desired_patching_alarm(&[Available, Applied, Committed]),
            None
        );
        for partial in [PartialApply, PartialRemove] {
            let alarm = desired_patching_alarm(&[Applied, partial]).unwrap();
            assert_eq!(
                (alarm.alarm_id, alarm.entity.as_str()),
                (PATCHING_IN_PROGRESS, PATCHING_ENTITY)
            );
        }
        assert!(!entity_on_host(PATCHING_ENTITY, "subsystem"));
    }

    #[test]
    fn a_deploy_is_alarmed_until_it_completes() {
        use crate::sw_update::release::DeployState;
        assert!(desired_deploy_alarm(None).is_none());
        let alarm = desired_deploy_alarm(Some(("R1", DeployState::Host))).unwrap();
        assert_eq!(
            (alarm.alarm_id, alarm.entity.as_str()),
            (DEPLOY_IN_PROGRESS, DEPLOY_ENTITY)
        );
        assert!(alarm.reason.contains("R1") && alarm.reason.contains("host"));
        assert!(desired_deploy_alarm(Some(("R1", DeployState::Completed))).is_none());
    }

    #[test]
    fn reconcile_raises_what_is_missing_and_clears_what_ended() {
        let desired = desired_host_alarms(&[host("a", true, false), host("b", false, true)]);
        let active = vec![
            (HOST_LOCKED.to_string(), "host=a".to_string()),
            (HOST_LOCKED.to_string(), "host=z".to_string()),
        ];
        let (raise, clear) = reconcile(&desired, &active);
        assert_eq!(raise.len(), 1);
        assert_eq!(raise[0].entity, "host=b");
        assert_eq!(clear, [(HOST_LOCKED.to_string(), "host=z".to_string())]);
        // Once done, nothing more to do.
        let active: Vec<_> = desired
            .iter()
            .map(|d| (d.alarm_id.to_string(), d.entity.clone()))
            .collect();
        let (raise, clear) = reconcile(&desired, &active);
        assert!(raise.is_empty() && clear.is_empty());
    }
}

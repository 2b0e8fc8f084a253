//! The audit loop: every `audit_interval`, each subcloud's site summary is read over its REST
//! API and compared with the System Controller's own. Audits run at most `audit_concurrency` at
//! a time, never two at once for one subcloud, and each within `audit_timeout`, so a hung
//! subcloud costs only its own audit. What changed is logged, written with the alarms it
//! raises or clears in one transaction.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use convoy_api::ClientError;
use convoy_api::dc::SiteAudit;
use convoy_core::alarm::Severity;
use convoy_core::patch::RepoState;
use convoy_core::subcloud::{
    Availability, Management, SyncStatus, availability_after, software_sync,
};
use convoy_store::subclouds::{AuditWrite, SubcloudRecord};
use convoy_store::{AlarmRecord, Store};
use tracing::{info, warn};

use super::alarm_entity;
use crate::state::AppState;

/// Subcloud offline.
pub const ALARM_OFFLINE: &str = "280.001";
/// Subcloud out of sync.
pub const ALARM_OUT_OF_SYNC: &str = "280.002";

/// The software deployed on this site: patches applied or committed, by id.
pub async fn deployed(store: &dyn Store) -> convoy_store::Result<BTreeSet<String>> {
    Ok(store
        .patches()
        .await?
        .into_iter()
        .filter(|p| matches!(p.repo_state, RepoState::Applied | RepoState::Committed))
        .map(|p| p.id)
        .collect())
}

pub fn spawn(state: AppState) {
    tokio::spawn(run(state));
}

async fn run(state: AppState) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(state.dc.audit_concurrency));
    loop {
        if let Err(e) = cycle(&state, &in_flight, &permits).await {
            warn!("subcloud audit: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(state.dc.audit_interval) => {}
            _ = state.audit_wake.notified() => {}
        }
    }
}

/// Starts an audit of every subcloud not being audited already.
async fn cycle(
    state: &AppState,
    in_flight: &Arc<Mutex<HashSet<i64>>>,
    permits: &Arc<tokio::sync::Semaphore>,
) -> convoy_store::Result<()> {
    let subclouds = state.subclouds.subclouds().await?;
    if subclouds.is_empty() {
        return Ok(());
    }
    let own = Arc::new(deployed(state.store.as_ref()).await?);
    for subcloud in subclouds {
        if !in_flight.lock().unwrap().insert(subcloud.id) {
            continue;
        }
        let (state, in_flight, permits, own) = (
            state.clone(),
            in_flight.clone(),
            permits.clone(),
            own.clone(),
        );
        tokio::spawn(async move {
            let id = subcloud.id;
            if let Ok(_permit) = permits.acquire_owned().await {
                audit_one(&state, subcloud, &own).await;
            }
            in_flight.lock().unwrap().remove(&id);
        });
    }
    Ok(())
}

async fn audit_one(state: &AppState, subcloud: SubcloudRecord, own: &BTreeSet<String>) {
    let observed = tokio::time::timeout(state.dc.audit_timeout, observe(state, &subcloud))
        .await
        .unwrap_or_else(|_| Err("the audit timed out".into()));
    let now = crate::clock::now();
    let write = conclude(&subcloud, observed, own, state.dc.offline_after, now);
    match state.subclouds.record_audit(subcloud.id, &write).await {
        Ok(true) => {}
        Ok(false) => state.sessions.forget(subcloud.id),
        Err(e) => warn!(subcloud = subcloud.name, "cannot record the audit: {e}"),
    }
}

/// Reads the subcloud's summary as the service account, logging in again once if the token
/// was refused.
async fn observe(state: &AppState, subcloud: &SubcloudRecord) -> Result<SiteAudit, String> {
    for attempt in 0..2 {
        let client = state
            .sessions
            .client(&state.dc, subcloud)
            .await
            .map_err(|e| e.to_string())?;
        match client.site_audit().await {
            Ok(audit) => return Ok(audit),
            Err(e) if attempt == 0 && super::connection::token_refused(&e) => {
                state.sessions.forget(subcloud.id);
            }
            Err(e) => return Err(describe(e)),
        }
    }
    Err("the subcloud refused the service account's token".into())
}

fn describe(error: ClientError) -> String {
    error.to_string()
}

/// What an audit's observation means for the subcloud: its availability, sync status and
/// alarms. Logs each change.
fn conclude(
    subcloud: &SubcloudRecord,
    observed: Result<SiteAudit, String>,
    own: &BTreeSet<String>,
    offline_after: u32,
    now: jiff::Timestamp,
) -> AuditWrite {
    let (succeeded, failed_audits) = match &observed {
        Ok(_) => (true, 0),
        Err(_) => (false, subcloud.failed_audits.saturating_add(1)),
    };
    let availability = availability_after(
        subcloud.availability,
        succeeded,
        failed_audits,
        offline_after,
    );
    let deployed: Option<BTreeSet<String>> = observed
        .as_ref()
        .ok()
        .map(|a| a.deployed.iter().cloned().collect());
    let software = software_sync(subcloud.management, availability, own, deployed.as_ref());
    if let Err(reason) = &observed {
        warn!(
            subcloud = subcloud.name,
            failed_audits, "audit failed: {reason}"
        );
    }
    if availability != subcloud.availability {
        info!(
            subcloud = subcloud.name,
            from = subcloud.availability.as_str(),
            to = availability.as_str(),
            "subcloud availability changed"
        );
    }
    let before = subcloud
        .endpoints
        .iter()
        .find(|(e, _)| e == "software")
        .map(|(_, s)| *s);
    if before != Some(software) {
        info!(
            subcloud = subcloud.name,
            endpoint = "software",
            to = software.as_str(),
            "subcloud sync status changed"
        );
    }
    let entity = alarm_entity(&subcloud.name);
    let alarm = |id: &str, severity: Severity, reason: String| AlarmRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        alarm_id: id.into(),
        entity: entity.clone(),
        severity,
        reason,
        mgmt_affecting: true,
        raised_at: now,
        source: "convoy".into(),
    };
    let mut raise = vec![];
    let mut clear = vec![];
    if availability == Availability::Offline && subcloud.management == Management::Managed {
        raise.push(alarm(
            ALARM_OFFLINE,
            Severity::Critical,
            format!("Subcloud {} is offline", subcloud.name),
        ));
    } else {
        clear.push((ALARM_OFFLINE.to_string(), entity.clone()));
    }
    if software == SyncStatus::OutOfSync {
        raise.push(alarm(
            ALARM_OUT_OF_SYNC,
            Severity::Major,
            format!("Subcloud {} software is out-of-sync", subcloud.name),
        ));
    } else {
        clear.push((ALARM_OUT_OF_SYNC.to_string(), entity.clone()));
    }
    let observed = observed.ok();
    AuditWrite {
        availability,
        failed_audits,
        software_version: observed.as_ref().map(|a| a.software_version.clone()),
        audit: observed
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok()),
        audited_at: now,
        assumed_management: subcloud.management,
        endpoints: vec![("software".into(), software)],
        raise,
        clear,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convoy_store::subclouds::SubcloudRecord;

    fn subcloud(management: Management, availability: Availability, failed: u32) -> SubcloudRecord {
        SubcloudRecord {
            id: 1,
            name: "sc1".into(),
            description: None,
            location: None,
            group_id: 1,
            management,
            availability,
            deploy_status: "complete".into(),
            software_version: None,
            address: "https://10.0.0.2:7400".into(),
            tls_fingerprint: None,
            service_user: "systemcontroller-1".into(),
            service_password: "secret".into(),
            bootstrap_values: None,
            failed_audits: failed,
            audit: None,
            audited_at: None,
            created_at: jiff::Timestamp::UNIX_EPOCH,
            updated_at: None,
            endpoints: vec![("software".into(), SyncStatus::Unknown)],
        }
    }

    fn site(deployed: &[&str]) -> SiteAudit {
        SiteAudit {
            software_version: "25.09".into(),
            deployed: deployed.iter().map(|s| s.to_string()).collect(),
            ..SiteAudit::default()
        }
    }

    fn ids(write: &AuditWrite) -> (Vec<&str>, Vec<&str>) {
        (
            write.raise.iter().map(|a| a.alarm_id.as_str()).collect(),
            write.clear.iter().map(|(id, _)| id.as_str()).collect(),
        )
    }

    #[test]
    fn a_managed_subcloud_missing_the_controllers_patch_is_out_of_sync_with_280_002() {
        let own: BTreeSet<String> = ["P1".to_string()].into();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let sc = subcloud(Management::Managed, Availability::Offline, 3);
        let write = conclude(&sc, Ok(site(&[])), &own, 2, now);
        assert_eq!(write.availability, Availability::Online);
        assert_eq!(write.failed_audits, 0);
        assert_eq!(
            write.endpoints,
            vec![("software".into(), SyncStatus::OutOfSync)]
        );
        assert_eq!(ids(&write), (vec!["280.002"], vec!["280.001"]));
        assert_eq!(write.raise[0].entity, "subcloud=sc1");
        let write = conclude(&sc, Ok(site(&["P1"])), &own, 2, now);
        assert_eq!(write.endpoints[0].1, SyncStatus::InSync);
        assert_eq!(ids(&write), (vec![], vec!["280.001", "280.002"]));
    }

    #[test]
    fn failed_audits_take_a_subcloud_offline_at_the_threshold_with_280_001() {
        let own = BTreeSet::new();
        let now = jiff::Timestamp::UNIX_EPOCH;
        let first = conclude(
            &subcloud(Management::Managed, Availability::Online, 0),
            Err("down".into()),
            &own,
            2,
            now,
        );
        assert_eq!(first.availability, Availability::Online);
        assert_eq!(first.failed_audits, 1);
        let second = conclude(
            &subcloud(Management::Managed, Availability::Online, 1),
            Err("down".into()),
            &own,
            2,
            now,
        );
        assert_eq!(second.availability, Availability::Offline);
        assert_eq!(second.endpoints[0].1, SyncStatus::Unknown);
        assert_eq!(ids(&second), (vec!["280.001"], vec!["280.002"]));
        // An unmanaged subcloud raises nothing.
        let unmanaged = conclude(
            &subcloud(Management::Unmanaged, Availability::Online, 1),
            Err("down".into()),
            &own,
            2,
            now,
        );
        assert!(unmanaged.raise.is_empty());
    }
}

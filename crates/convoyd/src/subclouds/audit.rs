//! The audit loop: every `audit_interval`, each subcloud's site summary is read over its REST
//! API and compared with the System Controller's own. Audits run at most `audit_concurrency` at
//! a time, never two at once for one subcloud, and each within `audit_timeout`, so a hung
//! subcloud costs only its own audit. What changed is logged, written with the alarms it
//! raises or clears in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use convoy_api::ClientError;
use convoy_api::dc::{IdentitySync, SiteAudit, SyncedUser, user_digest};
use convoy_core::alarm::Severity;
use convoy_core::patch::RepoState;
use convoy_core::subcloud::{
    Availability, Management, SyncStatus, availability_after, identity_sync, software_sync,
    users_to_sync,
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

/// What every audit of a cycle compares a subcloud with: the System Controller's own deployed
/// software and users.
#[derive(Debug, Default)]
pub struct Own {
    pub deployed: BTreeSet<String>,
    pub users: Vec<SyncedUser>,
    /// Name → digest of each user.
    pub digests: BTreeMap<String, String>,
}

impl Own {
    async fn read(store: &dyn Store) -> convoy_store::Result<Own> {
        let mut own = Own {
            deployed: deployed(store).await?,
            ..Own::default()
        };
        for user in store.users().await? {
            own.digests.insert(
                user.name.clone(),
                user_digest(&user.name, user.role, &user.password_hash),
            );
            own.users.push(SyncedUser {
                name: user.name,
                role: user.role,
                password_hash: user.password_hash,
            });
        }
        Ok(own)
    }
}

/// What one audit saw: the site's summary, and whether the subcloud now holds the System
/// Controller's users (None when it was not synced: not managed).
#[derive(Debug)]
struct Observed {
    site: SiteAudit,
    identity_synced: Option<bool>,
}

pub fn spawn(state: AppState) {
    tokio::spawn(run(state));
}

async fn run(state: AppState) {
    let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(state.dc.audit_concurrency));
    // A wake-up (an add, a manage) starts a cycle early, but cycles start at most once a
    // second: a thousand adds in a row cost a few cycles, not a thousand.
    let min_gap = MIN_CYCLE_GAP.min(state.dc.audit_interval);
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = cycle(&state, &in_flight, &permits).await {
            warn!("subcloud audit: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep_until(started + state.dc.audit_interval) => {}
            _ = state.audit_wake.notified() => {
                tokio::time::sleep_until(started + min_gap).await;
            }
        }
    }
}

/// The shortest time between the starts of two audit cycles.
const MIN_CYCLE_GAP: std::time::Duration = std::time::Duration::from_secs(1);

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
    let own = Arc::new(Own::read(state.store.as_ref()).await?);
    let started = std::time::Instant::now();
    let due: Vec<SubcloudRecord> = {
        let mut in_flight = in_flight.lock().unwrap();
        subclouds
            .into_iter()
            .filter(|s| in_flight.insert(s.id))
            .collect()
    };
    let total = due.len();
    let remaining = Arc::new(AtomicUsize::new(total));
    // A few workers take the cycle's subclouds from one queue: an audit's future is large
    // (HTTP and TLS state), so one task per subcloud would hold thousands of them at once.
    let queue = Arc::new(Mutex::new(VecDeque::from(due)));
    for _ in 0..state.dc.audit_concurrency.min(total) {
        let (state, in_flight, permits, own, remaining, queue) = (
            state.clone(),
            in_flight.clone(),
            permits.clone(),
            own.clone(),
            remaining.clone(),
            queue.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Some(subcloud) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                let id = subcloud.id;
                // The permits bound audits across cycles that overlap.
                if let Ok(_permit) = permits.clone().acquire_owned().await {
                    audit_one(&state, subcloud, &own).await;
                }
                in_flight.lock().unwrap().remove(&id);
                // The last audit of the cycle tells how long the cycle took.
                if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    info!(
                        subclouds = total,
                        wall_ms = started.elapsed().as_millis() as u64,
                        "audit cycle complete"
                    );
                }
            }
        });
    }
    Ok(())
}

async fn audit_one(state: &AppState, subcloud: SubcloudRecord, own: &Own) {
    let observed = tokio::time::timeout(state.dc.audit_timeout, observe(state, &subcloud, own))
        .await
        .unwrap_or_else(|_| Err("the audit timed out".into()));
    let now = crate::clock::now();
    let write = conclude(&subcloud, observed, own, state.dc.offline_after, now);
    // Most audits find what the last one found: nothing is written (no fsync per subcloud
    // per cycle).
    if unchanged(&subcloud, &write) {
        return;
    }
    match state.subclouds.record_audit(subcloud.id, &write).await {
        Ok(true) => {}
        Ok(false) => state.sessions.forget(subcloud.id),
        Err(e) => warn!(subcloud = subcloud.name, "cannot record the audit: {e}"),
    }
}

/// Reads the subcloud's summary as the service account, logging in again once if the token
/// was refused; a managed subcloud that lacks some of the System Controller's users (or holds
/// them otherwise) gets them.
async fn observe(
    state: &AppState,
    subcloud: &SubcloudRecord,
    own: &Own,
) -> Result<Observed, String> {
    for attempt in 0..2 {
        let client = state
            .sessions
            .client(&state.dc, subcloud)
            .await
            .map_err(|e| e.to_string())?;
        match client.site_audit().await {
            Ok(site) => {
                let identity_synced = if subcloud.management == Management::Managed {
                    Some(sync_identity(&client, subcloud, own, &site).await)
                } else {
                    None
                };
                return Ok(Observed {
                    site,
                    identity_synced,
                });
            }
            Err(e) if attempt == 0 && super::connection::token_refused(&e) => {
                state.sessions.forget(subcloud.id);
            }
            Err(e) => return Err(describe(e)),
        }
    }
    Err("the subcloud refused the service account's token".into())
}

/// Whether writing `write` would change nothing: the same availability, failure count,
/// version, observations and sync statuses, and no alarm to raise (clears of alarms that are
/// not active change nothing).
fn unchanged(subcloud: &SubcloudRecord, write: &AuditWrite) -> bool {
    write.raise.is_empty()
        && subcloud.audited_at.is_some()
        && write.availability == subcloud.availability
        && write.failed_audits == subcloud.failed_audits
        && write
            .software_version
            .as_ref()
            .is_none_or(|v| subcloud.software_version.as_ref() == Some(v))
        && write
            .audit
            .as_ref()
            .is_none_or(|a| subcloud.audit.as_ref() == Some(a))
        && write.endpoints.iter().all(|(endpoint, status)| {
            subcloud
                .endpoints
                .iter()
                .any(|(e, s)| e == endpoint && s == status)
        })
}

fn describe(error: ClientError) -> String {
    error.to_string()
}

/// Pushes the users the subcloud lacks or holds otherwise; whether it holds them all now.
async fn sync_identity(
    client: &convoy_api::Client,
    subcloud: &SubcloudRecord,
    own: &Own,
    site: &SiteAudit,
) -> bool {
    let theirs: BTreeMap<String, String> = site
        .users
        .iter()
        .map(|u| (u.name.clone(), u.digest.clone()))
        .collect();
    let missing = users_to_sync(&own.digests, &theirs);
    if missing.is_empty() {
        return true;
    }
    let users = own
        .users
        .iter()
        .filter(|u| missing.contains(&u.name.as_str()))
        .cloned()
        .collect();
    match client.sync_identity(&IdentitySync { users }).await {
        Ok(synced) => {
            info!(
                subcloud = subcloud.name,
                users = ?missing,
                changed = synced.changed,
                "users synced to the subcloud"
            );
            true
        }
        Err(e) => {
            warn!(subcloud = subcloud.name, "identity sync failed: {e}");
            false
        }
    }
}

/// What an audit's observation means for the subcloud: its availability, sync status and
/// alarms. Logs each change.
fn conclude(
    subcloud: &SubcloudRecord,
    observed: Result<Observed, String>,
    own: &Own,
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
        .map(|o| o.site.deployed.iter().cloned().collect());
    let software = software_sync(
        subcloud.management,
        availability,
        &own.deployed,
        deployed.as_ref(),
    );
    let identity = identity_sync(
        subcloud.management,
        availability,
        observed
            .as_ref()
            .ok()
            .and_then(|o| o.identity_synced)
            .unwrap_or(false),
    );
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
    let alarm = |id: &str, entity: String, severity: Severity, reason: String| AlarmRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        alarm_id: id.into(),
        entity,
        severity,
        reason,
        mgmt_affecting: severity == Severity::Critical,
        raised_at: now,
        source: "convoy".into(),
    };
    let mut raise = vec![];
    let mut clear = vec![];
    if availability == Availability::Offline && subcloud.management == Management::Managed {
        raise.push(alarm(
            ALARM_OFFLINE,
            entity.clone(),
            Severity::Critical,
            format!("Subcloud {} is offline", subcloud.name),
        ));
    } else {
        clear.push((ALARM_OFFLINE.to_string(), entity.clone()));
    }
    // One 280.002 per endpoint out of sync, on `subcloud=<name>.resource=<endpoint>`, as
    // StarlingX raises it.
    for (endpoint, status) in [("identity", identity), ("software", software)] {
        let resource = format!("{entity}.resource={endpoint}");
        if status == SyncStatus::OutOfSync {
            raise.push(alarm(
                ALARM_OUT_OF_SYNC,
                resource,
                Severity::Major,
                format!(
                    "Subcloud {} {endpoint} sync_status is out-of-sync",
                    subcloud.name
                ),
            ));
        } else {
            clear.push((ALARM_OUT_OF_SYNC.to_string(), resource));
        }
    }
    let observed = observed.ok().map(|o| o.site);
    AuditWrite {
        availability,
        failed_audits,
        software_version: observed.as_ref().map(|a| a.software_version.clone()),
        audit: observed
            .as_ref()
            .and_then(|a| serde_json::to_string(a).ok()),
        audited_at: now,
        assumed_management: subcloud.management,
        endpoints: vec![("identity".into(), identity), ("software".into(), software)],
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
            error_description: None,
            prestage_status: None,
            prestage_versions: None,
            prestage_request: None,
        }
    }

    fn seen(deployed: &[&str], identity_synced: Option<bool>) -> Result<Observed, String> {
        Ok(Observed {
            site: SiteAudit {
                software_version: "25.09".into(),
                deployed: deployed.iter().map(|s| s.to_string()).collect(),
                ..SiteAudit::default()
            },
            identity_synced,
        })
    }

    fn own(deployed: &[&str]) -> Own {
        Own {
            deployed: deployed.iter().map(|s| s.to_string()).collect(),
            ..Own::default()
        }
    }

    fn alarms(write: &AuditWrite) -> (Vec<String>, Vec<String>) {
        (
            write
                .raise
                .iter()
                .map(|a| format!("{} {}", a.alarm_id, a.entity))
                .collect(),
            write
                .clear
                .iter()
                .map(|(id, e)| format!("{id} {e}"))
                .collect(),
        )
    }

    #[test]
    fn a_managed_subcloud_missing_the_controllers_patch_is_out_of_sync_with_280_002() {
        let own = own(&["P1"]);
        let now = jiff::Timestamp::UNIX_EPOCH;
        let sc = subcloud(Management::Managed, Availability::Offline, 3);
        let write = conclude(&sc, seen(&[], Some(true)), &own, 2, now);
        assert_eq!(write.availability, Availability::Online);
        assert_eq!(write.failed_audits, 0);
        assert_eq!(
            write.endpoints,
            vec![
                ("identity".into(), SyncStatus::InSync),
                ("software".into(), SyncStatus::OutOfSync)
            ]
        );
        assert_eq!(
            alarms(&write),
            (
                vec!["280.002 subcloud=sc1.resource=software".into()],
                vec![
                    "280.001 subcloud=sc1".into(),
                    "280.002 subcloud=sc1.resource=identity".into()
                ]
            )
        );
        assert!(!write.raise[0].mgmt_affecting);
        let write = conclude(&sc, seen(&["P1"], Some(false)), &own, 2, now);
        assert_eq!(write.endpoints[1].1, SyncStatus::InSync);
        assert_eq!(write.endpoints[0].1, SyncStatus::OutOfSync);
        assert_eq!(
            alarms(&write).0,
            vec!["280.002 subcloud=sc1.resource=identity".to_string()]
        );
    }

    #[test]
    fn failed_audits_take_a_subcloud_offline_at_the_threshold_with_280_001() {
        let own = own(&[]);
        let now = jiff::Timestamp::UNIX_EPOCH;
        let down = || Err("down".to_string());
        let first = conclude(
            &subcloud(Management::Managed, Availability::Online, 0),
            down(),
            &own,
            2,
            now,
        );
        assert_eq!(first.availability, Availability::Online);
        assert_eq!(first.failed_audits, 1);
        let second = conclude(
            &subcloud(Management::Managed, Availability::Online, 1),
            down(),
            &own,
            2,
            now,
        );
        assert_eq!(second.availability, Availability::Offline);
        assert!(
            second
                .endpoints
                .iter()
                .all(|(_, s)| *s == SyncStatus::Unknown)
        );
        assert_eq!(alarms(&second).0, vec!["280.001 subcloud=sc1".to_string()]);
        assert!(second.raise[0].mgmt_affecting);
        // An unmanaged subcloud raises nothing and is not synced.
        let unmanaged = conclude(
            &subcloud(Management::Unmanaged, Availability::Online, 0),
            seen(&[], None),
            &own,
            2,
            now,
        );
        assert!(unmanaged.raise.is_empty());
        assert!(
            unmanaged
                .endpoints
                .iter()
                .all(|(_, s)| *s == SyncStatus::Unknown)
        );
    }
}

//! Convoy's own alarms: each locked host has `200.001`, each offline host `200.004`, the site
//! `900.001` while patches are partly applied or removed and `900.005` while a software
//! deploy has not completed, a patch strategy `900.101` while it applies (`900.102`
//! aborting, `900.103` failed) and a sw-deploy strategy `900.201` (`900.202`, `900.203`);
//! raised and cleared by a sweep
//! every ping interval (and at once after a lock, an unlock or a patch operation), from the
//! pure rules in `convoy_core::alarm` and `convoy_core::sw_update::kind`.

use std::time::Duration;

use convoy_core::alarm::{
    DEPLOY_IN_PROGRESS, DesiredAlarm, HOST_LOCKED, HOST_OFFLINE, HostCondition,
    PATCHING_IN_PROGRESS, desired_deploy_alarm, desired_host_alarms, desired_patching_alarm,
    reconcile,
};
use convoy_core::host::{Administrative, Availability, availability};
use convoy_core::sw_update::kind::strategy_alarm;
use convoy_store::AlarmRecord;

use crate::state::AppState;
use crate::strategy::sw_update::{current, summary};

/// The software-update strategies' alarms: applying, aborting, failed.
const STRATEGY_ALARMS: [&str; 6] = [
    "900.101", "900.102", "900.103", "900.201", "900.202", "900.203",
];

/// The software-update strategy's alarm as the strategy stands, if it has one.
async fn strategy_alarm_now(state: &AppState) -> anyhow::Result<Option<DesiredAlarm>> {
    let Some((strategy, record)) = current(state).await? else {
        return Ok(None);
    };
    let steps = state.store.steps(&strategy.id).await?;
    let summary = summary(&strategy, &record, &steps);
    Ok(strategy_alarm(record.options.kind(), summary))
}

/// Who Convoy's own alarms are from.
const SOURCE: &str = "convoy";

/// Starts the sweep: now, then every ping interval, and whenever woken.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let every = Duration::from_secs(state.ping_interval.as_secs().max(1) as u64);
        loop {
            if let Err(e) = sweep(&state).await {
                tracing::warn!("cannot update Convoy's host alarms: {e:#}");
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = state.wakeups.alarms().notified() => {}
            }
        }
    });
}

/// Raises and clears Convoy's host alarms so that they match the hosts now.
pub async fn sweep(state: &AppState) -> anyhow::Result<()> {
    let now = crate::clock::now();
    let hosts: Vec<HostCondition> = state
        .store
        .hosts()
        .await?
        .into_iter()
        .map(|h| HostCondition {
            offline: availability(h.last_seen, now, state.ping_interval) == Availability::Offline,
            locked: h.administrative == Administrative::Locked,
            hostname: h.hostname,
        })
        .collect();
    let mut desired = desired_host_alarms(&hosts);
    let site = crate::patches::repository::Site::load(state)
        .await
        .map_err(|e| anyhow::anyhow!("{}", e.message))?;
    // A release being deployed is alarmed as the deploy (900.005), which a sw-deploy
    // strategy ignores, not as patching in progress (900.001), which would stop it.
    let deploying = site.deploy.as_ref().map(|d| d.release_id.as_str());
    let patch_states: Vec<_> = site
        .patch_states()
        .into_iter()
        .filter(|(id, _)| Some(id.as_str()) != deploying)
        .map(|(_, state)| state)
        .collect();
    desired.extend(desired_patching_alarm(&patch_states));
    desired.extend(desired_deploy_alarm(
        site.deploy
            .as_ref()
            .map(|d| (d.release_id.as_str(), d.state)),
    ));
    desired.extend(strategy_alarm_now(state).await?);
    let active: Vec<(String, String)> = state
        .store
        .alarms()
        .await?
        .into_iter()
        .filter(|a| {
            a.source == SOURCE
                && [
                    HOST_LOCKED,
                    HOST_OFFLINE,
                    PATCHING_IN_PROGRESS,
                    DEPLOY_IN_PROGRESS,
                ]
                .iter()
                .chain(&STRATEGY_ALARMS)
                .any(|id| *id == a.alarm_id)
        })
        .map(|a| (a.alarm_id, a.entity))
        .collect();
    let (raise, clear) = reconcile(&desired, &active);
    for alarm in raise {
        state
            .store
            .raise_alarm(&AlarmRecord {
                uuid: uuid::Uuid::new_v4().to_string(),
                alarm_id: alarm.alarm_id.into(),
                entity: alarm.entity.clone(),
                severity: alarm.severity,
                reason: alarm.reason.clone(),
                mgmt_affecting: alarm.mgmt_affecting,
                raised_at: now,
                source: SOURCE.into(),
            })
            .await?;
        tracing::info!(
            alarm = alarm.alarm_id,
            entity = alarm.entity,
            "alarm raised"
        );
    }
    for (alarm_id, entity) in clear {
        state
            .store
            .clear_alarm(&alarm_id, &entity, now, SOURCE)
            .await?;
        tracing::info!(alarm = alarm_id, entity, "alarm cleared");
    }
    Ok(())
}

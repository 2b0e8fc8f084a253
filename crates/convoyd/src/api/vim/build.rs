//! Building a software-update strategy: the site as the build sees it, read from the store.

use convoy_core::host::{Personality, availability, operational};
use convoy_core::patch::PatchId;
use convoy_core::patch::state::{AgentState, PatchCurrent, host_status};
use convoy_core::sw_update::build::{DeployFacts, ReleaseFacts, UpgradeFacts};
use convoy_core::sw_update::inventory::{SiteInventory, UpdateHost};
use convoy_core::sw_update::options::SwUpgradeOptions;
use jiff::Timestamp;

use crate::api::ApiError;
use crate::api::hosts::active_controller;
use crate::patches::repository::Site;
use crate::state::AppState;

/// The site's hosts, their patch state and the active alarms; with the number of patches
/// the repository holds. For a sw-upgrade of `release`, a host is current once it has the
/// release (or does not take it), whether or not the deploy has started.
pub async fn site_inventory(
    state: &AppState,
    release: Option<&str>,
    now: Timestamp,
) -> Result<(SiteInventory, usize), ApiError> {
    let release = release.and_then(|r| r.parse::<PatchId>().ok());
    let site = Site::load(state).await?;
    let active = active_controller(state, &site.hosts, now).await?;
    let hosts = site
        .hosts
        .iter()
        .map(|h| {
            let status = site
                .report(&h.hostname)
                .map(|report| host_status(&site.repo, &site.interim, report));
            let reachable = availability(h.last_seen, now, state.ping_interval);
            let lacks_release = release.as_ref().is_some_and(|id| {
                site.report(&h.hostname)
                    .is_some_and(|report| site.release_on(report, id) == (true, false))
            });
            UpdateHost {
                hostname: h.hostname.clone(),
                personality: h.personality,
                administrative: h.administrative,
                operational: operational(h.administrative, reachable),
                availability: reachable,
                active_controller: active.as_deref() == Some(h.hostname.as_str()),
                // Nothing to install or remove (a host still pending from the apply may have
                // nothing to do: the patch is not for its personality).
                patch_current: !lacks_release
                    && status.as_ref().is_some_and(|s| {
                        s.work.is_empty() && s.patch_current != PatchCurrent::Failed
                    }),
                requires_reboot: status.as_ref().is_some_and(|s| s.reboot_required),
                // Convoy keeps a host pending from an apply until it installs (not until its next
                // report, as sw-patch): pending is what the strategy is for, so only an
                // install under way counts as "in pending patch current state".
                installing: status
                    .as_ref()
                    .is_some_and(|s| s.state == AgentState::Installing),
                // Convoy has no hypervisor: a host's instances are what its InstanceAction
                // hook lists.
                instances: h.facts.instances.clone(),
                // Storage hosts replicate within their cluster.
                replication_group: h.cluster.clone(),
            }
        })
        .collect::<Vec<_>>();
    let alarms = crate::strategy::sw_update::active_alarms(state).await?;
    let controllers = hosts
        .iter()
        .filter(|h| {
            matches!(
                h.personality,
                Personality::Controller | Personality::ControllerWorker
            )
        })
        .count();
    let inventory = SiteInventory {
        single_controller: controllers == 1,
        hosts,
        alarms,
        software_hosts_not_in_inventory: Vec::new(),
    };
    Ok((inventory, site.repo.len()))
}

/// What a sw-upgrade build's `query-upgrade` reads: the named release and the site's deploy.
/// Releases are patch releases of the running software version here, never major ones.
pub async fn upgrade_facts(
    state: &AppState,
    options: &SwUpgradeOptions,
) -> Result<UpgradeFacts, ApiError> {
    let site = Site::load(state).await?;
    let release = options
        .release()
        .and_then(|r| r.parse::<PatchId>().ok())
        .and_then(|id| {
            let entry = site.repo.get(&id)?;
            Some(ReleaseFacts {
                release_id: id.to_string(),
                state: site.release_states()[&id],
                reboot_required: entry.metadata.reboot_required,
                major: false,
            })
        });
    let deploy = site.deploy.as_ref().map(|d| DeployFacts {
        to_release: d.release_id.clone(),
        state: d.state,
    });
    Ok(UpgradeFacts { release, deploy })
}

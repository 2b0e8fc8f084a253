//! Building a software-update strategy: the site as the build sees it, read from the store.

use convoy_core::host::{Personality, availability, operational};
use convoy_core::patch::state::{AgentState, PatchCurrent, host_status};
use convoy_core::sw_update::inventory::{SiteInventory, UpdateHost};
use jiff::Timestamp;

use crate::api::ApiError;
use crate::api::hosts::active_controller;
use crate::patches::repository::Site;
use crate::state::AppState;

/// The site's hosts, their patch state and the active alarms; with the number of patches
/// the repository holds.
pub async fn site_inventory(
    state: &AppState,
    now: Timestamp,
) -> Result<(SiteInventory, usize), ApiError> {
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
            UpdateHost {
                hostname: h.hostname.clone(),
                personality: h.personality,
                administrative: h.administrative,
                operational: operational(h.administrative, reachable),
                availability: reachable,
                active_controller: active.as_deref() == Some(h.hostname.as_str()),
                // Nothing to install or remove (a host still pending from the apply may have
                // nothing to do: the patch is not for its personality).
                patch_current: status
                    .as_ref()
                    .is_some_and(|s| s.work.is_empty() && s.patch_current != PatchCurrent::Failed),
                requires_reboot: status.as_ref().is_some_and(|s| s.reboot_required),
                // Convoy keeps a host pending from an apply until it installs (not until its next
                // report, as sw-patch): pending is what the strategy is for, so only an
                // install under way counts as "in pending patch current state".
                installing: status
                    .as_ref()
                    .is_some_and(|s| s.state == AgentState::Installing),
                // Convoy has no hypervisor: no instances are known to the build.
                instances: Vec::new(),
                // Storage hosts replicate within their cluster.
                replication_group: h.cluster.clone(),
            }
        })
        .collect::<Vec<_>>();
    let alarms = crate::strategy::sw_patch::active_alarms(state).await?;
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

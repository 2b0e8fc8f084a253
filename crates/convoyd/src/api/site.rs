//! `GET /v1/site`: what a System Controller audits of this site, in one request.

use axum::Json;
use axum::extract::State;
use convoy_api::ErrorBody;
use convoy_api::dc::{HostsSummary, SiteAudit, UserDigest, user_digest};
use convoy_core::host::{Administrative, Availability, availability};

use super::ApiError;
use crate::state::AppState;

#[utoipa::path(
    get, path = "/v1/site", tag = "subclouds", security(("user_token" = [])),
    responses((status = 200, description = "The site's release, deployed patches, hosts and alarms, as a System Controller audits them", body = SiteAudit), (status = 401, description = "No valid token", body = ErrorBody))
)]
pub async fn audit(State(state): State<AppState>) -> Result<Json<SiteAudit>, ApiError> {
    let now = crate::clock::now();
    let mut hosts = HostsSummary::default();
    for host in state.store.hosts().await? {
        hosts.total += 1;
        let available =
            availability(host.last_seen, now, state.ping_interval) == Availability::Available;
        if host.administrative == Administrative::Locked {
            hosts.locked += 1;
        } else if available {
            hosts.in_service += 1;
        }
        if !available {
            hosts.unavailable += 1;
        }
    }
    let alarms = state.store.alarms().await?;
    let users = state
        .store
        .users()
        .await?
        .into_iter()
        .map(|u| UserDigest {
            digest: user_digest(&u.name, u.role, &u.password_hash),
            name: u.name,
        })
        .collect();
    Ok(Json(SiteAudit {
        software_version: state.release.to_string(),
        deployed: crate::subclouds::audit::deployed(state.store.as_ref())
            .await?
            .into_iter()
            .collect(),
        hosts,
        mgmt_affecting_alarms: alarms.iter().filter(|a| a.mgmt_affecting).count() as u32,
        alarms: alarms.len() as u32,
        users,
    }))
}

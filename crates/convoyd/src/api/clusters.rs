//! `/v1/clusters`: the clusters the hosts name, and whether a strategy has disabled them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use convoy_api::strategies::{Cluster, ClusterList};

use super::ApiError;
use crate::state::AppState;

#[utoipa::path(
    get, path = "/v1/clusters", tag = "strategies", security(("user_token" = [])),
    responses((status = 200, description = "The clusters the hosts name", body = ClusterList))
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<ClusterList>, ApiError> {
    let mut clusters: BTreeMap<String, Cluster> = BTreeMap::new();
    for host in state.store.hosts().await? {
        if let Some(name) = host.cluster {
            clusters
                .entry(name.clone())
                .or_insert_with(|| Cluster {
                    name,
                    state: "enabled".into(),
                    disabled_by: None,
                    hosts: 0,
                })
                .hosts += 1;
        }
    }
    for record in state.store.clusters().await? {
        let cluster = clusters
            .entry(record.name.clone())
            .or_insert_with(|| Cluster {
                name: record.name.clone(),
                state: String::new(),
                disabled_by: None,
                hosts: 0,
            });
        cluster.state = if record.enabled {
            "enabled"
        } else {
            "disabled"
        }
        .into();
        cluster.disabled_by = record.disabled_by;
    }
    Ok(Json(ClusterList {
        clusters: clusters.into_values().collect(),
    }))
}

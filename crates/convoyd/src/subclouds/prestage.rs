//! One subcloud's prestage outside a strategy (`PATCH /v1.0/subclouds/<ref>/prestage`): the
//! route checks it and marks the subcloud `prestaging` with its request; this runs the
//! preparation and the transfer in the background, as a prestage step's phases do, and ends
//! the subcloud `complete` or `failed`. The request is kept with the subcloud until then, so
//! a System Controller restarted meanwhile starts it again (the transfer resumes with the
//! chunks the subcloud lacks).

use std::time::Duration;

use convoy_core::dc_strategy::prestage::PrestageResult;
use convoy_core::subcloud::Reference;
use convoy_store::subclouds::{PrestageWrite, SubcloudRecord};

use crate::state::AppState;
use crate::strategy::dc_prestage::{PRESTAGING, finish_prestage, set_status, ship};
use crate::strategy::subcloud_call::{PrestageRequest, Trouble};

/// The preparation and transfer key of a subcloud's own prestage.
pub fn key(subcloud: &str) -> String {
    format!("subcloud-{subcloud}")
}

/// Starts the prestage `subcloud` was marked for, afresh.
pub fn start(app: &AppState, subcloud: &str) {
    app.preparations.forget(&key(subcloud));
    tokio::spawn(run(app.clone(), subcloud.to_string()));
}

/// Starts again every subcloud's own prestage a restart cut short.
pub async fn resume(app: &AppState) {
    match app.subclouds.subclouds().await {
        Ok(subclouds) => {
            for s in subclouds {
                if s.prestage_request.is_some() && s.prestage_status.as_deref() == Some(PRESTAGING)
                {
                    tracing::info!(subcloud = s.name, "resuming the subcloud's prestage");
                    tokio::spawn(run(app.clone(), s.name));
                }
            }
        }
        Err(e) => tracing::warn!("cannot read the subclouds to resume their prestage: {e}"),
    }
}

/// The subcloud, while it is still marked for its own prestage, with its request.
async fn marked(app: &AppState, name: &str) -> Option<(SubcloudRecord, PrestageRequest)> {
    let subcloud = app
        .subclouds
        .subcloud(&Reference::Name(name.to_string()))
        .await
        .ok()??;
    if subcloud.prestage_status.as_deref() != Some(PRESTAGING) {
        return None;
    }
    let request = serde_json::from_str(subcloud.prestage_request.as_deref()?).ok()?;
    Some((subcloud, request))
}

async fn run(app: AppState, name: String) {
    // The playbooks' timeouts, packages and images, as a strategy's phases have them.
    let limit =
        Duration::from_secs(3600 + 7200).mul_f64(app.step_durations.step_time_scale.max(0.0));
    let deadline = tokio::time::Instant::now() + limit;
    let key = key(&name);
    let failure = loop {
        let Some((subcloud, request)) = marked(&app, &name).await else {
            return;
        };
        if tokio::time::Instant::now() > deadline {
            break (subcloud, "the prestage timed out".to_string());
        }
        match ship(&app, &key, &|_| {}, &subcloud, &request).await {
            Ok(Some(PrestageResult::Next)) => {
                finish_prestage(&app, &subcloud, &request.sw_version).await;
                tracing::info!(
                    subcloud = name,
                    version = request.sw_version,
                    "subcloud prestaged"
                );
                app.preparations.forget(&key);
                return;
            }
            Ok(Some(PrestageResult::Failed(reason) | PrestageResult::Done(reason)))
            | Err(Trouble::Fail(reason)) => break (subcloud, reason),
            Ok(None) | Err(Trouble::Retry) => tokio::time::sleep(app.dc.poll_interval).await,
        }
    };
    let (subcloud, reason) = failure;
    tracing::warn!(subcloud = name, "the subcloud's prestage failed: {reason}");
    set_status(
        &app,
        &subcloud,
        PrestageWrite {
            status: Some("failed".into()),
            ..PrestageWrite::default()
        },
    )
    .await;
    app.preparations.forget(&key);
}

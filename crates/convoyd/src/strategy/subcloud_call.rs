//! What the System Controller's strategy kinds share: the record a strategy keeps, and
//! calling a subcloud's convoyd from a step's check, each call bounded by the audit timeout.

use std::collections::BTreeMap;

use convoy_api::{Client, ClientError};
use convoy_core::dc_strategy::DcStrategyType;
use convoy_core::strategy::Terminal;
use convoy_core::subcloud::{ApplyType, Reference};
use convoy_store::SubcloudStepWrite;
use convoy_store::subclouds::SubcloudRecord;
use serde::{Deserialize, Serialize};

use crate::state::AppState;
use crate::subclouds::connection::token_refused;

/// What a System Controller strategy keeps (the strategy record's options).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DcStrategyRecord {
    #[serde(rename = "type")]
    pub kind: DcStrategyType,
    pub apply_type: Option<ApplyType>,
    pub cloud_name: Option<String>,
    pub group: Option<String>,
    pub release_id: Option<String>,
    /// The subclouds' deploy records are deleted once deployed.
    pub delete: bool,
    /// The step time scale the timeouts were set with.
    pub time_scale: f64,
    /// The release's software version (`MM.mm`), as the System Controller's repository has
    /// it: what a deployed subcloud runs. Absent in records made before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
    /// For a prestage strategy, or a sw-deploy strategy with prestage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prestage: Option<PrestageRequest>,
}

/// What a prestage asks (a prestage strategy's, a sw-deploy strategy's with prestage, or
/// one subcloud's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrestageRequest {
    /// `MM.mm`.
    pub sw_version: String,
    /// Into the subclouds' repositories to deploy, else their prestage stores to install.
    pub for_sw_deploy: bool,
    /// Management-affecting alarms do not stop it.
    pub force: bool,
    /// The sysadmin password as sent (base64): a secret, never answered nor logged.
    pub sysadmin_password: String,
}

/// A call's failure: the check is asked again (None), or the step fails with a reason.
pub enum Trouble {
    Retry,
    Fail(String),
}

pub fn failed(reason: impl Into<String>) -> Trouble {
    Trouble::Fail(reason.into())
}

/// A subcloud call bounded by the audit timeout; a refused token is forgotten and retried.
pub async fn call<T>(
    app: &AppState,
    subcloud: &SubcloudRecord,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, Trouble> {
    attempt(app, subcloud, call)
        .await?
        .map_err(|refusal| failed(refusal.message))
}

/// A subcloud's 4xx answer (but a refused token).
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// [`call`], with the subcloud's refusal given back to look at (a conflict, say).
pub async fn attempt<T>(
    app: &AppState,
    subcloud: &SubcloudRecord,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<Result<T, Refusal>, Trouble> {
    match tokio::time::timeout(app.dc.audit_timeout, call).await {
        Ok(Ok(value)) => Ok(Ok(value)),
        Ok(Err(e)) if token_refused(&e) => {
            app.sessions.forget(subcloud.id);
            Err(Trouble::Retry)
        }
        Ok(Err(ClientError::Api {
            status, message, ..
        })) if status < 500 => Ok(Err(Refusal { status, message })),
        // Unreachable, a 5xx, or no answer in time: transient, asked again until the
        // phase's timeout.
        Ok(Err(e)) => {
            tracing::debug!(subcloud = subcloud.name, "subcloud call failed: {e}");
            Err(Trouble::Retry)
        }
        Err(_) => Err(Trouble::Retry),
    }
}

/// The subcloud a step is for.
pub async fn subcloud(app: &AppState, name: &str) -> Result<SubcloudRecord, Trouble> {
    let found = app
        .subclouds
        .subcloud(&Reference::Name(name.to_string()))
        .await
        .map_err(|e| failed(format!("cannot read the subcloud: {e}")))?;
    found.ok_or_else(|| failed(format!("Subcloud {name} does not exist")))
}

/// The service account's client for the subcloud.
pub async fn client(app: &AppState, subcloud: &SubcloudRecord) -> Result<Client, Trouble> {
    call(app, subcloud, app.sessions.client(&app.dc, subcloud)).await
}

/// How a System Controller kind paces its steps, shared by every such kind: subclouds called
/// at once in a tick (the audit's concurrency), how often a waiting step reads its subcloud
/// again, and the progress the tick's checks saw, which the driver writes with the tick.
pub struct SubcloudPace {
    parallel: usize,
    poll_interval: std::time::Duration,
    progress: std::sync::Mutex<Vec<(usize, String)>>,
    /// What the tick's steps change on their subclouds, by subcloud.
    writes: std::sync::Mutex<BTreeMap<String, SubcloudStepWrite>>,
}

impl SubcloudPace {
    pub fn new(app: &AppState) -> SubcloudPace {
        SubcloudPace {
            parallel: app.dc.audit_concurrency.max(1),
            poll_interval: app.dc.poll_interval,
            progress: std::sync::Mutex::default(),
            writes: std::sync::Mutex::default(),
        }
    }

    pub fn parallel(&self) -> usize {
        self.parallel
    }

    pub fn recheck(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::try_from(self.poll_interval)
            .unwrap_or(jiff::SignedDuration::from_secs(10))
    }

    /// Shows `details` as the progress of `steps[index]`, if they differ from its own.
    pub fn report(&self, index: usize, step: &convoy_store::StepRecord, details: String) {
        if step.details != details {
            self.progress
                .lock()
                .expect("progress lock")
                .push((index, details));
        }
    }

    /// Sets the subcloud's deploy status (and software version) with the tick's writes.
    pub fn deploy_status(&self, subcloud: &str, status: &str, version: Option<String>) {
        self.record(SubcloudStepWrite {
            name: subcloud.to_string(),
            deploy_status: Some(status.to_string()),
            software_version: version,
            at: crate::clock::now(),
            ..SubcloudStepWrite::default()
        });
    }

    /// A step that ends failed leaves its reason as its subcloud's error description.
    pub fn step_ended(&self, step: &convoy_store::StepRecord) {
        if Terminal::parse(&step.state) == Some(Terminal::Failed) {
            self.record(SubcloudStepWrite {
                name: step.target.clone(),
                error_description: Some(step.details.clone()),
                ..SubcloudStepWrite::default()
            });
        }
    }

    fn record(&self, write: SubcloudStepWrite) {
        let mut writes = self.writes.lock().expect("subcloud writes lock");
        match writes.get_mut(&write.name) {
            Some(earlier) => earlier.merge(write),
            None => {
                writes.insert(write.name.clone(), write);
            }
        }
    }

    /// The subcloud writes recorded since the last call.
    pub fn take_writes(&self) -> Vec<SubcloudStepWrite> {
        std::mem::take(&mut *self.writes.lock().expect("subcloud writes lock"))
            .into_values()
            .collect()
    }

    /// The progress reported since the last call.
    pub fn take_progress(&self) -> Vec<(usize, String)> {
        std::mem::take(&mut *self.progress.lock().expect("progress lock"))
    }
}

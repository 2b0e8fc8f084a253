//! A typed HTTP client for convoyd, used by the CLI, the agent and the tests.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::agent::{
    CommandBatch, CommandDelivery, Enrolment, EnrolmentAccepted, Heartbeat, HeartbeatAccepted,
    OutcomeReport,
};
use crate::auth::AuthRequest;
use crate::error::ErrorBody;
use crate::hosts::{Command, Host, HostList, NewCommand};
use crate::patches::{
    AppDependencyList, AppDependencyReport, HostInstallRequest, HostPatchList, HostPatchRow,
    IsApplied, PatchDetail, PatchIdList, PatchList, PatchOperation, PatchOutcome, PatchRow,
};
use crate::software::{
    DeployHostList, DeployHostRow, DeployList, DeployView, ReleaseDetail, ReleaseList, ReleaseRow,
};
use crate::strategies::{
    ActionName, Cluster, ClusterList, MaintenanceReport, NewRollingMaintenance, Step, StepDetail,
    StepList, Strategy, StrategyAction,
};
use crate::trust::Trust;
use crate::users::{NewUser, User, UserList};
use convoy_core::sw_update::options::SwUpdateKind;

/// The VIM API's path of a software-update strategy of `kind`.
fn sw_update_path(kind: SwUpdateKind) -> String {
    format!("/api/orchestration/{kind}/strategy")
}
const RM_PATH: &str = "/v1/rolling-maintenance-strategy";
use crate::{AUTH_HEADER, SUBJECT_TOKEN_HEADER};
use convoy_core::command::CommandKind;

/// Why a call to convoyd failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid controller URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the controller at {url}: {reason}; check that convoyd runs there")]
    Unreachable { url: String, reason: String },
    /// The controller answered with an error status and its JSON error body.
    #[error("{message}")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("unexpected reply from the controller at {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status for an error answered by the controller.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A connection to one convoyd. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    pub(crate) token: Option<String>,
}

/// Default time a request may take, long polls excepted.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    /// A client for the controller at `base_url` (`https://host:port`, or `http://` where
    /// convoyd runs with `--insecure-http`), without credentials, trusting the platform's
    /// certificate authorities.
    pub fn new(base_url: &str) -> Result<Self, ClientError> {
        Self::with_trust(base_url, &Trust::System)
    }

    /// A client that trusts the controller's certificate as `trust` says.
    pub fn with_trust(base_url: &str, trust: &Trust) -> Result<Self, ClientError> {
        let base = base_url.trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base).map_err(|e| ClientError::InvalidUrl {
            url: base_url.into(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::InvalidUrl {
                url: base_url.into(),
                reason: "the scheme must be http or https".into(),
            });
        }
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .tls_info(true);
        let http = trust
            .apply(builder)
            .build()
            .map_err(|e| ClientError::InvalidUrl {
                url: base_url.into(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            base,
            http,
            token: None,
        })
    }

    /// The same client, sending `token` in `X-Auth-Token`.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Exchanges a user name and password for a token (`POST /v3/auth/tokens`).
    pub async fn login(&self, name: &str, password: &str) -> Result<String, ClientError> {
        let url = format!("{}/v3/auth/tokens", self.base);
        let response = self
            .http
            .post(&url)
            .json(&AuthRequest::password(name, password))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        let response = self.check(response).await?;
        response
            .headers()
            .get(SUBJECT_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| ClientError::Protocol {
                url,
                reason: format!("no {SUBJECT_TOKEN_HEADER} header in the reply"),
            })
    }

    /// Revokes `token` (`DELETE /v3/auth/tokens`): this client's own, or, for an admin, any.
    pub async fn revoke_token(&self, token: &str) -> Result<(), ClientError> {
        let mut request = self
            .http
            .delete(format!("{}/v3/auth/tokens", self.base))
            .header(SUBJECT_TOKEN_HEADER, token)
            .timeout(REQUEST_TIMEOUT);
        if let Some(own) = &self.token {
            request = request.header(AUTH_HEADER, own);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.check(response).await?;
        Ok(())
    }

    /// Keystone version discovery (`GET /v3`); answers as soon as convoyd serves requests.
    pub async fn identity_version(&self) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, "/v3", None::<&()>).await
    }

    pub async fn hosts(&self) -> Result<Vec<Host>, ClientError> {
        let list: HostList = self.call(Method::GET, "/v1/hosts", None::<&()>).await?;
        Ok(list.hosts)
    }

    pub async fn host(&self, hostname: &str) -> Result<Host, ClientError> {
        self.call(Method::GET, &format!("/v1/hosts/{hostname}"), None::<&()>)
            .await
    }

    pub async fn create_enrol_token(
        &self,
        hostname: &str,
        ttl_seconds: u64,
    ) -> Result<crate::hosts::EnrolToken, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/hosts/{hostname}/enrol-tokens"),
            Some(&crate::hosts::NewEnrolToken {
                ttl_seconds: Some(ttl_seconds),
            }),
        )
        .await
    }

    /// Moves activity from the active controller `hostname` to the standby.
    pub async fn swact_host(&self, hostname: &str) -> Result<Host, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/hosts/{hostname}/swact"),
            None::<&()>,
        )
        .await
    }

    pub async fn lock_host(&self, hostname: &str) -> Result<Host, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/hosts/{hostname}/lock"),
            None::<&()>,
        )
        .await
    }

    pub async fn unlock_host(&self, hostname: &str) -> Result<Host, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/hosts/{hostname}/unlock"),
            None::<&()>,
        )
        .await
    }

    pub async fn alarms(&self) -> Result<Vec<crate::alarms::Alarm>, ClientError> {
        let list: crate::alarms::AlarmList =
            self.call(Method::GET, "/v1/alarms", None::<&()>).await?;
        Ok(list.alarms)
    }

    pub async fn alarm(&self, uuid: &str) -> Result<crate::alarms::Alarm, ClientError> {
        self.call(Method::GET, &format!("/v1/alarms/{uuid}"), None::<&()>)
            .await
    }

    /// Raises an alarm as an operator (`POST /v1/alarms`).
    pub async fn raise_alarm(
        &self,
        alarm: &crate::alarms::NewAlarm,
    ) -> Result<crate::alarms::Alarm, ClientError> {
        self.call(Method::POST, "/v1/alarms", Some(alarm)).await
    }

    /// Clears an active alarm as an operator (`DELETE /v1/alarms/{uuid}`).
    pub async fn clear_alarm(&self, uuid: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/v1/alarms/{uuid}"))
            .await
    }

    pub async fn events(&self, limit: u32) -> Result<Vec<crate::alarms::Event>, ClientError> {
        let list: crate::alarms::EventList = self
            .call(
                Method::GET,
                &format!("/v1/events?limit={limit}"),
                None::<&()>,
            )
            .await?;
        Ok(list.events)
    }

    /// An agent raises an alarm on its host (`POST /v1/agent/alarms`).
    pub async fn raise_host_alarm(
        &self,
        alarm: &crate::alarms::NewAlarm,
    ) -> Result<crate::alarms::Alarm, ClientError> {
        self.call(Method::POST, "/v1/agent/alarms", Some(alarm))
            .await
    }

    /// An agent clears an alarm on its host (`POST /v1/agent/alarms/clear`).
    pub async fn clear_host_alarm(
        &self,
        clear: &crate::alarms::ClearAlarm,
    ) -> Result<crate::alarms::Cleared, ClientError> {
        self.call(Method::POST, "/v1/agent/alarms/clear", Some(clear))
            .await
    }

    pub async fn delete_host(&self, hostname: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/v1/hosts/{hostname}"))
            .await
    }

    /// Sends a command to a host's agent and waits up to `wait` for its outcome.
    pub async fn run_command(
        &self,
        hostname: &str,
        kind: CommandKind,
        wait: Duration,
    ) -> Result<Command, ClientError> {
        let path = format!(
            "/v1/hosts/{hostname}/commands?wait_seconds={}",
            wait.as_secs()
        );
        self.call_with_timeout(
            Method::POST,
            &path,
            Some(&NewCommand { kind }),
            wait + REQUEST_TIMEOUT,
        )
        .await
    }

    /// A command sent to a host, with its outcome once reported.
    pub async fn command(&self, hostname: &str, id: &str) -> Result<Command, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/hosts/{hostname}/commands/{id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn users(&self) -> Result<Vec<User>, ClientError> {
        let list: UserList = self.call(Method::GET, "/v1/users", None::<&()>).await?;
        Ok(list.users)
    }

    pub async fn add_user(&self, user: &NewUser) -> Result<User, ClientError> {
        self.call(Method::POST, "/v1/users", Some(user)).await
    }

    pub async fn delete_user(&self, name: &str) -> Result<(), ClientError> {
        self.call_empty(Method::DELETE, &format!("/v1/users/{name}"))
            .await
    }

    // --- strategies ---

    pub async fn create_rolling_maintenance(
        &self,
        request: &NewRollingMaintenance,
    ) -> Result<Strategy, ClientError> {
        self.call(Method::POST, RM_PATH, Some(request)).await
    }

    pub async fn rolling_maintenance(&self) -> Result<Strategy, ClientError> {
        self.call(Method::GET, RM_PATH, None::<&()>).await
    }

    pub async fn rolling_maintenance_action(
        &self,
        action: ActionName,
    ) -> Result<Strategy, ClientError> {
        self.call(
            Method::POST,
            &format!("{RM_PATH}/actions"),
            Some(&StrategyAction { action }),
        )
        .await
    }

    pub async fn delete_rolling_maintenance(&self) -> Result<Strategy, ClientError> {
        self.call(Method::DELETE, RM_PATH, None::<&()>).await
    }

    pub async fn rolling_maintenance_report(&self) -> Result<MaintenanceReport, ClientError> {
        self.call(Method::GET, &format!("{RM_PATH}/report"), None::<&()>)
            .await
    }

    /// Creates (and builds) a software-update strategy of `kind` (`sw-patch`, or
    /// `sw-upgrade` with sw-upgrade's options); the answer is the original's strategy JSON.
    pub async fn create_sw_update_strategy(
        &self,
        kind: SwUpdateKind,
        options: &impl serde::Serialize,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::POST, &sw_update_path(kind), Some(options))
            .await
    }

    /// `{"strategy": {...}}` or `{"strategy": null}`.
    pub async fn sw_update_strategy(
        &self,
        kind: SwUpdateKind,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, &sw_update_path(kind), None::<&()>)
            .await
    }

    /// [`Self::sw_update_strategy`], only what following its apply needs.
    pub async fn sw_update_strategy_brief(
        &self,
        kind: SwUpdateKind,
    ) -> Result<crate::strategies::VimStrategyShown, ClientError> {
        self.call(Method::GET, &sw_update_path(kind), None::<&()>)
            .await
    }

    /// The strategy the site has, of any type: `{"strategy": {"name", "state"}}` or
    /// `{"strategy": null}`.
    pub async fn current_strategy(&self) -> Result<serde_json::Value, ClientError> {
        self.call(
            Method::GET,
            "/api/orchestration/current-strategy/strategy",
            None::<&()>,
        )
        .await
    }

    /// `apply-all` or `abort`; with a stage, `apply-stage` or `abort-stage`.
    pub async fn sw_update_strategy_action(
        &self,
        kind: SwUpdateKind,
        action: &str,
        stage_id: Option<u32>,
    ) -> Result<serde_json::Value, ClientError> {
        let body = match stage_id {
            Some(id) => serde_json::json!({ "action": action, "stage-id": id }),
            None => serde_json::json!({ "action": action }),
        };
        self.call(
            Method::POST,
            &format!("{}/actions", sw_update_path(kind)),
            Some(&body),
        )
        .await
    }

    pub async fn delete_sw_update_strategy(
        &self,
        kind: SwUpdateKind,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::DELETE, &sw_update_path(kind), None::<&()>)
            .await
    }

    // --- software (releases and the deploy) ---

    pub async fn releases(&self, state: Option<&str>) -> Result<Vec<ReleaseRow>, ClientError> {
        let path = match state {
            Some(state) => format!("/v1/software/releases?state={state}"),
            None => "/v1/software/releases".to_string(),
        };
        let list: ReleaseList = self.call(Method::GET, &path, None::<&()>).await?;
        Ok(list.releases)
    }

    pub async fn release(&self, id: &str) -> Result<ReleaseDetail, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/software/releases/{id}"),
            None::<&()>,
        )
        .await
    }

    pub async fn prestage_store(&self) -> Result<crate::prestage::PrestageStore, ClientError> {
        self.call(Method::GET, "/v1/prestage", None::<&()>).await
    }

    /// The chunks of `chunks` the site does not hold.
    pub async fn missing_chunks(&self, chunks: &[String]) -> Result<Vec<String>, ClientError> {
        let list: crate::prestage::ChunkList = self
            .call(
                Method::POST,
                "/v1/prestage/chunks/missing",
                Some(&crate::prestage::ChunkList {
                    chunks: chunks.to_vec(),
                }),
            )
            .await?;
        Ok(list.chunks)
    }

    /// Sends one chunk; the site checks it against `sha256` before keeping it.
    pub async fn put_chunk(&self, sha256: &str, bytes: Vec<u8>) -> Result<(), ClientError> {
        let mut request = self
            .http
            .put(format!("{}/v1/prestage/chunks/{sha256}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(Duration::from_secs(300))
            .body(bytes);
        if let Some(token) = &self.token {
            request = request.header(AUTH_HEADER, token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.check(response).await?;
        Ok(())
    }

    /// Assembles, verifies and keeps one prestaged bundle (verifying a large bundle takes
    /// a while: up to ten minutes).
    pub async fn import_prestaged(
        &self,
        import: &crate::prestage::PrestageImport,
    ) -> Result<crate::prestage::PrestageImported, ClientError> {
        self.call_with_timeout(
            Method::POST,
            "/v1/prestage/releases",
            Some(import),
            Duration::from_secs(600),
        )
        .await
    }

    pub async fn deploy(&self) -> Result<Vec<DeployView>, ClientError> {
        let list: DeployList = self
            .call(Method::GET, "/v1/software/deploy", None::<&()>)
            .await?;
        Ok(list.deploy)
    }

    pub async fn deploy_hosts(&self) -> Result<Vec<DeployHostRow>, ClientError> {
        let list: DeployHostList = self
            .call(Method::GET, "/v1/software/deploy/hosts", None::<&()>)
            .await?;
        Ok(list.hosts)
    }

    pub async fn strategy_steps(&self) -> Result<Vec<Step>, ClientError> {
        let list: StepList = self
            .call(Method::GET, "/v1/strategy-steps", None::<&()>)
            .await?;
        Ok(list.strategy_steps)
    }

    pub async fn strategy_step(&self, target: &str) -> Result<StepDetail, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/strategy-steps/{target}"),
            None::<&()>,
        )
        .await
    }

    pub async fn clusters(&self) -> Result<Vec<Cluster>, ClientError> {
        let list: ClusterList = self.call(Method::GET, "/v1/clusters", None::<&()>).await?;
        Ok(list.clusters)
    }

    // --- patches ---

    /// Streams a patch file to the controller, which verifies and imports it.
    pub async fn upload_patch(&self, path: &std::path::Path) -> Result<PatchOutcome, ClientError> {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ClientError::Protocol {
                url: path.display().to_string(),
                reason: "the file has no name".into(),
            })?
            .to_string();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| ClientError::Protocol {
                url: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
            file,
            256 * 1024,
        ));
        let mut request = self
            .http
            .post(format!("{}/v1/patches", self.base))
            .query(&[("file_name", file_name.as_str())])
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        if let Some(token) = &self.token {
            request = request.header(AUTH_HEADER, token);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let response = self.check(response).await?;
        let url = response.url().to_string();
        response.json().await.map_err(|e| ClientError::Protocol {
            url,
            reason: e.to_string(),
        })
    }

    pub async fn patches(&self, show: &str) -> Result<Vec<PatchRow>, ClientError> {
        let list: PatchList = self
            .call(
                Method::GET,
                &format!("/v1/patches?show={show}"),
                None::<&()>,
            )
            .await?;
        Ok(list.patches)
    }

    pub async fn patch(&self, id: &str) -> Result<PatchDetail, ClientError> {
        self.call(Method::GET, &format!("/v1/patches/{id}"), None::<&()>)
            .await
    }

    /// apply, remove, delete or commit.
    pub async fn patch_operation(
        &self,
        verb: &str,
        request: &PatchOperation,
    ) -> Result<PatchOutcome, ClientError> {
        self.call(Method::POST, &format!("/v1/patches/{verb}"), Some(request))
            .await
    }

    pub async fn what_requires(&self, ids: &[String]) -> Result<PatchOutcome, ClientError> {
        self.call(
            Method::GET,
            &format!("/v1/patches/what-requires?ids={}", ids.join(",")),
            None::<&()>,
        )
        .await
    }

    pub async fn patch_dependencies(
        &self,
        ids: &[String],
        recursive: bool,
    ) -> Result<Vec<String>, ClientError> {
        let list: PatchIdList = self
            .call(
                Method::GET,
                &format!(
                    "/v1/patches/dependencies?ids={}&recursive={recursive}",
                    ids.join(",")
                ),
                None::<&()>,
            )
            .await?;
        Ok(list.patches)
    }

    pub async fn is_applied(&self, ids: &[String]) -> Result<bool, ClientError> {
        let answer: IsApplied = self
            .call(
                Method::GET,
                &format!("/v1/patches/is-applied?ids={}", ids.join(",")),
                None::<&()>,
            )
            .await?;
        Ok(answer.applied)
    }

    pub async fn report_app_dependencies(
        &self,
        report: &AppDependencyReport,
    ) -> Result<AppDependencyList, ClientError> {
        self.call(Method::POST, "/v1/patches/app-dependencies", Some(report))
            .await
    }

    pub async fn app_dependencies(&self) -> Result<AppDependencyList, ClientError> {
        self.call(Method::GET, "/v1/patches/app-dependencies", None::<&()>)
            .await
    }

    pub async fn patch_hosts(&self) -> Result<Vec<HostPatchRow>, ClientError> {
        let list: HostPatchList = self
            .call(Method::GET, "/v1/patch-hosts", None::<&()>)
            .await?;
        Ok(list.hosts)
    }

    /// Asks the host's agent to install and remove patches; returns the command's id.
    pub async fn host_install(
        &self,
        hostname: &str,
        force: bool,
    ) -> Result<(PatchOutcome, String), ClientError> {
        let sent: serde_json::Value = self
            .call(
                Method::POST,
                &format!("/v1/patch-hosts/{hostname}/install"),
                Some(&HostInstallRequest { force }),
            )
            .await?;
        let command_id = sent["command_id"].as_str().unwrap_or_default().to_string();
        let outcome = serde_json::from_value(sent).map_err(|e| ClientError::Protocol {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        Ok((outcome, command_id))
    }

    pub async fn drop_host(&self, hostname: &str) -> Result<PatchOutcome, ClientError> {
        self.call(
            Method::POST,
            &format!("/v1/patch-hosts/{hostname}/drop"),
            None::<&()>,
        )
        .await
    }

    // --- the agent's side of the protocol ---

    /// The fingerprint of the certificate the controller presents (after this client's trust
    /// accepted it), or None over plain HTTP: what an agent pins at enrolment.
    pub async fn controller_fingerprint(&self) -> Result<Option<String>, ClientError> {
        let response = self
            .http
            .get(format!("{}/v3", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        Ok(response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(crate::trust::fingerprint_of))
    }

    pub async fn enrol(&self, enrolment: &Enrolment) -> Result<EnrolmentAccepted, ClientError> {
        self.call(Method::POST, "/v1/agent/enrol", Some(enrolment))
            .await
    }

    pub async fn heartbeat(&self, heartbeat: &Heartbeat) -> Result<HeartbeatAccepted, ClientError> {
        self.call(Method::POST, "/v1/agent/heartbeat", Some(heartbeat))
            .await
    }

    /// Waits up to `wait` for commands addressed to this agent's host. `session` identifies
    /// this run of the agent: commands delivered to an earlier run come again at once.
    pub async fn poll_commands(
        &self,
        session: &str,
        wait: Duration,
    ) -> Result<Vec<CommandDelivery>, ClientError> {
        let path = format!(
            "/v1/agent/commands?session={session}&wait_seconds={}",
            wait.as_secs()
        );
        let batch: CommandBatch = self
            .call_with_timeout(Method::GET, &path, None::<&()>, wait + REQUEST_TIMEOUT)
            .await?;
        Ok(batch.commands)
    }

    /// Reports a command's outcome as agent run `session`; returns the commands the
    /// controller hands to that run with its answer.
    pub async fn report_outcome(
        &self,
        session: &str,
        id: Uuid,
        report: &OutcomeReport,
    ) -> Result<Vec<CommandDelivery>, ClientError> {
        let batch: CommandBatch = self
            .call(
                Method::POST,
                &format!("/v1/agent/commands/{id}/outcome?session={session}"),
                Some(report),
            )
            .await?;
        Ok(batch.commands)
    }

    // --- plumbing ---

    /// Sends a request and decodes a JSON reply.
    pub async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        self.call_with_timeout(method, path, body, REQUEST_TIMEOUT)
            .await
    }

    async fn call_with_timeout<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let response = self.send(method, path, body, timeout).await?;
        let url = response.url().to_string();
        response
            .json::<T>()
            .await
            .map_err(|e| ClientError::Protocol {
                url,
                reason: e.to_string(),
            })
    }

    async fn call_empty(&self, method: Method, path: &str) -> Result<(), ClientError> {
        self.send(method, path, None::<&()>, REQUEST_TIMEOUT)
            .await?;
        Ok(())
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(timeout);
        if let Some(token) = &self.token {
            request = request.header(AUTH_HEADER, token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        self.check(response).await
    }

    pub(crate) async fn check(
        &self,
        response: reqwest::Response,
    ) -> Result<reqwest::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let url = response.url().to_string();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: status_code_name(status),
                message: format!("{url} answered {status}"),
            }),
        }
    }

    pub(crate) fn unreachable(&self, error: reqwest::Error) -> ClientError {
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(inner) = source {
            reason = inner.to_string();
            source = inner.source();
        }
        if reason.contains("certificate") {
            reason.push_str(
                "; to trust a convoyd's own self-signed certificate give --ca-cert \
                 DATA_DIR/tls/cert.pem or --tls-fingerprint with the fingerprint it printed",
            );
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }
}

fn status_code_name(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_lowercase()
        .replace(' ', "_")
}

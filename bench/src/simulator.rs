//! A subcloud simulator: one process serving many virtual subclouds, each at its own base URL
//! (`http://ADDR/sc/<n>`), answering exactly what a System Controller asks of a subcloud
//! (login, token revocation, the site summary, the service account's creation, identity sync,
//! and a sw-deploy step's calls: the release, the sw-patch and sw-upgrade strategies), with a
//! configurable latency, failure rate and deployed software. A virtual subcloud holds one
//! release, `available` until its virtual sw-upgrade strategy, applied, completes after a set
//! delay; then `deployed`, and so in its site summary. Not a product binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convoy_api::dc::{IdentitySync, IdentitySynced, SiteAudit, UserDigest, user_digest};
use convoy_api::software::ReleaseDetail;
use convoy_core::role::Role;
use convoy_core::sw_update::lifecycle::{Phase, StrategyState, UpdateResult};
use convoy_core::sw_update::options::SwUpgradeOptions;
use serde_json::{Value, json};

/// How the virtual subclouds behave.
#[derive(Debug, Clone)]
pub struct Behaviour {
    pub subclouds: usize,
    /// The `admin` password of every virtual subcloud.
    pub sysadmin_password: String,
    /// Added to every answer.
    pub latency: Duration,
    /// Percentage of site summaries answered 503.
    pub fail_percent: u64,
    /// Patches every virtual subcloud reports deployed.
    pub deployed: Vec<String>,
    pub software_version: String,
    /// The release every virtual subcloud holds (uploaded, not deployed), if any.
    pub release: Option<SimRelease>,
    /// How long a virtual sw-upgrade strategy applies, from its apply.
    pub vim_delay: Duration,
}

/// A release held by the virtual subclouds.
#[derive(Debug, Clone)]
pub struct SimRelease {
    pub id: String,
    pub sw_version: String,
}

#[derive(Debug, Default)]
struct Virtual {
    /// Users made by the System Controller: name → password.
    users: BTreeMap<String, String>,
    /// Users synced by identity sync: name → digest.
    synced: BTreeMap<String, String>,
    /// The held release is deployed (its strategy applied).
    release_deployed: bool,
    /// The sw-upgrade strategy, if one exists.
    vim: Option<VimStrategy>,
}

/// A virtual subcloud's sw-upgrade strategy.
#[derive(Debug)]
struct VimStrategy {
    uuid: String,
    options: SwUpgradeOptions,
    created: jiff::Timestamp,
    state: VimState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum VimState {
    ReadyToApply,
    /// Applying since then (monotonic, and as shown).
    Applying(Instant, jiff::Timestamp),
    Applied(jiff::Timestamp, jiff::Timestamp),
    /// The release is not held: the build failed.
    BuildFailed,
}

struct Simulator {
    behaviour: Behaviour,
    subclouds: Vec<Mutex<Virtual>>,
    requests: AtomicU64,
    /// Calls to the release and strategy routes (a sw-deploy step's), all subclouds together.
    deploy_requests: AtomicU64,
    /// Virtual subclouds whose release got deployed.
    deployed_count: AtomicUsize,
}

type Shared = Arc<Simulator>;

/// A running simulator: where it listens, and what it saw.
#[derive(Clone)]
pub struct Running {
    pub addr: SocketAddr,
    shared: Shared,
}

impl Running {
    /// Virtual subclouds whose release is deployed.
    pub fn deployed(&self) -> usize {
        self.shared.deployed_count.load(Ordering::Relaxed)
    }

    /// Calls made to the release and strategy routes so far.
    pub fn deploy_requests(&self) -> u64 {
        self.shared.deploy_requests.load(Ordering::Relaxed)
    }

    /// The base URL of virtual subcloud `n`.
    pub fn url(&self, n: usize) -> String {
        subcloud_url(self.addr, n)
    }

    /// The `admin` password of every virtual subcloud.
    pub fn sysadmin_password(&self) -> String {
        self.shared.behaviour.sysadmin_password.clone()
    }
}

/// Starts the simulator on `addr` (port 0 for any).
pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let simulator = Arc::new(Simulator {
        subclouds: (0..behaviour.subclouds)
            .map(|_| Mutex::new(Virtual::default()))
            .collect(),
        behaviour,
        requests: AtomicU64::new(0),
        deploy_requests: AtomicU64::new(0),
        deployed_count: AtomicUsize::new(0),
    });
    let upgrade = "/sc/{n}/api/orchestration/sw-upgrade/strategy";
    let app = Router::new()
        .route("/sc/{n}/v3", get(discovery))
        .route("/sc/{n}/v3/auth/tokens", post(login).delete(revoke))
        .route("/sc/{n}/v1/site", get(site))
        .route("/sc/{n}/v1/users", post(add_user))
        .route("/sc/{n}/v1/identity/sync", post(sync))
        .route("/sc/{n}/v1/software/releases/{id}", get(release))
        .route("/sc/{n}/api/orchestration/sw-patch/strategy", get(no_patch))
        .route(
            "/sc/{n}/api/orchestration/current-strategy/strategy",
            get(current_strategy),
        )
        .route(upgrade, get(show_vim).post(create_vim).delete(delete_vim))
        .route(&format!("{upgrade}/actions"), post(vim_action))
        .with_state(simulator.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Running {
        addr: local,
        shared: simulator,
    })
}

/// The base URL of virtual subcloud `n` of a simulator at `addr`.
pub fn subcloud_url(addr: SocketAddr, n: usize) -> String {
    format!("http://{addr}/sc/{n}")
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": "simulated", "message": message}})),
    )
        .into_response()
}

/// A refusal, answered as Convoy's error body.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

impl Simulator {
    fn subcloud(&self, n: usize) -> Result<&Mutex<Virtual>, Refusal> {
        self.subclouds
            .get(n)
            .ok_or(Refusal(StatusCode::NOT_FOUND, "no such virtual subcloud"))
    }

    async fn delay(&self) {
        if !self.behaviour.latency.is_zero() {
            tokio::time::sleep(self.behaviour.latency).await;
        }
    }

    /// The token of `user` on subcloud `n`.
    fn token(n: usize, user: &str) -> String {
        format!("sim-{n}-{user}")
    }

    /// Subcloud `n` once an applying strategy whose delay has passed has become applied (and
    /// its release deployed): a strategy's progress is worked out when it is looked at.
    fn settled(&self, n: usize) -> Result<std::sync::MutexGuard<'_, Virtual>, Refusal> {
        let mut subcloud = self.subcloud(n)?.lock().unwrap();
        if let Some(VimStrategy {
            state: VimState::Applying(since, shown),
            ..
        }) = subcloud.vim
            && since.elapsed() >= self.behaviour.vim_delay
        {
            let delay =
                jiff::SignedDuration::try_from(self.behaviour.vim_delay).unwrap_or_default();
            subcloud.vim.as_mut().unwrap().state = VimState::Applied(shown, shown + delay);
            if !subcloud.release_deployed {
                subcloud.release_deployed = true;
                self.deployed_count.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(subcloud)
    }

    /// A sw-deploy step's call to subcloud `n`: counted, delayed, authenticated.
    async fn deploy_call(
        &self,
        n: usize,
        headers: &HeaderMap,
    ) -> Result<std::sync::MutexGuard<'_, Virtual>, Refusal> {
        self.deploy_requests.fetch_add(1, Ordering::Relaxed);
        self.delay().await;
        self.authenticated(n, headers)?;
        self.settled(n)
    }

    fn authenticated(&self, n: usize, headers: &HeaderMap) -> Result<(), Refusal> {
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let subcloud = self.subcloud(n)?.lock().unwrap();
        let known = token == Self::token(n, "admin")
            || subcloud.users.keys().any(|u| token == Self::token(n, u));
        if known {
            Ok(())
        } else {
            Err(Refusal(StatusCode::UNAUTHORIZED, "unknown token"))
        }
    }
}

async fn discovery() -> Json<Value> {
    Json(json!({"version": {"id": "v3.14", "status": "stable"}}))
}

async fn login(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    Json(body): Json<Value>,
) -> Response {
    sim.delay().await;
    let user = &body["auth"]["identity"]["password"]["user"];
    let (name, password) = (
        user["name"].as_str().unwrap_or_default(),
        user["password"].as_str().unwrap_or_default(),
    );
    let good = match sim.subcloud(n) {
        Ok(subcloud) => {
            (name == "admin" && password == sim.behaviour.sysadmin_password)
                || subcloud.lock().unwrap().users.get(name).map(String::as_str) == Some(password)
        }
        Err(refusal) => return refusal.into_response(),
    };
    if !good {
        return error(
            StatusCode::UNAUTHORIZED,
            "authentication failed: wrong user name or password",
        );
    }
    (
        StatusCode::CREATED,
        [("X-Subject-Token", Simulator::token(n, name))],
        Json(json!({})),
    )
        .into_response()
}

async fn revoke() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn site(State(sim): State<Shared>, Path(n): Path<usize>, headers: HeaderMap) -> Response {
    sim.delay().await;
    if let Err(refusal) = sim.authenticated(n, &headers) {
        return refusal.into_response();
    }
    let count = sim.requests.fetch_add(1, Ordering::Relaxed);
    // A spread-out, repeatable choice of which answers fail.
    if count.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 100 < sim.behaviour.fail_percent {
        return error(StatusCode::SERVICE_UNAVAILABLE, "simulated failure");
    }
    let subcloud = match sim.settled(n) {
        Ok(subcloud) => subcloud,
        Err(refusal) => return refusal.into_response(),
    };
    let users = subcloud
        .synced
        .iter()
        .map(|(name, digest)| UserDigest {
            name: name.clone(),
            digest: digest.clone(),
        })
        .collect();
    let mut deployed = sim.behaviour.deployed.clone();
    let mut software_version = sim.behaviour.software_version.clone();
    if let Some(release) = &sim.behaviour.release
        && subcloud.release_deployed
    {
        deployed.push(release.id.clone());
        software_version.clone_from(&release.sw_version);
    }
    Json(SiteAudit {
        software_version,
        deployed,
        users,
        ..SiteAudit::default()
    })
    .into_response()
}

/// `GET /v1/software/releases/{id}`: the held release, or 404 as convoyd answers.
async fn release(
    State(sim): State<Shared>,
    Path((n, id)): Path<(usize, String)>,
    headers: HeaderMap,
) -> Response {
    let subcloud = match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => subcloud,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(held) = sim.behaviour.release.as_ref().filter(|r| r.id == id) else {
        return error(StatusCode::NOT_FOUND, "release not found");
    };
    let (state, repo_state) = if subcloud.release_deployed {
        ("deployed", "applied")
    } else {
        ("available", "available")
    };
    Json(ReleaseDetail {
        release_id: held.id.clone(),
        state: state.into(),
        sw_version: held.sw_version.clone(),
        status: "REL".into(),
        unremovable: false,
        summary: "A simulated release".into(),
        description: String::new(),
        install_instructions: String::new(),
        warnings: String::new(),
        reboot_required: false,
        requires: vec![],
        repo_state: repo_state.into(),
        patch_state: repo_state.into(),
    })
    .into_response()
}

/// `GET /api/orchestration/sw-patch/strategy`: never one.
async fn no_patch(State(sim): State<Shared>, Path(n): Path<usize>, headers: HeaderMap) -> Response {
    match sim.deploy_call(n, &headers).await {
        Ok(_) => Json(json!({"strategy": null})).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /api/orchestration/current-strategy/strategy`: the sw-upgrade strategy's name and
/// state, or null.
async fn current_strategy(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
) -> Response {
    match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => {
            let shown = subcloud.vim.as_ref().map(|v| {
                let state = &sim.vim_json(v)["state"];
                json!({"name": "sw-upgrade", "state": state})
            });
            Json(json!({ "strategy": shown })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// A phase as convoyd shows it (its stages left out: a System Controller reads none).
fn phase_json(
    name: &str,
    result: UpdateResult,
    percent: u32,
    start: Option<jiff::Timestamp>,
    end: Option<jiff::Timestamp>,
    reason: &str,
) -> Value {
    let date = |at: Option<jiff::Timestamp>| {
        at.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default()
    };
    json!({
        "phase-name": name,
        "timeout": 1,
        "total-stages": 0,
        "current-stage": 0,
        "stop-at-stage": 0,
        "inprogress": result == UpdateResult::Inprogress,
        "completion-percentage": percent,
        "result": result.as_str(),
        "reason": reason,
        "response": "",
        "start-date-time": date(start),
        "end-date-time": date(end),
        "stages": [],
    })
}

impl Simulator {
    /// The strategy in convoyd's JSON: its options, state, current phase and its completion,
    /// and the build, apply and abort phases.
    fn vim_json(&self, vim: &VimStrategy) -> Value {
        let delay = self.behaviour.vim_delay.as_secs_f64();
        let (state, phase, percent) = match vim.state {
            VimState::ReadyToApply => (StrategyState::ReadyToApply, Phase::Build, 100),
            VimState::BuildFailed => (StrategyState::BuildFailed, Phase::Build, 100),
            VimState::Applying(since, _) => {
                let done = since.elapsed().as_secs_f64() / delay.max(f64::MIN_POSITIVE);
                (
                    StrategyState::Applying,
                    Phase::Apply,
                    ((done * 100.0) as u32).min(99),
                )
            }
            VimState::Applied(..) => (StrategyState::Applied, Phase::Apply, 100),
        };
        let build_reason = match vim.state {
            VimState::BuildFailed => format!(
                "Release {} not found",
                vim.options.release().unwrap_or_default()
            ),
            _ => String::new(),
        };
        let build_result = if build_reason.is_empty() {
            UpdateResult::Success
        } else {
            UpdateResult::Failed
        };
        let apply = match vim.state {
            VimState::Applying(_, start) => phase_json(
                "apply",
                UpdateResult::Inprogress,
                percent,
                Some(start),
                None,
                "",
            ),
            VimState::Applied(start, end) => phase_json(
                "apply",
                UpdateResult::Success,
                100,
                Some(start),
                Some(end),
                "",
            ),
            _ => phase_json("apply", UpdateResult::Initial, 100, None, None, ""),
        };
        let mut strategy = match serde_json::to_value(&vim.options) {
            Ok(Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        let fields = [
            ("name", json!("sw-upgrade")),
            // convoyd shows the one release as a string.
            ("release", json!(vim.options.release().unwrap_or_default())),
            ("uuid", json!(vim.uuid)),
            ("state", json!(state.as_str())),
            ("current-phase", json!(phase.as_str())),
            ("current-phase-completion-percentage", json!(percent)),
            (
                "build-phase",
                phase_json(
                    "build",
                    build_result,
                    100,
                    Some(vim.created),
                    Some(vim.created),
                    &build_reason,
                ),
            ),
            ("apply-phase", apply),
            (
                "abort-phase",
                phase_json("abort", UpdateResult::Initial, 100, None, None, ""),
            ),
        ];
        for (key, value) in fields {
            strategy.insert(key.into(), value);
        }
        Value::Object(strategy)
    }
}

/// `GET /api/orchestration/sw-upgrade/strategy`: `{"strategy": ...}` or `{"strategy": null}`.
async fn show_vim(State(sim): State<Shared>, Path(n): Path<usize>, headers: HeaderMap) -> Response {
    match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => {
            let shown = subcloud.vim.as_ref().map(|v| sim.vim_json(v));
            Json(json!({ "strategy": shown })).into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `POST /api/orchestration/sw-upgrade/strategy`: built at once, ready to apply if the
/// release is held, else build-failed.
async fn create_vim(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    Json(options): Json<SwUpgradeOptions>,
) -> Response {
    let mut subcloud = match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => subcloud,
        Err(refusal) => return refusal.into_response(),
    };
    if subcloud.vim.is_some() {
        return error(
            StatusCode::CONFLICT,
            "strategy already exists of type:sw-upgrade",
        );
    }
    let held = sim
        .behaviour
        .release
        .as_ref()
        .is_some_and(|r| options.release() == Some(r.id.as_str()));
    let vim = VimStrategy {
        uuid: format!("00000000-0000-4000-8000-{n:012x}"),
        options,
        created: jiff::Timestamp::now(),
        state: if held {
            VimState::ReadyToApply
        } else {
            VimState::BuildFailed
        },
    };
    let shown = sim.vim_json(&vim);
    subcloud.vim = Some(vim);
    Json(json!({ "strategy": shown })).into_response()
}

/// `POST .../actions`: `apply-all` starts the apply of a ready strategy (202, as convoyd).
async fn vim_action(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let mut subcloud = match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => subcloud,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(vim) = subcloud.vim.as_mut() else {
        return error(StatusCode::NOT_FOUND, "no sw-upgrade strategy");
    };
    if !matches!(body["action"].as_str(), Some("apply-all" | "apply-stage")) {
        return error(StatusCode::BAD_REQUEST, "the simulator only applies");
    }
    if vim.state != VimState::ReadyToApply {
        return error(StatusCode::BAD_REQUEST, "strategy is not ready to apply");
    }
    vim.state = VimState::Applying(Instant::now(), jiff::Timestamp::now());
    let shown = sim.vim_json(vim);
    (StatusCode::ACCEPTED, Json(json!({ "strategy": shown }))).into_response()
}

/// `DELETE /api/orchestration/sw-upgrade/strategy`: refused while it applies.
async fn delete_vim(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
) -> Response {
    let mut subcloud = match sim.deploy_call(n, &headers).await {
        Ok(subcloud) => subcloud,
        Err(refusal) => return refusal.into_response(),
    };
    match &subcloud.vim {
        None => error(StatusCode::NOT_FOUND, "no sw-upgrade strategy"),
        Some(VimStrategy {
            state: VimState::Applying(..),
            ..
        }) => error(
            StatusCode::CONFLICT,
            "strategy is applying or aborting; abort it and wait for it to end",
        ),
        Some(_) => {
            subcloud.vim = None;
            Json(json!({})).into_response()
        }
    }
}

async fn add_user(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    sim.delay().await;
    if let Err(refusal) = sim.authenticated(n, &headers) {
        return refusal.into_response();
    }
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let password = body["password"].as_str().unwrap_or_default().to_string();
    sim.subclouds[n]
        .lock()
        .unwrap()
        .users
        .insert(name.clone(), password);
    (
        StatusCode::CREATED,
        Json(json!({"name": name, "role": "admin", "created_at": "2026-01-01T00:00:00Z"})),
    )
        .into_response()
}

async fn sync(
    State(sim): State<Shared>,
    Path(n): Path<usize>,
    headers: HeaderMap,
    Json(body): Json<IdentitySync>,
) -> Response {
    sim.delay().await;
    if let Err(refusal) = sim.authenticated(n, &headers) {
        return refusal.into_response();
    }
    let mut subcloud = sim.subclouds[n].lock().unwrap();
    for user in &body.users {
        let role: Role = user.role;
        subcloud.synced.insert(
            user.name.clone(),
            user_digest(&user.name, role, &user.password_hash),
        );
    }
    Json(IdentitySynced {
        changed: body.users.len() as u32,
    })
    .into_response()
}

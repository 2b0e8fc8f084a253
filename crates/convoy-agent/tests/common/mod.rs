//! Shared by the tests of the real agent binary: signed bundles, keys, a temporary host, and
//! a stand-in controller that speaks the agent protocol.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use convoy_api::agent::{
    CommandBatch, CommandDelivery, Enrolment, EnrolmentAccepted, Heartbeat, HeartbeatAccepted,
};
use convoy_api::hosts::{Command as ApiCommand, CommandOutcome};
use convoy_api::patches::{InstallPatches, PatchToChange};
use convoy_core::command::{CommandKind, CommandState};
use convoy_core::host::HostFacts;
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub const AGENT: &str = env!("CARGO_BIN_EXE_convoy-agent");

#[path = "../../src/patches/test_bundles.rs"]
mod test_bundles;
pub use test_bundles::{Bundle, key, stranger, tree};

/// A temporary host: a root, a state directory, the site's public key, bundles.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        key()
            .public_key()
            .write(&dir.path().join("site.pub"))
            .unwrap();
        stranger()
            .public_key()
            .write(&dir.path().join("stranger.pub"))
            .unwrap();
        Site { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn root(&self) -> PathBuf {
        self.path("root")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn public_key(&self) -> PathBuf {
        self.path("site.pub")
    }

    pub fn bundle(&self, id: &str) -> Bundle {
        Bundle::new(self.dir.path(), id)
    }

    pub fn write(&self, path: &str, bytes: &[u8], mode: u32) {
        let path = self.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root().join(path)).unwrap()
    }

    /// Everything under the root: path -> (mode, contents or link target).
    pub fn snapshot(&self) -> BTreeMap<String, (u32, Vec<u8>)> {
        tree(&self.root())
    }

    /// The agent's patch record, as JSON.
    pub fn patch_record(&self) -> serde_json::Value {
        let path = self.state_dir().join("patches/state.json");
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    /// `convoy-agent install-local` as a worker of release 25.09 trusting the site's key.
    pub fn install_local(&self, files: &[&Path]) -> std::process::Output {
        Command::new(AGENT)
            .arg("install-local")
            .args(files)
            .arg("--state-dir")
            .arg(self.state_dir())
            .args(["--personality", "worker", "--root"])
            .arg(self.root())
            .arg("--trusted-key")
            .arg(self.public_key())
            .output()
            .unwrap()
    }
}

/// A copy of `bundle` with one payload byte changed (the payload is stored as is).
pub fn tampered(bundle: &Path, marker: &[u8], out: &Path) -> PathBuf {
    let mut bytes = std::fs::read(bundle).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the marker is in the payload");
    bytes[at] ^= 1;
    std::fs::create_dir_all(out).unwrap();
    let path = out.join(bundle.file_name().unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

pub const CREDENTIAL: &str = "cvh_test_host";

/// Everything the stand-in controller saw, numbered in order of arrival.
#[derive(Default)]
pub struct Seen {
    next: usize,
    pub heartbeats: Vec<(usize, HostFacts)>,
    pub outcomes: Vec<(usize, Uuid, CommandOutcome)>,
    queue: Vec<CommandDelivery>,
    /// Delivered and not answered: id -> (delivery, session).
    unanswered: HashMap<Uuid, (CommandDelivery, String)>,
    bundles: HashMap<String, Vec<u8>>,
    /// Hand unanswered commands to a new agent session (as convoyd does).
    pub redeliver: bool,
}

impl Seen {
    fn number(&mut self) -> usize {
        self.next += 1;
        self.next
    }
}

/// A stand-in controller: enrols one host, records heartbeats and outcomes, hands out the
/// commands it is given and serves bundles.
#[derive(Clone)]
pub struct FakeConvoyd {
    pub seen: Arc<Mutex<Seen>>,
    pub url: String,
}

impl FakeConvoyd {
    pub async fn start() -> FakeConvoyd {
        let seen = Arc::new(Mutex::new(Seen {
            redeliver: true,
            ..Seen::default()
        }));
        let app = axum::Router::new()
            .route("/v1/agent/enrol", post(enrol))
            .route("/v1/agent/heartbeat", post(heartbeat))
            .route("/v1/agent/commands", get(commands))
            .route("/v1/agent/commands/{id}/outcome", post(outcome))
            .route("/v1/agent/patches/{id}", get(bundle))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeConvoyd { seen, url }
    }

    /// Serves the bundle; returns the change as the controller announces it.
    pub fn serve(&self, bundle: &Path, reboot_required: bool) -> PatchToChange {
        let bytes = std::fs::read(bundle).unwrap();
        let id = bundle.file_stem().unwrap().to_string_lossy().into_owned();
        let change = PatchToChange {
            id: id.clone(),
            reboot_required,
            sha256: Some(hex::encode(Sha256::digest(&bytes))),
            size: Some(bytes.len() as u64),
        };
        self.seen.lock().unwrap().bundles.insert(id, bytes);
        change
    }

    /// Queues an install-patches command; returns its id.
    pub fn send(&self, request: &InstallPatches) -> Uuid {
        self.send_kind(
            CommandKind::InstallPatches,
            serde_json::to_value(request).unwrap(),
        )
    }

    /// Queues a command of any kind.
    pub fn send_kind(&self, kind: CommandKind, payload: serde_json::Value) -> Uuid {
        let delivery = CommandDelivery {
            id: Uuid::new_v4(),
            kind,
            payload,
        };
        let id = delivery.id;
        self.seen.lock().unwrap().queue.push(delivery);
        id
    }

    pub fn outcome(&self, id: Uuid) -> Option<(usize, CommandOutcome)> {
        let seen = self.seen.lock().unwrap();
        seen.outcomes
            .iter()
            .find(|(_, of, _)| *of == id)
            .map(|(n, _, o)| (*n, o.clone()))
    }

    pub fn last_heartbeat(&self) -> Option<(usize, HostFacts)> {
        self.seen.lock().unwrap().heartbeats.last().cloned()
    }

    /// Waits for an outcome of command `id`.
    pub async fn wait_for_outcome(&self, id: Uuid) -> (usize, CommandOutcome) {
        eventually(|| self.outcome(id), "the command's outcome").await
    }

    /// Waits for a heartbeat that satisfies `check`.
    pub async fn wait_for_heartbeat(
        &self,
        what: &str,
        check: impl Fn(&HostFacts) -> bool,
    ) -> (usize, HostFacts) {
        eventually(
            || self.last_heartbeat().filter(|(_, facts)| check(facts)),
            what,
        )
        .await
    }
}

/// Polls `probe` for up to 30 s.
pub async fn eventually<T>(mut probe: impl FnMut() -> Option<T>, what: &str) -> T {
    for _ in 0..600 {
        if let Some(value) = probe() {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn enrol(Json(request): Json<Enrolment>) -> Json<EnrolmentAccepted> {
    Json(EnrolmentAccepted {
        hostname: request.hostname,
        credential: CREDENTIAL.into(),
        ping_interval_seconds: 1,
    })
}

fn authorised(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(convoy_api::AUTH_HEADER)
        .is_some_and(|v| v.as_bytes() == CREDENTIAL.as_bytes())
}

async fn heartbeat(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
    Json(beat): Json<Heartbeat>,
) -> Result<Json<HeartbeatAccepted>, StatusCode> {
    if !authorised(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut seen = seen.lock().unwrap();
    let n = seen.number();
    seen.heartbeats.push((n, beat.facts));
    Ok(Json(HeartbeatAccepted {
        ping_interval_seconds: 1,
    }))
}

#[derive(serde::Deserialize)]
struct Poll {
    session: String,
}

async fn commands(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
    Query(poll): Query<Poll>,
) -> Result<Json<CommandBatch>, StatusCode> {
    if !authorised(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    for _ in 0..4 {
        {
            let mut seen = seen.lock().unwrap();
            let mut commands: Vec<CommandDelivery> = seen.queue.drain(..).collect();
            if seen.redeliver {
                for (delivery, session) in seen.unanswered.values_mut() {
                    if *session != poll.session {
                        *session = poll.session.clone();
                        commands.push(delivery.clone());
                    }
                }
            }
            for c in &commands {
                seen.unanswered
                    .insert(c.id, (c.clone(), poll.session.clone()));
            }
            if !commands.is_empty() {
                return Ok(Json(CommandBatch { commands }));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Json(CommandBatch { commands: vec![] }))
}

async fn outcome(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
    UrlPath(id): UrlPath<Uuid>,
    Json(outcome): Json<CommandOutcome>,
) -> Result<Json<ApiCommand>, StatusCode> {
    if !authorised(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut seen = seen.lock().unwrap();
    let delivery = seen.unanswered.remove(&id).map(|(d, _)| d);
    let n = seen.number();
    seen.outcomes.push((n, id, outcome.clone()));
    Ok(Json(ApiCommand {
        id,
        hostname: "worker-0".into(),
        kind: CommandKind::InstallPatches,
        payload: delivery.map(|d| d.payload).unwrap_or_default(),
        state: CommandState::Completed,
        created_at: jiff::Timestamp::now(),
        dispatched_at: None,
        completed_at: None,
        outcome: Some(outcome),
    }))
}

async fn bundle(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: axum::http::HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Vec<u8>, StatusCode> {
    if !authorised(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    seen.lock()
        .unwrap()
        .bundles
        .get(&id)
        .cloned()
        .ok_or(StatusCode::NOT_FOUND)
}

/// A running agent (the real binary), killed when dropped.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    /// Starts a worker agent on the site with `restart-agent` as its reboot command.
    pub fn start(site: &Site, controller: &FakeConvoyd) -> Agent {
        let token = site.path("agent-token");
        std::fs::write(&token, "token").unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(site.path("agent.log"))
            .unwrap();
        let child = Command::new(AGENT)
            .args(["--controller", &controller.url, "--enrol-token-file"])
            .arg(&token)
            .args(["--hostname", "worker-0", "--personality", "worker"])
            .arg("--state-dir")
            .arg(site.state_dir())
            .arg("--root")
            .arg(site.root())
            .arg("--trusted-key")
            .arg(site.public_key())
            .args(["--reboot-command", "restart-agent"])
            .env("CONVOY_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Agent { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A subcloud simulator: one process serving many virtual subclouds, each at its own base URL
//! (`http://ADDR/sc/<n>`), answering exactly what a System Controller asks of a subcloud
//! (login, token revocation, the site summary, the service account's creation, identity sync),
//! with a configurable latency, failure rate and deployed software. Not a product binary.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use convoy_api::dc::{IdentitySync, IdentitySynced, SiteAudit, UserDigest, user_digest};
use convoy_core::role::Role;
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
}

#[derive(Debug, Default)]
struct Virtual {
    /// Users made by the System Controller: name → password.
    users: BTreeMap<String, String>,
    /// Users synced by identity sync: name → digest.
    synced: BTreeMap<String, String>,
}

struct Simulator {
    behaviour: Behaviour,
    subclouds: Vec<Mutex<Virtual>>,
    requests: AtomicU64,
}

type Shared = Arc<Simulator>;

/// Starts the simulator on `addr` (port 0 for any) and returns where it listens.
pub async fn start(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let simulator = Arc::new(Simulator {
        subclouds: (0..behaviour.subclouds)
            .map(|_| Mutex::new(Virtual::default()))
            .collect(),
        behaviour,
        requests: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/sc/{n}/v3", get(discovery))
        .route("/sc/{n}/v3/auth/tokens", post(login).delete(revoke))
        .route("/sc/{n}/v1/site", get(site))
        .route("/sc/{n}/v1/users", post(add_user))
        .route("/sc/{n}/v1/identity/sync", post(sync))
        .with_state(simulator);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(local)
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
    let users = sim.subclouds[n]
        .lock()
        .unwrap()
        .synced
        .iter()
        .map(|(name, digest)| UserDigest {
            name: name.clone(),
            digest: digest.clone(),
        })
        .collect();
    Json(SiteAudit {
        software_version: sim.behaviour.software_version.clone(),
        deployed: sim.behaviour.deployed.clone(),
        users,
        ..SiteAudit::default()
    })
    .into_response()
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

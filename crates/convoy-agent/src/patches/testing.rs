//! Real signed bundles and a host with a temporary root, for the tests of this module.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use convoy_bundle::TrustedKeys;
use convoy_core::host::Personality;

use super::installer::Installer;
pub use super::test_bundles::{Bundle, key, stranger, tree};

/// A host with its own state directory and root, trusting [`key`].
pub struct Host {
    pub dir: tempfile::TempDir,
    pub personality: Personality,
}

impl Host {
    pub fn new(personality: Personality) -> Host {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Host { dir, personality }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Where tests build their bundles.
    pub fn bundle(&self, id: &str) -> Bundle {
        Bundle::new(self.dir.path(), id)
    }

    /// A fresh installer, as a restarted agent would have.
    pub fn installer(&self) -> Installer {
        self.installer_trusting(TrustedKeys::new([key().public_key()]))
    }

    pub fn installer_trusting(&self, trusted: TrustedKeys) -> Installer {
        let mut installer = Installer::new(
            &self.state_dir(),
            &self.root(),
            self.personality,
            "25.09".parse().unwrap(),
            trusted,
        );
        installer.script_timeout = Duration::from_secs(20);
        installer
    }

    /// Everything under the root: path -> (mode, contents or link target); directories too.
    pub fn snapshot(&self) -> BTreeMap<String, (u32, Vec<u8>)> {
        tree(&self.root())
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root().join(path)).unwrap()
    }
}

/// A stand-in for the controller's bundle route: serves the files it is given to the
/// credential it is given.
#[derive(Clone, Default)]
pub struct FakeController {
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub credential: String,
    /// Bundle requests served or refused.
    pub requests: Arc<AtomicUsize>,
}

impl FakeController {
    pub async fn start(credential: &str) -> (FakeController, String) {
        let fake = FakeController {
            files: Arc::default(),
            credential: credential.into(),
            requests: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/v1/agent/patches/{id}", get(serve))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (fake, url)
    }

    pub fn put(&self, id: &str, bytes: Vec<u8>) {
        self.files.lock().unwrap().insert(id.into(), bytes);
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn serve(
    State(fake): State<FakeController>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> (StatusCode, Vec<u8>) {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    if headers
        .get(convoy_api::AUTH_HEADER)
        .is_none_or(|v| v.as_bytes() != fake.credential.as_bytes())
    {
        let body = r#"{"error":{"code":"unauthorized","message":"bad credential"}}"#;
        return (StatusCode::UNAUTHORIZED, body.as_bytes().to_vec());
    }
    match fake.files.lock().unwrap().get(&id) {
        Some(bytes) => (StatusCode::OK, bytes.clone()),
        None => (
            StatusCode::NOT_FOUND,
            format!(r#"{{"error":{{"code":"not_found","message":"no patch {id}"}}}}"#).into_bytes(),
        ),
    }
}

//! Real signed bundles and a host with a temporary root, for the tests of this module.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use convoy_bundle::{BuildSpec, PayloadFile, Script, Section, SigningKey, TrustedKeys};
use convoy_core::host::Personality;

use super::installer::Installer;

/// The key the site signs with.
pub fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// A key nobody trusts.
pub fn stranger() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}

/// A bundle to build: in-service (not reboot-required) unless told otherwise.
pub struct Bundle {
    spec: BuildSpec,
    sources: PathBuf,
}

impl Bundle {
    pub fn new(dir: &Path, id: &str) -> Bundle {
        let sources = dir.join("sources").join(id);
        std::fs::create_dir_all(&sources).unwrap();
        let mut spec = BuildSpec::new(id.parse().unwrap(), "25.09".parse().unwrap());
        spec.reboot_required = false;
        Bundle { spec, sources }
    }

    fn source(&self, bytes: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.sources.join(format!(
            "f{}",
            self.spec.payload.len() + self.spec.scripts.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub fn file(self, section: Section, install_path: &str, bytes: &[u8]) -> Bundle {
        self.file_with_mode(section, install_path, bytes, 0o644)
    }

    pub fn file_with_mode(
        mut self,
        section: Section,
        install_path: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Bundle {
        let source = self.source(bytes, mode);
        self.spec.payload.push(PayloadFile {
            section,
            source,
            install_path: install_path.into(),
        });
        self
    }

    pub fn script(mut self, script: Script, body: &str) -> Bundle {
        let source = self.source(format!("#!/bin/sh\n{body}\n").as_bytes(), 0o755);
        self.spec.scripts.insert(script, source);
        self
    }

    pub fn requires(mut self, id: &str) -> Bundle {
        self.spec.requires.push(id.parse().unwrap());
        self
    }

    pub fn release(mut self, release: &str) -> Bundle {
        self.spec.sw_version = release.parse().unwrap();
        self
    }

    pub fn reboot_required(mut self) -> Bundle {
        self.spec.reboot_required = true;
        self
    }

    /// Signed with the site's key, into `<dir>/bundles/`.
    pub fn build(self) -> PathBuf {
        self.build_with(&key())
    }

    pub fn build_with(self, key: &SigningKey) -> PathBuf {
        let out = self
            .sources
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("bundles")
            .join(key.id().as_str());
        std::fs::create_dir_all(&out).unwrap();
        convoy_bundle::build(&self.spec, key, &out).unwrap()
    }
}

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

/// Every entry under `root` with its mode and contents (a link's target; nothing for a
/// directory).
pub fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let contents = if meta.is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            walk(root, &path, out);
            Vec::new()
        };
        out.insert(name, (meta.mode(), contents));
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

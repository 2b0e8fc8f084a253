//! What every request handler shares.

use std::path::PathBuf;
use std::sync::Arc;

use convoy_bundle::{Limits, TrustedKeys};
use convoy_core::patch::Release;

use convoy_store::{Store, SubcloudStore};
use jiff::SignedDuration;

use crate::config::Settings;
use crate::credentials::CredentialCache;
use crate::hashing::Hashing;
use crate::login_throttles::LoginThrottles;
use crate::polls::Polls;
use crate::secrets;
use crate::strategy::inbox::Inbox;
use crate::subclouds::DcSettings;
use crate::subclouds::connection::Sessions;
use crate::wakeups::Wakeups;

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// SHA-256 of the agent enrolment token; compared by hash so the comparison does not leak
    /// the token through timing.
    pub enrolment_token_hash: Arc<str>,
    /// Whether the site token may enrol new hosts (`site_enrolment`).
    pub site_enrolment: bool,
    pub ping_interval: SignedDuration,
    pub token_ttl: SignedDuration,
    /// A dispatched command without an outcome after this long is delivered again.
    pub redeliver_after: SignedDuration,
    pub wakeups: Arc<Wakeups>,
    /// Outcomes of strategy commands on their way to the strategy driver.
    pub inbox: Arc<Inbox>,
    /// Agents' long polls the strategy driver can hand new commands to.
    pub polls: Arc<Polls>,
    pub credentials: Arc<CredentialCache>,
    /// Verified against when a login names an unknown user, so that answering takes as long as
    /// for a known one.
    pub decoy_password_hash: Arc<str>,
    /// Where verified patch bundles are kept (`DATA_DIR/patches`).
    pub patch_dir: PathBuf,
    /// Held by every change of the patch repository from the moment it reads the repository
    /// to decide until its rows and bundle files are written: changes never interleave.
    pub repository_changes: Arc<tokio::sync::Mutex<()>>,
    /// Keys whose signatures patches may carry.
    pub trusted_keys: Arc<TrustedKeys>,
    pub bundle_limits: Limits,
    pub max_patch_bytes: u64,
    /// The release the site runs.
    pub release: Release,
    /// A random id of this run of convoyd.
    pub incarnation: Arc<str>,
    /// Password hashes run one per core at a time.
    pub hashing: Arc<Hashing>,
    pub login_throttles: Arc<LoginThrottles>,
    /// The software-update strategies' waits and timeouts.
    pub step_durations: convoy_core::sw_update::durations::StepDurations,
    /// The System Controller's subclouds and groups.
    pub subclouds: Arc<dyn SubcloudStore>,
    pub dc: Arc<DcSettings>,
    /// The service accounts' tokens on the subclouds.
    pub sessions: Arc<Sessions>,
    /// Starts an audit cycle now (a subcloud was added or managed).
    pub audit_wake: Arc<tokio::sync::Notify>,
    /// This site's prestage store (what a System Controller sent it).
    pub prestage_store: crate::prestage::site_store::SiteStore,
    /// The System Controller's prestage preparations and transfers.
    pub preparations: Arc<crate::prestage::preparation::Preparations>,
    pub transfers: Arc<crate::prestage::transfer::Transfers>,
    /// `https`, or `http` under --insecure-http: how this controller's own URLs begin.
    pub scheme: &'static str,
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        subclouds: Arc<dyn SubcloudStore>,
        enrolment_token: String,
        trusted_keys: TrustedKeys,
        settings: &Settings,
    ) -> Self {
        let decoy = secrets::hash_password(&secrets::generate_password()).unwrap_or_default();
        AppState {
            store,
            enrolment_token_hash: secrets::token_hash(&enrolment_token).into(),
            site_enrolment: settings.site_enrolment,
            ping_interval: settings.ping_interval,
            token_ttl: settings.token_ttl,
            redeliver_after: SignedDuration::from_secs(30).max(settings.ping_interval * 3),
            wakeups: Arc::new(Wakeups::default()),
            inbox: Arc::new(Inbox::default()),
            polls: Arc::new(Polls::default()),
            credentials: Arc::new(CredentialCache::default()),
            decoy_password_hash: decoy.into(),
            step_durations: settings.step_durations.clone(),
            patch_dir: settings.data_dir.join("patches"),
            repository_changes: Arc::new(tokio::sync::Mutex::new(())),
            trusted_keys: Arc::new(trusted_keys),
            bundle_limits: Limits {
                max_total_size: settings.max_patch_bytes,
                ..Limits::default()
            },
            max_patch_bytes: settings.max_patch_bytes,
            release: settings.release.clone(),
            incarnation: secrets::generate("", 8).into(),
            hashing: Arc::new(Hashing::per_core()),
            login_throttles: Arc::new(LoginThrottles::new(
                settings.login_per_user,
                settings.login_per_source,
            )),
            subclouds,
            dc: Arc::new(settings.dc.clone()),
            prestage_store: crate::prestage::site_store::SiteStore::new(&settings.data_dir),
            preparations: Arc::new(crate::prestage::preparation::Preparations::new(
                &settings.data_dir,
            )),
            transfers: Arc::new(crate::prestage::transfer::Transfers::new(
                settings.dc.prestage_per_subcloud,
                settings.dc.prestage_total,
            )),
            sessions: Arc::new(Sessions::default()),
            audit_wake: Arc::new(tokio::sync::Notify::new()),
            scheme: if settings.insecure_http {
                "http"
            } else {
                "https"
            },
        }
    }
}

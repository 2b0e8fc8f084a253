//! The transfer of a prepared release to one subcloud, run in the background while the
//! step's check polls it: which chunks the subcloud lacks is asked first, only those are
//! sent (each paced by the subcloud's cap and the System Controller's), and then each bundle
//! is assembled and verified by the subcloud. A transfer cut short (either side restarted,
//! the network lost) is simply started again: the subcloud keeps every chunk it received, so
//! the next one sends the rest only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use convoy_api::prestage::{PrestageImport, PrestageTarget};
use convoy_api::{Client, ClientError};
use convoy_store::subclouds::SubcloudRecord;
use futures_util::FutureExt;
use tokio::task::JoinHandle;

use super::bandwidth::Bandwidth;
use super::preparation::{PreparedBundle, read_chunk};
use crate::state::AppState;
use crate::subclouds::connection::token_refused;

/// How far a transfer is, in bytes of the release (held before plus sent since).
#[derive(Debug, Default)]
pub struct Progress {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

/// What a finished transfer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferReport {
    pub total: u64,
    /// Bytes of chunks sent.
    pub sent: u64,
    /// Bytes of chunks the subcloud held already (or of bundles it had).
    pub held: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Worth another try (unreachable, a 5xx, a token expired).
    #[error("{0}")]
    Transient(String),
    /// The subcloud refused the release (a signature it does not trust, a bad bundle).
    #[error("{0}")]
    Refused(String),
}

impl From<ClientError> for TransferError {
    fn from(e: ClientError) -> TransferError {
        match e.status() {
            // A chunk that went missing since it was counted (409) is sent again next time.
            Some(status) if (400..500).contains(&status) && status != 401 && status != 409 => {
                TransferError::Refused(e.to_string())
            }
            _ => TransferError::Transient(e.to_string()),
        }
    }
}

/// Where a step's transfer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    Running { done: u64, total: u64 },
    Done(TransferReport),
    Failed(TransferError),
}

struct Running {
    progress: Arc<Progress>,
    handle: Mutex<Option<JoinHandle<Result<TransferReport, TransferError>>>>,
}

/// The System Controller's transfers, by (strategy, subcloud name).
pub struct Transfers {
    running: Mutex<HashMap<(String, String), Arc<Running>>>,
    total_cap: Arc<Bandwidth>,
    per_subcloud: u64,
}

impl Transfers {
    /// Caps in bytes a second (0: none).
    pub fn new(per_subcloud: u64, total: u64) -> Transfers {
        Transfers {
            running: Mutex::new(HashMap::new()),
            total_cap: Arc::new(Bandwidth::new(total)),
            per_subcloud,
        }
    }

    /// The transfer's state; None if none was started (or the last one's end was read).
    pub fn poll(&self, strategy: &str, subcloud: &str) -> Option<TransferState> {
        let key = (strategy.to_string(), subcloud.to_string());
        let mut running = self.running.lock().expect("transfers lock");
        let entry = running.get(&key)?.clone();
        let mut handle = entry.handle.lock().expect("transfer lock");
        let finished = handle.as_ref().is_none_or(|h| h.is_finished());
        if !finished {
            return Some(TransferState::Running {
                done: entry.progress.done.load(Ordering::Relaxed),
                total: entry.progress.total.load(Ordering::Relaxed),
            });
        }
        let result = handle.take().and_then(|h| h.now_or_never());
        drop(handle);
        running.remove(&key);
        Some(match result {
            Some(Ok(Ok(report))) => TransferState::Done(report),
            Some(Ok(Err(e))) => TransferState::Failed(e),
            Some(Err(join)) => TransferState::Failed(TransferError::Transient(join.to_string())),
            None => TransferState::Failed(TransferError::Transient("the transfer was lost".into())),
        })
    }

    /// Starts sending `bundles` to `subcloud` for the strategy, unless it runs already.
    pub fn start(
        &self,
        app: &AppState,
        strategy: &str,
        subcloud: &SubcloudRecord,
        bundles: Vec<PreparedBundle>,
        target: PrestageTarget,
    ) {
        let key = (strategy.to_string(), subcloud.name.clone());
        let mut running = self.running.lock().expect("transfers lock");
        if running.contains_key(&key) {
            return;
        }
        let progress = Arc::new(Progress::default());
        let caps = Caps {
            subcloud: Bandwidth::new(self.per_subcloud),
            total: self.total_cap.clone(),
        };
        let task = send(
            app.clone(),
            subcloud.clone(),
            bundles,
            target,
            progress.clone(),
            caps,
        );
        running.insert(
            key,
            Arc::new(Running {
                progress,
                handle: Mutex::new(Some(tokio::spawn(task))),
            }),
        );
    }

    /// Stops the strategy's transfers (it was deleted, or its steps ended).
    pub fn stop(&self, strategy: &str, keep: impl Fn(&str) -> bool) {
        self.running
            .lock()
            .expect("transfers lock")
            .retain(|(s, name), r| {
                if s != strategy || keep(name) {
                    return true;
                }
                if let Some(handle) = r.handle.lock().expect("transfer lock").take() {
                    handle.abort();
                }
                false
            });
    }
}

struct Caps {
    subcloud: Bandwidth,
    total: Arc<Bandwidth>,
}

async fn client(app: &AppState, subcloud: &SubcloudRecord) -> Result<Client, TransferError> {
    match tokio::time::timeout(app.dc.audit_timeout, app.sessions.client(&app.dc, subcloud)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(TransferError::Transient(e.to_string())),
        Err(_) => Err(TransferError::Transient(
            "the subcloud did not answer in time".into(),
        )),
    }
}

/// Runs one transfer.
async fn send(
    app: AppState,
    subcloud: SubcloudRecord,
    bundles: Vec<PreparedBundle>,
    target: PrestageTarget,
    progress: Arc<Progress>,
    caps: Caps,
) -> Result<TransferReport, TransferError> {
    let result = send_bundles(&app, &subcloud, &bundles, target, &progress, &caps).await;
    if let Err(e) = &result {
        tracing::info!(
            subcloud = subcloud.name,
            "prestage transfer ended early: {e}"
        );
    }
    result
}

async fn send_bundles(
    app: &AppState,
    subcloud: &SubcloudRecord,
    bundles: &[PreparedBundle],
    target: PrestageTarget,
    progress: &Progress,
    caps: &Caps,
) -> Result<TransferReport, TransferError> {
    let total: u64 = bundles.iter().map(|b| b.file.size).sum();
    progress.total.store(total, Ordering::Relaxed);
    let client = client(app, subcloud).await?;
    let guarded = |e: ClientError| {
        if token_refused(&e) {
            app.sessions.forget(subcloud.id);
        }
        TransferError::from(e)
    };
    let prestaged: HashSet<String> = match target {
        PrestageTarget::Install => client
            .prestage_store()
            .await
            .map_err(guarded)?
            .versions
            .into_iter()
            .flat_map(|v| v.releases)
            .collect(),
        PrestageTarget::SwDeploy => HashSet::new(),
    };
    let mut report = TransferReport {
        total,
        sent: 0,
        held: 0,
    };
    for bundle in bundles {
        let release = &bundle.file.release;
        let there = match target {
            PrestageTarget::Install => prestaged.contains(release),
            PrestageTarget::SwDeploy => match client.release(release).await {
                Ok(_) => true,
                Err(e) if e.status() == Some(404) => false,
                Err(e) => return Err(guarded(e)),
            },
        };
        if there {
            report.held += bundle.file.size;
            progress.done.fetch_add(bundle.file.size, Ordering::Relaxed);
            continue;
        }
        let digests: Vec<String> = bundle.chunks.iter().map(|c| c.sha256.clone()).collect();
        let mut missing = HashSet::new();
        for batch in digests.chunks(convoy_api::prestage::MAX_CHUNKS_PER_REQUEST) {
            missing.extend(client.missing_chunks(batch).await.map_err(guarded)?);
        }
        for (offset, chunk) in bundle.offsets() {
            // Held chunks count as done, and so does a chunk repeated within the bundle
            // once it was sent.
            if !missing.remove(&chunk.sha256) {
                report.held += chunk.size;
                progress.done.fetch_add(chunk.size, Ordering::Relaxed);
                continue;
            }
            caps.subcloud.wait(chunk.size).await;
            caps.total.wait(chunk.size).await;
            let path = bundle.file.path.clone();
            let size = chunk.size;
            // Read and hashed off the runtime; checked before it leaves, so that a bundle
            // changed on disk since it was prepared is not sent as the release.
            let (bytes, digest) = tokio::task::spawn_blocking(move || {
                read_chunk(&path, offset, size).map(|bytes| {
                    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                    (bytes, digest)
                })
            })
            .await
            .map_err(|e| TransferError::Transient(e.to_string()))?
            .map_err(|e| {
                TransferError::Refused(format!("cannot read the bundle of {release}: {e}"))
            })?;
            if digest != chunk.sha256 {
                return Err(TransferError::Refused(format!(
                    "the bundle of {release} changed on the System Controller since it was \
                     prepared; upload it again, then delete the strategy and create it again"
                )));
            }
            client
                .put_chunk(&chunk.sha256, bytes)
                .await
                .map_err(guarded)?;
            report.sent += chunk.size;
            progress.done.fetch_add(chunk.size, Ordering::Relaxed);
        }
        let import = PrestageImport {
            release: release.clone(),
            sw_version: bundle.file.sw_version.clone(),
            target,
            sha256: bundle.file.sha256.clone(),
            size: bundle.file.size,
            chunks: bundle.chunks.clone(),
        };
        client.import_prestaged(&import).await.map_err(guarded)?;
    }
    tracing::info!(
        subcloud = subcloud.name,
        total = report.total,
        sent = report.sent,
        held = report.held,
        "prestage transfer complete"
    );
    Ok(report)
}

//! Uploads: a patch file is streamed to disk, verified (signature by a trusted key, every
//! member against the signed manifest, paths, limits) and only then imported. A refused upload
//! leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use convoy_bundle::VerifiedBundle;
use convoy_core::patch::{Outcome, PatchId, Refusal};
use convoy_store::PatchRecord;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::repository::Site;
use crate::api::ApiError;
use crate::clock;
use crate::state::AppState;

/// A file being received; removed on drop unless kept.
pub struct Incoming {
    pub path: PathBuf,
    keep: bool,
}

impl Incoming {
    /// A new file name in the repository's `incoming` directory.
    pub async fn new(state: &AppState) -> Result<Incoming, ApiError> {
        let incoming_dir = state.patch_dir.join("incoming");
        tokio::fs::create_dir_all(&incoming_dir)
            .await
            .map_err(ApiError::internal)?;
        Ok(Incoming {
            path: incoming_dir.join(format!("{}.part", uuid::Uuid::new_v4())),
            keep: false,
        })
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Receives, verifies and imports one patch file named `file_name`.
pub async fn upload(state: &AppState, file_name: &str, body: Body) -> Result<Outcome, ApiError> {
    // A refused name leaves the body unread: the connection throws it away after the answer.
    let id =
        PatchId::from_file_name(file_name).map_err(|e| ApiError::invalid("file_name", e.reason))?;

    let incoming = Incoming::new(state).await?;
    let (size, sha256) = receive(body, &incoming.path, state.max_patch_bytes).await?;
    import(state, &id, incoming, size, sha256).await
}

/// Verifies the received bundle `incoming` (`size` bytes, `sha256`) as patch `id` and imports
/// it; a refusal removes the file.
pub async fn import(
    state: &AppState,
    id: &PatchId,
    mut incoming: Incoming,
    size: u64,
    sha256: String,
) -> Result<Outcome, ApiError> {
    let id = id.clone();
    let trusted = state.trusted_keys.clone();
    let limits = state.bundle_limits.clone();
    let path = incoming.path.clone();
    let verified: VerifiedBundle =
        tokio::task::spawn_blocking(move || convoy_bundle::verify(&path, &trusted, &limits))
            .await?
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::BAD_REQUEST,
                    "patch_rejected",
                    format!("Patch validation failed for {id}:\n{e}"),
                )
            })?;
    let metadata = verified.metadata().clone();
    if metadata.id != id {
        return Err(ApiError::invalid(
            "file_name",
            format!(
                "the file is named for {id} but holds patch {}; name it {}.patch",
                metadata.id, metadata.id
            ),
        ));
    }

    let site = Site::load_for_change(state).await?;
    // A re-upload may change metadata only (a committed patch is not touched at all).
    if let Some(existing) = site.records.get(&id)
        && existing.repo_state != convoy_core::patch::RepoState::Committed
        && !same_payload(&state.patch_dir.join(&existing.file_name), &verified)?
    {
        return Err(refused(Refusal::ContentsDiffer(id)));
    }
    let outcome = convoy_core::patch::operations::import(&site.repo, &metadata).map_err(refused)?;
    if outcome.changes.is_empty() {
        // Committed: metadata not updated, the file not replaced.
        return Ok(outcome);
    }
    let file_name = id.file_name();
    let now = clock::now();
    let record = PatchRecord {
        id: id.to_string(),
        metadata: String::new(),
        repo_state: convoy_core::patch::RepoState::Available,
        file_name: file_name.clone(),
        size,
        sha256,
        uploaded_at: site.records.get(&id).map_or(now, |r| r.uploaded_at),
        updated_at: now,
    };
    // The file is in place (and its name durable) before its row: a crash between the two
    // leaves a file without a row, which the start-up sweep removes.
    tokio::fs::rename(&incoming.path, state.patch_dir.join(&file_name))
        .await
        .map_err(ApiError::internal)?;
    incoming.keep = true;
    super::repository::sync_dir(&state.patch_dir);
    site.persist(state, &outcome, &BTreeMap::from([(id, record)]))
        .await?;
    Ok(outcome)
}

/// Streams the body to `path`, refusing it past `max` bytes; returns its size and SHA-256.
async fn receive(body: Body, path: &Path, max: u64) -> Result<(u64, String), ApiError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(ApiError::internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::invalid("body", format!("upload interrupted: {e}")))?;
        size += chunk.len() as u64;
        if size > max {
            return Err(ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "body: the patch is larger than this controller accepts ({max} bytes, max_patch_bytes)"
                ),
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok((size, hex::encode(hasher.finalize())))
}

/// Whether the stored bundle at `stored` has the same payload and scripts as `new` (a
/// re-upload may change metadata only).
fn same_payload(stored: &Path, new: &VerifiedBundle) -> Result<bool, ApiError> {
    if !stored.exists() {
        // Its bundle was lost (a disk replaced, a file removed by hand): the upload repairs it.
        tracing::warn!(file = %stored.display(), "a patch's bundle is missing; the upload restores it");
        return Ok(true);
    }
    let old = convoy_bundle::inspect(stored).map_err(ApiError::internal)?;
    let contents = |members: &[convoy_bundle::ManifestEntry]| -> Vec<(String, String)> {
        members
            .iter()
            .filter(|m| m.path.starts_with("payload/") || m.path.starts_with("scripts/"))
            .map(|m| (m.path.clone(), m.sha256.clone()))
            .collect()
    };
    Ok(contents(&old.manifest.members) == contents(&new.manifest().members))
}

/// A refusal of the patch rules as an API error: unknown patches are 404, the rest 409 (the
/// request is well formed but the repository's state does not allow it).
pub fn refused(refusal: Refusal) -> ApiError {
    let status = match refusal {
        Refusal::DoesNotExist(_) | Refusal::Unrecognized(_) => axum::http::StatusCode::NOT_FOUND,
        Refusal::InvalidMetadata { .. } => axum::http::StatusCode::BAD_REQUEST,
        _ => axum::http::StatusCode::CONFLICT,
    };
    ApiError::new(status, "patch_refused", refusal.to_string())
}

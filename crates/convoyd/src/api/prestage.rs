//! `/v1/prestage`: a site's side of prestage (what a System Controller calls on its
//! subclouds): the store's state, which chunks are missing, a chunk, and assembling a
//! release from its chunks into the repository (to deploy) or the prestage store (to
//! install). Writes are for admins (the System Controller's service account is one).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::ErrorBody;
use convoy_api::prestage::{
    ChunkList, MAX_CHUNKS_PER_REQUEST, PrestageImport, PrestageImported, PrestageStore,
    PrestageTarget,
};
use convoy_core::patch::{PatchId, Release};
use convoy_core::role::Role;

use super::ApiError;
use super::extract::{ApiJson, ApiPath, Caller};
use crate::patches::repository::{Site, sync_dir};
use crate::patches::upload::{Incoming, import};
use crate::prestage::site_store::{SiteStoreError, is_digest};
use crate::state::AppState;

fn store_error(e: SiteStoreError) -> ApiError {
    match e {
        SiteStoreError::NotADigest(_) => ApiError::invalid("sha256", e),
        SiteStoreError::DigestMismatch { .. } => ApiError::invalid("body", e),
        SiteStoreError::Missing(_) => {
            ApiError::new(StatusCode::CONFLICT, "chunk_missing", e.to_string())
        }
        SiteStoreError::BundleMismatch { .. } => ApiError::invalid("chunks", e),
        SiteStoreError::Io(io) => ApiError::internal(io),
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SiteStoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await?
        .map_err(store_error)
}

/// `GET /v1/prestage`: free space, bytes held in chunks, releases prestaged for install.
#[utoipa::path(
    get, path = "/v1/prestage", tag = "prestage", security(("user_token" = [])),
    responses((status = 200, description = "The site's prestage store", body = PrestageStore))
)]
pub async fn show(State(state): State<AppState>) -> Result<Json<PrestageStore>, ApiError> {
    let store = state.prestage_store.clone();
    Ok(Json(
        blocking(move || {
            Ok(PrestageStore {
                free_bytes: store.free_bytes(),
                chunk_bytes: store.chunk_bytes(),
                versions: store.versions(),
            })
        })
        .await?,
    ))
}

/// `POST /v1/prestage/chunks/missing`: which of the chunks named the site lacks.
#[utoipa::path(
    post, path = "/v1/prestage/chunks/missing", tag = "prestage", security(("user_token" = [])),
    request_body = ChunkList,
    responses((status = 200, description = "The chunks not held here, in the order asked", body = ChunkList), (status = 400, description = "Not a digest, or too many", body = ErrorBody))
)]
pub async fn missing(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(list): ApiJson<ChunkList>,
) -> Result<Json<ChunkList>, ApiError> {
    caller.require(Role::Admin)?;
    if list.chunks.len() > MAX_CHUNKS_PER_REQUEST {
        return Err(ApiError::invalid(
            "chunks",
            format!("at most {MAX_CHUNKS_PER_REQUEST} chunks at once"),
        ));
    }
    let store = state.prestage_store.clone();
    let missing = blocking(move || store.missing(&list.chunks)).await?;
    Ok(Json(ChunkList { chunks: missing }))
}

/// `PUT /v1/prestage/chunks/{sha256}`: one chunk, kept once its bytes hash to its name.
#[utoipa::path(
    put, path = "/v1/prestage/chunks/{sha256}", tag = "prestage", security(("user_token" = [])),
    params(("sha256" = String, Path, description = "SHA-256 of the chunk's bytes, lowercase hex")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk, at most 16 MiB"),
    responses((status = 204, description = "Kept (or held already)"), (status = 400, description = "The bytes do not hash to the name", body = ErrorBody), (status = 413, description = "Larger than 16 MiB", body = ErrorBody))
)]
pub async fn put_chunk(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(sha256): ApiPath<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    if !is_digest(&sha256) {
        return Err(store_error(SiteStoreError::NotADigest(sha256)));
    }
    let store = state.prestage_store.clone();
    blocking(move || store.put(&sha256, &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/prestage/releases`: assembles a release's bundle from the chunks held here,
/// checks its digest, then verifies and keeps it: in the repository (`sw-deploy`: available
/// to deploy) or in the prestage store by software version (`install`).
#[utoipa::path(
    post, path = "/v1/prestage/releases", tag = "prestage", security(("user_token" = [])),
    request_body = PrestageImport,
    responses((status = 200, description = "Kept", body = PrestageImported), (status = 400, description = "A bad request, or a bundle that fails verification", body = ErrorBody), (status = 409, description = "A chunk is not held here: send it first", body = ErrorBody))
)]
pub async fn import_release(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<PrestageImport>,
) -> Result<Json<PrestageImported>, ApiError> {
    caller.require(Role::Admin)?;
    let id: PatchId = request
        .release
        .parse()
        .map_err(|e: convoy_core::ValidationError| ApiError::invalid("release", e.reason))?;
    let sw_version: Release = request
        .sw_version
        .parse()
        .map_err(|e: convoy_core::ValidationError| ApiError::invalid("sw_version", e.reason))?;
    if request.chunks.len() > MAX_CHUNKS_PER_REQUEST {
        return Err(ApiError::invalid(
            "chunks",
            format!("at most {MAX_CHUNKS_PER_REQUEST} chunks at once"),
        ));
    }
    if !is_digest(&request.sha256) {
        return Err(store_error(SiteStoreError::NotADigest(request.sha256)));
    }
    if request.size > state.max_patch_bytes {
        return Err(ApiError::invalid(
            "size",
            format!(
                "the release is larger than this controller accepts ({} bytes, max_patch_bytes)",
                state.max_patch_bytes
            ),
        ));
    }
    let answer = |imported| {
        Json(PrestageImported {
            release: id.to_string(),
            target: request.target,
            imported,
        })
    };
    let final_path = state
        .prestage_store
        .install_dir(&sw_version.to_string())
        .join(id.file_name());
    let held = match request.target {
        PrestageTarget::SwDeploy => Site::load(&state)
            .await?
            .records
            .get(&id)
            .is_some_and(|r| r.sha256 == request.sha256),
        PrestageTarget::Install => final_path.is_file(),
    };
    if held {
        return Ok(answer(false));
    }

    let incoming = Incoming::new(&state).await?;
    let (store, path) = (state.prestage_store.clone(), incoming.path.clone());
    let (chunks, sha256, size) = (request.chunks.clone(), request.sha256.clone(), request.size);
    blocking(move || store.assemble(&chunks, &sha256, size, &path)).await?;

    match request.target {
        PrestageTarget::SwDeploy => {
            import(&state, &id, incoming, request.size, request.sha256.clone()).await?;
        }
        PrestageTarget::Install => {
            let (trusted, limits) = (state.trusted_keys.clone(), state.bundle_limits.clone());
            let path = incoming.path.clone();
            let verified = tokio::task::spawn_blocking(move || {
                convoy_bundle::verify(&path, &trusted, &limits)
            })
            .await?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "patch_rejected",
                    format!("Patch validation failed for {id}:\n{e}"),
                )
            })?;
            let metadata = verified.metadata();
            if metadata.id != id || metadata.sw_version != sw_version {
                return Err(ApiError::invalid(
                    "release",
                    format!(
                        "the bundle holds {} for {}, not {id} for {sw_version}",
                        metadata.id, metadata.sw_version
                    ),
                ));
            }
            let dir = final_path
                .parent()
                .expect("a file in a directory")
                .to_path_buf();
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(ApiError::internal)?;
            tokio::fs::rename(&incoming.path, &final_path)
                .await
                .map_err(ApiError::internal)?;
            sync_dir(&dir);
        }
    }
    tracing::info!(
        release = %id,
        target = ?request.target,
        by = caller.name,
        "prestaged release kept"
    );
    Ok(answer(true))
}

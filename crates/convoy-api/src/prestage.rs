//! Prestage: how a System Controller ships a release's bundles to a subcloud ahead of its
//! deploy. Bundles travel as content-addressed chunks (SHA-256 of each chunk's bytes): the
//! System Controller asks which chunks the subcloud lacks, sends only those, then asks the
//! subcloud to assemble each bundle from its chunks, verify it and keep it.

use serde::{Deserialize, Serialize};

/// The largest chunk a subcloud accepts.
pub const MAX_CHUNK_BYTES: u64 = 16 << 20;
/// The most chunks one request may name.
pub const MAX_CHUNKS_PER_REQUEST: usize = 65_536;
/// The body limit of the requests that list chunks: room for the most chunks one may name
/// (a bundle of 256 GiB at the average chunk), above the API's default limit.
pub const MAX_CHUNK_LIST_BYTES: usize = 8 << 20;

/// `GET /v1/prestage`: the subcloud's prestage store.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrestageStore {
    /// Free bytes on the file system that holds the store.
    pub free_bytes: u64,
    /// Bytes held in chunks.
    pub chunk_bytes: u64,
    /// Software versions prestaged for install, each with its releases.
    pub versions: Vec<PrestagedVersion>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrestagedVersion {
    pub sw_version: String,
    pub releases: Vec<String>,
}

/// `POST /v1/prestage/chunks/missing`: the chunks asked about; answered with those the
/// subcloud does not hold.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkList {
    /// SHA-256 digests, lowercase hex.
    pub chunks: Vec<String>,
}

/// One chunk of a bundle, in order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRef {
    pub sha256: String,
    pub size: u64,
}

/// Where a prestaged release goes on the subcloud.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrestageTarget {
    /// Into the subcloud's repository, available to deploy.
    SwDeploy,
    /// Into the subcloud's prestage store, by software version, for a later install.
    Install,
}

/// `POST /v1/prestage/releases`: assemble one bundle from chunks the subcloud holds, verify
/// it (its digest, then its signature and contents) and keep it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrestageImport {
    pub release: String,
    pub sw_version: String,
    pub target: PrestageTarget,
    /// SHA-256 of the whole bundle.
    pub sha256: String,
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
}

/// What an import did.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrestageImported {
    pub release: String,
    pub target: PrestageTarget,
    /// False when the subcloud held it already.
    pub imported: bool,
}

//! Releases and the site's software deploy (StarlingX USM's `software` verbs), read from the
//! one repository the patch verbs share.

use serde::{Deserialize, Serialize};

/// A row of `convoy software list`: USM's columns.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRow {
    pub release: String,
    /// `True` if deploying it needs a reboot, as `software list` shows it.
    pub rr: String,
    /// `available`, `deploying`, `deployed`, `removing` or `committed`.
    pub state: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseList {
    pub releases: Vec<ReleaseRow>,
}

/// `convoy software show`: USM's release record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseDetail {
    pub release_id: String,
    pub state: String,
    pub sw_version: String,
    /// `DEV`, `REL` or `OBS`.
    pub status: String,
    pub unremovable: bool,
    pub summary: String,
    pub description: String,
    pub install_instructions: String,
    pub warnings: String,
    pub reboot_required: bool,
    pub requires: Vec<String>,
    /// The patch-view states of the same repository entry.
    pub repo_state: String,
    pub patch_state: String,
}

/// `convoy software deploy show`: the deploy record, if there is one.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployView {
    pub from_release: String,
    pub to_release: String,
    pub reboot_required: bool,
    /// USM's deploy state: `start-done`, `host`, `host-done`, `activate-done`, `completed`...
    pub state: String,
    pub started_at: String,
    pub updated_at: String,
}

/// `{"deploy": [...]}`: USM answers a list of at most one record.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployList {
    pub deploy: Vec<DeployView>,
}

/// A row of `convoy software deploy host-list`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployHostRow {
    pub hostname: String,
    pub software_release: String,
    pub target_release: String,
    pub reboot_required: bool,
    /// `pending`, `deploying`, `deployed` or `failed`.
    pub host_state: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployHostList {
    pub hosts: Vec<DeployHostRow>,
}

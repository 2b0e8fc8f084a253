//! The patch repository (StarlingX sw-patch's verbs) and patch installs on hosts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A row of `convoy patch query`: sw-patch's columns in snake_case.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchRow {
    pub patch_id: String,
    /// `Y` if installing it needs a reboot, else `N`.
    pub rr: String,
    pub release: String,
    pub repo_state: String,
    pub patch_state: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchList {
    pub patches: Vec<PatchRow>,
}

/// `convoy patch show`: a patch's metadata and states.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatchDetail {
    pub patch_id: String,
    pub release: String,
    pub status: String,
    pub repo_state: String,
    pub patch_state: String,
    pub summary: String,
    pub description: String,
    pub install_instructions: String,
    pub warnings: String,
    pub unremovable: bool,
    pub reboot_required: bool,
    pub apply_active_release_only: bool,
    pub requires: Vec<String>,
    /// Files per personality.
    pub contents: BTreeMap<String, Vec<String>>,
    pub size: u64,
    pub sha256: String,
}

/// What an operation did: sw-patch's info and warning lines. Refusals are HTTP errors.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatchOutcome {
    pub info: Vec<String>,
    pub warnings: Vec<String>,
}

/// Body of apply, remove, delete, commit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchOperation {
    #[serde(default)]
    pub ids: Vec<String>,
    /// apply: every available patch.
    #[serde(default)]
    pub all: bool,
    /// remove: remove even an unremovable patch.
    #[serde(default)]
    pub remove_unremovable: bool,
    /// remove: ignore application dependencies.
    #[serde(default)]
    pub skip_app_check: bool,
    /// commit: say what would be freed, change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PatchIdList {
    pub patches: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IsApplied {
    pub applied: bool,
}

/// `report-app-dependencies`: the patches an application needs; empty forgets the application.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppDependencyReport {
    pub app: String,
    #[serde(default)]
    pub ids: Vec<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppDependencyList {
    pub apps: BTreeMap<String, Vec<String>>,
}

/// A row of `convoy patch query-hosts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostPatchRow {
    pub hostname: String,
    /// `Yes`, `No`, `Pending` or `Failed`.
    pub patch_current: String,
    /// `Yes` or `No`.
    pub reboot_required: String,
    pub release: String,
    /// `idle`, `installing`, `install-failed` or `install-rejected`.
    pub state: String,
    /// Why the last install failed or was refused.
    pub last_error: Option<String>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPatchList {
    pub hosts: Vec<HostPatchRow>,
}

/// `POST /v1/patch-hosts/{hostname}/install` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostInstallRequest {
    /// Install reboot-required patches on an unlocked host.
    #[serde(default)]
    pub force: bool,
}

/// Payload of the `install-patches` agent command: bring the host to the repository's state.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstallPatches {
    /// Patches to remove, dependents first.
    pub remove: Vec<PatchToChange>,
    /// Patches to install, requirements first.
    pub install: Vec<PatchToChange>,
    pub force: bool,
    /// Whether the host is locked; reboot-required changes need it unless forced.
    pub host_locked: bool,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchToChange {
    pub id: String,
    pub reboot_required: bool,
    /// For installs: the bundle's SHA-256 and size, checked after the download.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
}

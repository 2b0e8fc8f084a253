//! Patches: signed bundles of files applied to a site and installed on its hosts, following
//! StarlingX sw-patch (spec/patching.md §1.4, §2).
//!
//! The controller keeps one fact per patch, its [`RepoState`]; everything an operator reads
//! about progress ([`PatchState`], a host's "Patch Current") is derived from that fact and the
//! agents' reports, never stored, so it cannot go stale across a restart.
//!
//! - [`metadata`]: what a patch says about itself (the bundle's `metadata.json`).
//! - [`state`]: the state axes and their derivation from agent reports.
//! - [`dependencies`]: the graph over `requires`: orders, closures, what-requires, cycles.
//! - [`operations`]: upload, apply, remove, delete and commit as pure decisions.
//! - [`outcome`]: what an operation answers, with sw-patch's exact messages.

pub mod dependencies;
pub mod metadata;
pub mod operations;
pub mod outcome;
pub mod report;
pub mod state;

#[cfg(test)]
mod properties;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use metadata::{PatchId, PatchMetadata, PatchStatus, Release};
pub use operations::{AppDependencies, ApplyRequest, RemoveRequest, Selection};
pub use outcome::{Change, Notice, Outcome, Refusal};
pub use report::HostSoftware;
pub use state::{
    AgentState, HostPatchStatus, HostReport, HostWork, Interim, PatchCurrent, PatchState, RepoState,
};

/// One patch the controller holds: its metadata and where it stands in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoEntry {
    pub metadata: PatchMetadata,
    pub state: RepoState,
}

/// Every patch the controller holds, by id. Each entry's key must equal its `metadata.id`;
/// the functions of this module read requirements through the key.
pub type Repository = BTreeMap<PatchId, RepoEntry>;

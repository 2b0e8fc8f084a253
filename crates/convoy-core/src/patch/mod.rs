//! Patches: signed bundles of files applied to a site and installed on its hosts, following
//! StarlingX sw-patch (spec/patching.md §1.4, §2).
//!
//! - [`metadata`]: what a patch says about itself (the bundle's `metadata.json`).

pub mod metadata;

pub use metadata::{PatchId, PatchMetadata, PatchStatus, Release};

//! The start-up sweep of the patch directory: what a crash left behind is removed before the
//! first request is served. Uploads are received in `incoming/` and renamed into place before
//! their row is written; deletions remove the row before the file. So a crash can leave a
//! partial upload or a bundle no row names, never a row whose bundle was deleted.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use convoy_store::Store;

use super::repository::sync_dir;

/// What one sweep removed and found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Partial uploads removed from `incoming/`.
    pub partial_uploads: usize,
    /// Bundle files removed because no patch names them.
    pub orphaned_bundles: usize,
    /// Patches whose bundle is missing (uploading the patch again restores it).
    pub missing_bundles: Vec<String>,
}

/// Sweeps `patch_dir` against the patches the store knows.
pub async fn sweep(store: &dyn Store, patch_dir: &Path) -> anyhow::Result<Swept> {
    let mut swept = Swept::default();
    let incoming = patch_dir.join("incoming");
    if incoming.is_dir() {
        for entry in std::fs::read_dir(&incoming).context("cannot read incoming/")? {
            let path = entry?.path();
            if path.is_file() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
                swept.partial_uploads += 1;
            }
        }
        if swept.partial_uploads > 0 {
            sync_dir(&incoming);
        }
    }

    let patches = store.patches().await.context("cannot read the patches")?;
    let named: BTreeSet<&str> = patches.iter().map(|p| p.file_name.as_str()).collect();
    for entry in std::fs::read_dir(patch_dir).context("cannot read the patch directory")? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if entry.path().is_file() && name.ends_with(".patch") && !named.contains(name.as_ref()) {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
            swept.orphaned_bundles += 1;
        }
    }
    if swept.orphaned_bundles > 0 {
        sync_dir(patch_dir);
    }
    swept.missing_bundles = patches
        .iter()
        .filter(|p| !patch_dir.join(&p.file_name).is_file())
        .map(|p| p.id.clone())
        .collect();
    Ok(swept)
}

/// Logs what a sweep did, so that an operator sees what a crash had left.
pub fn report(swept: &Swept) {
    if swept.partial_uploads > 0 || swept.orphaned_bundles > 0 {
        tracing::info!(
            partial_uploads = swept.partial_uploads,
            orphaned_bundles = swept.orphaned_bundles,
            "removed what an interrupted upload or deletion left in the patch directory"
        );
    }
    for id in &swept.missing_bundles {
        tracing::warn!(
            patch = id,
            "the bundle of this patch is missing; upload the patch again to restore it"
        );
    }
}

//! Loading the repository from the store into the pure model, and writing an operation's
//! outcome back. A change loads with [`Site::load_for_change`], which holds the repository's
//! lock until the `Site` is dropped, so that what it decided from is still true when it
//! writes (two changes interleaving once left a patch row whose bundle the other deleted).

use std::collections::{BTreeMap, BTreeSet};

use convoy_api::patches::{InstallPatches, PatchToChange};
use convoy_core::host::Administrative;
use convoy_core::patch::{
    HostReport, Interim, Outcome, PatchId, PatchMetadata, PatchState, RepoEntry, Repository,
};
use convoy_store::{DeployRecord, HostRecord, PatchChanges, PatchRecord};

use crate::api::ApiError;
use crate::clock;
use crate::state::AppState;

/// Everything the patch rules look at, read from the store at once.
pub struct Site {
    pub repo: Repository,
    pub records: BTreeMap<PatchId, PatchRecord>,
    pub interim: Interim,
    pub reports: Vec<HostReport>,
    pub hosts: Vec<HostRecord>,
    /// The site's software deploy, if one exists.
    pub deploy: Option<DeployRecord>,
    /// Held while this site is read to be changed (see the module's doc).
    _change: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Site {
    /// The repository as it is now, to read only.
    pub async fn load(state: &AppState) -> Result<Site, ApiError> {
        Self::read(state, None).await
    }

    /// The repository, to decide a change from and persist it: no other change runs until
    /// the returned site is dropped.
    pub async fn load_for_change(state: &AppState) -> Result<Site, ApiError> {
        let change = state.repository_changes.clone().lock_owned().await;
        Self::read(state, Some(change)).await
    }

    async fn read(
        state: &AppState,
        change: Option<tokio::sync::OwnedMutexGuard<()>>,
    ) -> Result<Site, ApiError> {
        let mut repo = Repository::new();
        let mut records = BTreeMap::new();
        for record in state.store.patches().await? {
            let metadata: PatchMetadata =
                serde_json::from_str(&record.metadata).map_err(ApiError::internal)?;
            let id = metadata.id.clone();
            repo.insert(
                id.clone(),
                RepoEntry {
                    metadata,
                    state: record.repo_state,
                },
            );
            records.insert(id, record);
        }
        let mut interim = Interim::new();
        for (patch, host) in state.store.interim().await? {
            if let Ok(id) = patch.parse::<PatchId>() {
                interim.entry(id).or_default().insert(host);
            }
        }
        let hosts = state.store.hosts().await?;
        let reports = hosts.iter().filter_map(report).collect();
        let deploy = state.store.deploy().await?;
        Ok(Site {
            repo,
            records,
            interim,
            reports,
            hosts,
            deploy,
            _change: change,
        })
    }

    pub fn patch_states(&self) -> BTreeMap<PatchId, PatchState> {
        convoy_core::patch::state::patch_states(&self.repo, &self.reports, &self.interim)
    }

    pub fn report(&self, hostname: &str) -> Option<&HostReport> {
        self.reports.iter().find(|r| r.hostname == hostname)
    }

    /// The command that brings `host` to the repository's state: removals and installs, with
    /// each bundle's digest and size. None if its agent reports no release.
    pub fn install_patches(&self, host: &HostRecord, force: bool) -> Option<InstallPatches> {
        let report = self.report(&host.hostname)?;
        let work = convoy_core::patch::state::host_work(&self.repo, report);
        let change = |id: &PatchId, with_file: bool| {
            let rr = self.repo.get(id).is_none_or(|e| e.metadata.reboot_required);
            let record = self.records.get(id).filter(|_| with_file);
            PatchToChange {
                id: id.to_string(),
                reboot_required: rr,
                sha256: record.map(|r| r.sha256.clone()),
                size: record.map(|r| r.size),
            }
        };
        Some(InstallPatches {
            remove: work.remove.iter().map(|id| change(id, false)).collect(),
            install: work.install.iter().map(|id| change(id, true)).collect(),
            force,
            host_locked: host.administrative == Administrative::Locked,
        })
    }

    /// Writes what `outcome` changed: patch rows (with `new_files` for uploads), deletions,
    /// and every host pending for the patches that moved.
    pub async fn persist(
        &self,
        state: &AppState,
        outcome: &Outcome,
        new_files: &BTreeMap<PatchId, PatchRecord>,
    ) -> Result<Repository, ApiError> {
        self.persist_with_deploy(state, outcome, new_files, None)
            .await
    }

    /// [`Site::persist`], starting `deploy` in the same transaction.
    pub async fn persist_with_deploy(
        &self,
        state: &AppState,
        outcome: &Outcome,
        new_files: &BTreeMap<PatchId, PatchRecord>,
        deploy: Option<DeployRecord>,
    ) -> Result<Repository, ApiError> {
        let mut after = self.repo.clone();
        outcome.apply_to(&mut after);
        let now = clock::now();
        let mut changes = PatchChanges {
            start_deploy: deploy,
            ..PatchChanges::default()
        };
        let touched: BTreeSet<&PatchId> = outcome.changes.iter().map(|c| c.id()).collect();
        let mut deleted_files = Vec::new();
        for id in touched {
            match after.get(id) {
                Some(entry) => {
                    let base = new_files
                        .get(id)
                        .or_else(|| self.records.get(id))
                        .ok_or_else(|| ApiError::internal(format!("no bundle for patch {id}")))?;
                    changes.upserts.push(PatchRecord {
                        metadata: serde_json::to_string(&entry.metadata)
                            .map_err(ApiError::internal)?,
                        repo_state: entry.state,
                        updated_at: now,
                        ..base.clone()
                    });
                }
                None => {
                    changes.deletes.push(id.to_string());
                    if let Some(record) = self.records.get(id) {
                        deleted_files.push(state.patch_dir.join(&record.file_name));
                    }
                }
            }
        }
        let hostnames: Vec<String> = self.hosts.iter().map(|h| h.hostname.clone()).collect();
        for id in outcome.moved() {
            changes
                .pending_hosts
                .push((id.to_string(), hostnames.clone()));
        }
        state.store.save_patches(&changes).await?;
        // The rows are gone first: a crash before the files go leaves files without rows,
        // which the start-up sweep removes, never rows without files.
        for file in &deleted_files {
            let _ = std::fs::remove_file(file);
        }
        if !deleted_files.is_empty() {
            sync_dir(&state.patch_dir);
        }
        Ok(after)
    }
}

/// What the patch rules need to know of a host; a host whose agent reports no release takes
/// no patches.
fn report(host: &HostRecord) -> Option<HostReport> {
    let software = &host.facts.software;
    Some(HostReport {
        hostname: host.hostname.clone(),
        personality: host.personality,
        release: software.release.clone()?,
        state: software.state,
        installed: software.installed.clone(),
        changed_since_boot: software.changed_since_boot.clone(),
    })
}

/// Makes a rename or removal in `dir` durable (best effort: a failure leaves it to the
/// file system's own commit, and the start-up sweep tidies what a crash left).
pub fn sync_dir(dir: &std::path::Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the patch directory");
    }
}

//! Installing and removing one patch under the host's root, and recovering a change that a
//! crash interrupted.
//!
//! Install, for a bundle verified with the agent's trusted keys:
//! 1. check it may go here (release, requirements installed, no file of an unrelated patch);
//! 2. unpack its payload for this personality to the work directory (hashing every byte
//!    again) and keep its `pre-remove` script;
//! 3. run `pre-install`;
//! 4. record what each install path holds now, copying regular files to the backup
//!    directory (fsynced);
//! 5. write the journal (see `journal`), then create missing directories and put each file in
//!    place atomically, then run `post-install`;
//! 6. record the patch as installed and clear the journal in one write.
//!
//! A failure before step 5 has changed nothing under the root; a failure in step 5 (a file
//! that cannot be written, a failing `post-install`) is rolled back at once. Either way the
//! patch is not installed. Removal runs `pre-remove`, journals, and undoes the install.
//!
//! Every change of the record is made on a copy that replaces the one in memory only once it
//! is on disk, so what the agent believes is always what a restart would read.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use convoy_bundle::{Limits, Script, TrustedKeys, VerifiedBundle};
use convoy_core::host::Personality;
use convoy_core::patch::{AgentState, PatchId, Release};
use jiff::Timestamp;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use tracing::warn;

use super::files::{self, FileChange, FileChanges, Prior};
use super::journal::{self, Journal, Operation};
use super::layout::Layout;
use super::plan;
use super::reboot;
use super::rooted;
use super::scripts::{self, Source};
use super::state::{InstalledPatch, PatchState};

/// Why no install can succeed: said before anything is downloaded.
pub const NO_TRUSTED_KEYS: &str = "this agent trusts no patch signing key, so it refuses every \
     patch; start it with --trusted-key PUB (the public key the site's patches are signed with)";

/// Installs patches into one root for one host.
#[derive(Debug)]
pub struct Installer {
    pub state_dir: PathBuf,
    pub layout: Layout,
    pub root: PathBuf,
    pub personality: Personality,
    pub release: Release,
    pub trusted: TrustedKeys,
    pub limits: Limits,
    pub script_timeout: Duration,
    /// The hook runner that runs the scripts of a command from the controller (see
    /// [`scripts`]); None runs every script directly.
    pub runner: Option<crate::hooks::Hooks>,
}

/// The patch record, held under the lock: only its holder changes patches.
#[derive(Debug)]
pub struct Held {
    pub state: PatchState,
    /// What recovery did when the lock was taken, if anything.
    pub recovered: Option<String>,
    /// The controller's command this change runs for: its scripts run as runner jobs.
    pub command: Option<uuid::Uuid>,
    _lock: Flock<File>,
}

impl Installer {
    pub fn new(
        state_dir: &Path,
        root: &Path,
        personality: Personality,
        release: Release,
        trusted: TrustedKeys,
    ) -> Installer {
        Installer {
            state_dir: state_dir.to_path_buf(),
            layout: Layout::new(state_dir),
            root: root.to_path_buf(),
            personality,
            release,
            trusted,
            limits: Limits::default(),
            script_timeout: scripts::DEFAULT_TIMEOUT,
            runner: None,
        }
    }

    /// Takes the lock (waiting for it, or failing at once if `wait` is false), reads the
    /// record, and recovers a change that an earlier process left unfinished.
    pub fn lock(&self, wait: bool) -> anyhow::Result<Held> {
        self.layout.create()?;
        let path = self.layout.lock_file();
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let how = if wait {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockExclusiveNonblock
        };
        let lock = Flock::lock(file, how).map_err(|(_, errno)| {
            if errno == Errno::EWOULDBLOCK {
                anyhow!(
                    "another patch install is in progress on this host ({} is locked); \
                     try again when it has ended",
                    path.display()
                )
            } else {
                anyhow!("cannot lock {}: {errno}", path.display())
            }
        })?;
        let mut held = Held {
            state: PatchState::load(&self.layout)?,
            recovered: None,
            command: None,
            _lock: lock,
        };
        held.recovered = self.recover(&mut held)?;
        if let Some(note) = &held.recovered {
            warn!("{note}");
        }
        self.clean_up(&held.state);
        Ok(held)
    }

    /// Verifies a bundle with the trusted keys, every member hashed again.
    pub fn verify(&self, path: &Path) -> anyhow::Result<VerifiedBundle> {
        if self.trusted.is_empty() {
            bail!("{NO_TRUSTED_KEYS}");
        }
        convoy_bundle::verify(path, &self.trusted, &self.limits).map_err(|e| anyhow!("{e}"))
    }

    /// Whether the patch is for this host at all: its release and personality.
    pub fn fits_host(&self, bundle: &VerifiedBundle) -> Result<(), String> {
        let meta = bundle.metadata();
        if meta.sw_version != self.release {
            return Err(format!(
                "{} is for release {}, and this host runs {}",
                meta.id, meta.sw_version, self.release
            ));
        }
        if !bundle.is_for(self.personality) {
            let takers: Vec<&str> = meta.contents.keys().map(|p| p.as_str()).collect();
            return Err(format!(
                "{} is not for {} hosts (it is for {})",
                meta.id,
                self.personality,
                takers.join(", ")
            ));
        }
        Ok(())
    }

    /// Whether the verified bundle may be installed on this host now; its id if so.
    pub fn check(&self, state: &PatchState, bundle: &VerifiedBundle) -> Result<PatchId, String> {
        let meta = bundle.metadata();
        let id = meta.id.clone();
        if state.installed.contains_key(&id) {
            return Err(format!("{id} is already installed"));
        }
        self.fits_host(bundle)?;
        if let Some(missing) = meta
            .requires
            .iter()
            .find(|r| !state.installed.contains_key(*r))
        {
            return Err(format!(
                "{id} requires {missing}, which is not installed on this host"
            ));
        }
        let files = bundle.install_files(self.personality);
        plan::check_overlap(
            &id,
            &meta.requires,
            files.iter().map(|f| f.install_path.as_str()),
            &state.installed,
        )?;
        Ok(id)
    }

    /// Installs the verified bundle; on error nothing is installed (see the module docs).
    pub fn install(&self, held: &mut Held, bundle: &VerifiedBundle) -> anyhow::Result<PatchId> {
        let id = self
            .check(&held.state, bundle)
            .map_err(anyhow::Error::msg)?;
        let patch_dir = self.layout.patch_dir(&id);
        let prepared = self.prepare(&id, bundle, held.command);
        let (work, staged, changes) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                remove_tree(&patch_dir);
                return Err(e);
            }
        };

        let journal = Journal {
            operation: Operation::Install,
            patch: id.clone(),
            changes: changes.clone(),
        };
        if let Err(e) = self.update(held, |s| s.unfinished = Some(journal)) {
            remove_tree(&patch_dir);
            return Err(e);
        }
        let applied = (|| -> anyhow::Result<()> {
            files::create_dirs(&self.root, &changes.created_dirs)?;
            for file in bundle.install_files(self.personality) {
                let mode = if file.executable { 0o755 } else { 0o644 };
                files::place(
                    &staged.join(&file.install_path),
                    &rooted::file_in_root(&self.root, &file.install_path)?,
                    mode,
                    None,
                )?;
            }
            if has(bundle, Script::PostInstall) {
                scripts::run(
                    Script::PostInstall,
                    Source::Bundle(bundle),
                    &self.script_context(&id, held.command),
                )?;
            }
            Ok(())
        })();
        drop(work);
        if let Err(e) = applied {
            return Err(self.roll_back(held, e));
        }

        let meta = bundle.metadata();
        let record = InstalledPatch {
            sw_version: meta.sw_version.clone(),
            reboot_required: meta.reboot_required,
            requires: meta.requires.clone(),
            changes,
            pre_remove: has(bundle, Script::PreRemove),
            unremovable: meta.unremovable,
            installed_at: Timestamp::now(),
        };
        let boot = reboot::boot_id(&self.state_dir);
        self.update(held, |s| {
            s.installed.insert(id.clone(), record);
            s.record_change(&id, &boot);
            s.unfinished = None;
        })?;
        Ok(id)
    }

    /// Steps 2-4: staged payload, kept pre-remove, pre-install run, backups made.
    fn prepare(
        &self,
        id: &PatchId,
        bundle: &VerifiedBundle,
        command: Option<uuid::Uuid>,
    ) -> anyhow::Result<(tempfile::TempDir, PathBuf, FileChanges)> {
        let patch_dir = self.layout.patch_dir(id);
        remove_tree(&patch_dir);
        let backup_dir = self.layout.backup_dir(id);
        std::fs::create_dir_all(&backup_dir)
            .with_context(|| format!("cannot create {}", backup_dir.display()))?;
        let work = tempfile::Builder::new()
            .prefix(&format!("{id}-"))
            .tempdir_in(self.layout.work_dir())
            .context("cannot make a working directory")?;
        let staged = work.path().join("payload");
        std::fs::create_dir(&staged)
            .with_context(|| format!("cannot create {}", staged.display()))?;
        let install_files = bundle
            .unpack_payload(self.personality, &staged)
            .with_context(|| format!("cannot unpack {id}"))?;
        if has(bundle, Script::PreRemove) {
            bundle
                .unpack_member(
                    &Script::PreRemove.member(),
                    &self.layout.pre_remove_script(id),
                )
                .with_context(|| format!("cannot keep the pre-remove script of {id}"))?;
        }
        if has(bundle, Script::PreInstall) {
            scripts::run(
                Script::PreInstall,
                Source::Bundle(bundle),
                &self.script_context(id, command),
            )?;
        }

        // After pre-install: the script may have prepared the root.
        let mut changes = FileChanges::default();
        for file in &install_files {
            let target = rooted::file_in_root(&self.root, &file.install_path)?;
            let prior = files::prior(&target)?;
            if let Prior::File { .. } = prior {
                files::copy_durably(&target, &backup_dir.join(&file.install_path))?;
            }
            for dir in files::missing_dirs(&self.root, &file.install_path)? {
                if !changes.created_dirs.contains(&dir) {
                    changes.created_dirs.push(dir);
                }
            }
            changes.files.push(FileChange {
                path: file.install_path.clone(),
                prior,
            });
        }
        sync_tree(&patch_dir)?;
        Ok((work, staged, changes))
    }

    /// Undoes the journalled install after `cause`; returns the error to report.
    fn roll_back(&self, held: &mut Held, cause: anyhow::Error) -> anyhow::Error {
        let Some(journal) = held.state.unfinished.clone() else {
            return cause;
        };
        let backup_dir = self.layout.backup_dir(&journal.patch);
        let undone = journal::undo(&self.root, &backup_dir, &journal.changes)
            .and_then(|()| self.update(held, |s| s.unfinished = None));
        match undone {
            Ok(()) => {
                remove_tree(&self.layout.patch_dir(&journal.patch));
                cause
            }
            Err(e) => anyhow!(
                "{cause:#}; rolling it back failed too: {e:#}; the agent rolls it back when it \
                 next starts or installs"
            ),
        }
    }

    /// Removes an installed patch (not installed: nothing to do).
    pub fn remove(&self, held: &mut Held, id: &PatchId) -> anyhow::Result<()> {
        let Some(record) = held.state.installed.get(id).cloned() else {
            return Ok(());
        };
        let dependents = held.state.dependents(id);
        if !dependents.is_empty() {
            let names: Vec<String> = dependents.iter().map(ToString::to_string).collect();
            bail!(
                "{id} is required by: {}; remove those first",
                names.join(", ")
            );
        }
        if record.pre_remove {
            scripts::run(
                Script::PreRemove,
                Source::Kept(&self.layout.pre_remove_script(id)),
                &self.script_context(id, held.command),
            )?;
        }
        let journal = Journal {
            operation: Operation::Remove,
            patch: id.clone(),
            changes: record.changes.clone(),
        };
        self.update(held, |s| s.unfinished = Some(journal))?;
        journal::undo(&self.root, &self.layout.backup_dir(id), &record.changes).map_err(|e| {
            anyhow!("{e:#}; the agent finishes removing {id} when it next starts or installs")
        })?;
        let boot = reboot::boot_id(&self.state_dir);
        self.update(held, |s| {
            s.installed.remove(id);
            s.record_change(id, &boot);
            s.unfinished = None;
        })?;
        remove_tree(&self.layout.patch_dir(id));
        Ok(())
    }

    /// Records the agent state and its error.
    pub fn set_state(
        &self,
        held: &mut Held,
        state: AgentState,
        last_error: Option<String>,
    ) -> anyhow::Result<()> {
        self.update(held, |s| {
            s.state = state;
            s.last_error = last_error;
        })
    }

    /// Notes that the host must reboot once the outcome is reported.
    /// Records that command `asked_by` needs a reboot of this boot.
    pub fn request_reboot(&self, held: &mut Held, asked_by: &str) -> anyhow::Result<()> {
        let boot = reboot::boot_id(&self.state_dir);
        self.update(held, |s| {
            s.reboot_requested_in_boot = Some(boot);
            s.reboot_requested_by = Some(asked_by.to_string());
        })
    }

    /// Clears the reboot request; the command that asked for it if it was made in this boot
    /// (so the reboot is due). Cleared before the reboot runs: a reboot command that keeps
    /// failing must not loop.
    pub fn take_reboot_request(&self, held: &mut Held) -> anyhow::Result<Option<String>> {
        let Some(requested) = held.state.reboot_requested_in_boot.clone() else {
            return Ok(None);
        };
        let asked_by = held
            .state
            .reboot_requested_by
            .clone()
            .unwrap_or_else(|| "unknown".into());
        self.update(held, |s| {
            s.reboot_requested_in_boot = None;
            s.reboot_requested_by = None;
        })?;
        Ok((requested == reboot::boot_id(&self.state_dir)).then_some(asked_by))
    }

    /// Changes the record on disk, then in memory.
    fn update(&self, held: &mut Held, change: impl FnOnce(&mut PatchState)) -> anyhow::Result<()> {
        let mut next = held.state.clone();
        change(&mut next);
        next.save(&self.layout)?;
        held.state = next;
        Ok(())
    }

    /// Finishes what a dead process left: see the journal module for the rule.
    fn recover(&self, held: &mut Held) -> anyhow::Result<Option<String>> {
        if let Some(journal) = held.state.unfinished.clone() {
            let backup_dir = self.layout.backup_dir(&journal.patch);
            journal::undo(&self.root, &backup_dir, &journal.changes).with_context(|| {
                format!(
                    "cannot recover the unfinished change of {} under {}; fix the cause and \
                     restart the agent, which tries again",
                    journal.patch,
                    self.root.display()
                )
            })?;
            let message = journal.recovered_message();
            let boot = reboot::boot_id(&self.state_dir);
            self.update(held, |s| {
                s.installed.remove(&journal.patch);
                if journal.operation == Operation::Remove {
                    s.record_change(&journal.patch, &boot);
                }
                s.unfinished = None;
                s.state = AgentState::InstallFailed;
                s.last_error = Some(message.clone());
            })?;
            remove_tree(&self.layout.patch_dir(&journal.patch));
            return Ok(Some(message));
        }
        if held.state.state == AgentState::Installing {
            // Under the lock nobody is installing: the process that was has died, before it
            // touched the root (downloading, verifying or in a pre-install script).
            let message = "the agent stopped during an install, before it changed any file \
                           under the root; nothing was changed"
                .to_string();
            self.set_state(held, AgentState::InstallFailed, Some(message.clone()))?;
            return Ok(Some(message));
        }
        Ok(None)
    }

    /// Deletes what no record refers to: downloads, work directories, and the directories of
    /// patches that are not installed. Best effort.
    fn clean_up(&self, state: &PatchState) {
        for dir in [self.layout.bundles_dir(), self.layout.work_dir()] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    remove_tree(&entry.path());
                }
            }
        }
        if let Ok(names) = self.layout.patch_dirs() {
            for name in names {
                if let Ok(id) = name.parse::<PatchId>()
                    && !state.installed.contains_key(&id)
                {
                    remove_tree(&self.layout.patch_dir(&id));
                }
            }
        }
    }

    fn script_context(&self, id: &PatchId, command: Option<uuid::Uuid>) -> scripts::Setting {
        scripts::Setting {
            patch: id.clone(),
            root: self.root.clone(),
            personality: self.personality,
            work_dir: self.layout.work_dir(),
            timeout: self.script_timeout,
            job: self
                .runner
                .clone()
                .zip(command)
                .map(|(hooks, command)| scripts::ScriptJob { hooks, command }),
        }
    }
}

fn has(bundle: &VerifiedBundle, script: Script) -> bool {
    bundle.has_script(script)
}

/// Removes a file or directory tree, best effort (a leftover is cleaned at the next lock).
fn remove_tree(path: &Path) {
    let result = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = result {
        warn!("cannot remove {}: {e}", path.display());
    }
}

/// Fsyncs every directory of a tree, so the backups written into it survive a power loss.
fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    files::sync_dir(dir)?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            sync_tree(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patches::testing::{Host, stranger};
    use convoy_bundle::Section;

    fn install(host: &Host, bundle: &Path) -> anyhow::Result<PatchId> {
        let installer = host.installer();
        let mut held = installer.lock(false)?;
        let verified = installer.verify(bundle)?;
        installer.install(&mut held, &verified)
    }

    fn remove(host: &Host, id: &str) -> anyhow::Result<()> {
        let installer = host.installer();
        let mut held = installer.lock(false)?;
        installer.remove(&mut held, &id.parse().unwrap())
    }

    fn state(host: &Host) -> PatchState {
        PatchState::load(&Layout::new(&host.state_dir())).unwrap()
    }

    fn installed(host: &Host) -> Vec<String> {
        state(host)
            .installed
            .keys()
            .map(ToString::to_string)
            .collect()
    }

    fn mode(host: &Host, path: &str) -> u32 {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(host.root().join(path))
            .unwrap()
            .mode()
            & 0o7777
    }

    fn write(host: &Host, path: &str, bytes: &[u8], mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        let path = host.root().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn each_host_installs_the_files_of_its_personality() {
        let expected: [(Personality, &[&str], &[&str]); 4] = [
            (
                Personality::Controller,
                &["etc/motd", "etc/role.conf"],
                &["usr/local/bin/tool"],
            ),
            (
                Personality::Worker,
                &["etc/motd", "usr/local/bin/tool"],
                &["etc/role.conf"],
            ),
            (
                Personality::Storage,
                &["etc/motd", "etc/role.conf"],
                &["usr/local/bin/tool"],
            ),
            (
                Personality::ControllerWorker,
                &["etc/motd", "etc/role.conf", "usr/local/bin/tool"],
                &[],
            ),
        ];
        for (personality, present, absent) in expected {
            let host = Host::new(personality);
            let bundle = host
                .bundle("P1")
                .file(Section::All, "etc/motd", b"welcome\n")
                .file(Section::Controller, "etc/role.conf", b"controller\n")
                .file_with_mode(Section::Worker, "usr/local/bin/tool", b"#!tool", 0o755)
                .file(Section::Storage, "etc/role.conf", b"storage\n")
                .build();
            assert_eq!(install(&host, &bundle).unwrap().as_str(), "P1");
            for path in present {
                assert!(host.root().join(path).is_file(), "{personality}: {path}");
            }
            for path in absent {
                assert!(!host.root().join(path).exists(), "{personality}: {path}");
            }
            assert_eq!(host.read("etc/motd"), "welcome\n");
            if personality == Personality::Storage {
                assert_eq!(host.read("etc/role.conf"), "storage\n");
            }
            if present.contains(&"usr/local/bin/tool") {
                assert_eq!(mode(&host, "usr/local/bin/tool"), 0o755);
            }
            assert_eq!(mode(&host, "etc/motd"), 0o644);
            assert_eq!(installed(&host), ["P1"]);
            let report = state(&host).report(None, &reboot::boot_id(&host.state_dir()));
            assert_eq!(report.changed_since_boot.len(), 1);
            assert_eq!(report.state, AgentState::Idle);
        }
    }

    #[test]
    fn removal_restores_the_root_byte_for_byte() {
        let host = Host::new(Personality::Worker);
        write(&host, "etc/app.conf", b"operator's config\n", 0o600);
        std::os::unix::fs::symlink("app.conf", host.root().join("etc/current")).unwrap();
        std::fs::create_dir_all(host.root().join("usr/bin")).unwrap();
        let before = host.snapshot();

        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/app.conf", b"patched config\n")
            .file(Section::All, "etc/current", b"not a link any more\n")
            .file_with_mode(Section::Worker, "usr/bin/tool", b"new tool", 0o755)
            .file(Section::Worker, "opt/vendor/lib/x.so", b"new lib")
            .build();
        install(&host, &bundle).unwrap();
        assert_eq!(host.read("etc/app.conf"), "patched config\n");
        assert_eq!(mode(&host, "etc/app.conf"), 0o644);
        assert!(host.root().join("etc/current").is_file());
        assert_eq!(host.read("opt/vendor/lib/x.so"), "new lib");
        let layout = Layout::new(&host.state_dir());
        let id: PatchId = "P1".parse().unwrap();
        assert_eq!(
            std::fs::read(layout.backup_dir(&id).join("etc/app.conf")).unwrap(),
            b"operator's config\n"
        );

        remove(&host, "P1").unwrap();
        assert_eq!(host.snapshot(), before);
        assert!(installed(&host).is_empty());
        assert!(!layout.patch_dir(&id).exists(), "the backups went with it");
        assert_eq!(state(&host).changed_since_boot, [id].into());
    }

    /// A root that is a copy of a system has absolute links (`lib -> /usr/lib`): they lead to
    /// the root's own directories, never out of it, on install and on removal.
    #[test]
    fn links_in_the_root_never_lead_an_install_out_of_it() {
        let host = Host::new(Personality::Worker);
        let outside = host.dir.path().join("outside");
        // A target no real machine has, so that a regression fails instead of writing there.
        std::fs::create_dir_all(host.root().join("usr/convoy-test-lib")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("/usr/convoy-test-lib", host.root().join("lib")).unwrap();
        // A link to the machine's own copy of `outside`, by its absolute path.
        std::os::unix::fs::symlink(&outside, host.root().join("escape")).unwrap();
        write(
            &host,
            format!("{}/keep", outside.display()).trim_start_matches('/'),
            b"",
            0o644,
        );
        let before = host.snapshot();

        let bundle = host
            .bundle("P1")
            .file(Section::All, "lib/libx.so", b"patched lib")
            .file(Section::All, "escape/planted", b"must stay inside")
            .build();
        install(&host, &bundle).unwrap();
        assert_eq!(host.read("usr/convoy-test-lib/libx.so"), "patched lib");
        assert!(
            !outside.join("planted").exists(),
            "the install wrote outside the root"
        );
        let inside = format!("{}/planted", outside.display());
        assert_eq!(
            host.read(inside.trim_start_matches('/')),
            "must stay inside"
        );

        remove(&host, "P1").unwrap();
        assert_eq!(host.snapshot(), before);
    }

    #[test]
    fn a_requirement_chain_installs_in_order_and_removes_dependents_first() {
        let host = Host::new(Personality::Worker);
        let before = host.snapshot();
        let p1 = host
            .bundle("P1")
            .file(Section::All, "etc/chain", b"one")
            .build();
        let p2 = host
            .bundle("P2")
            .requires("P1")
            .file(Section::All, "etc/chain", b"two")
            .build();
        let p3 = host
            .bundle("P3")
            .requires("P2")
            .file(Section::All, "etc/three", b"three")
            .build();

        let err = install(&host, &p2).unwrap_err().to_string();
        assert_eq!(err, "P2 requires P1, which is not installed on this host");
        install(&host, &p1).unwrap();
        install(&host, &p2).unwrap();
        install(&host, &p3).unwrap();
        assert_eq!(installed(&host), ["P1", "P2", "P3"]);
        assert_eq!(host.read("etc/chain"), "two");

        let err = remove(&host, "P1").unwrap_err().to_string();
        assert_eq!(err, "P1 is required by: P2; remove those first");
        remove(&host, "P3").unwrap();
        remove(&host, "P2").unwrap();
        assert_eq!(
            host.read("etc/chain"),
            "one",
            "P2 restored what P1 put there"
        );
        remove(&host, "P1").unwrap();
        assert_eq!(host.snapshot(), before);
        // Removing what is not installed is nothing to do.
        remove(&host, "P1").unwrap();
    }

    #[test]
    fn a_file_of_an_unrelated_patch_is_not_replaced() {
        let host = Host::new(Personality::Worker);
        let a = host.bundle("A").file(Section::All, "etc/x", b"a").build();
        let b = host.bundle("B").file(Section::All, "etc/x", b"b").build();
        install(&host, &a).unwrap();
        let err = install(&host, &b).unwrap_err().to_string();
        assert_eq!(
            err,
            "etc/x is installed by patch A, which B does not require; remove A first"
        );
        assert_eq!(host.read("etc/x"), "a");
    }

    #[test]
    fn patches_for_another_release_are_refused() {
        let host = Host::new(Personality::Worker);
        let bundle = host
            .bundle("P1")
            .release("24.09")
            .file(Section::All, "etc/x", b"x")
            .build();
        let err = install(&host, &bundle).unwrap_err().to_string();
        assert_eq!(err, "P1 is for release 24.09, and this host runs 25.09");
        assert!(host.snapshot().is_empty());
    }

    #[test]
    fn a_patch_for_other_personalities_is_refused() {
        let host = Host::new(Personality::Worker);
        let bundle = host
            .bundle("P1")
            .file(Section::Controller, "etc/x", b"x")
            .file(Section::Storage, "etc/y", b"y")
            .build();
        let err = install(&host, &bundle).unwrap_err().to_string();
        assert_eq!(
            err,
            "P1 is not for worker hosts (it is for controller, storage, controller+worker)"
        );
        assert!(host.snapshot().is_empty());
    }

    #[test]
    fn tampered_and_untrusted_bundles_are_refused() {
        let host = Host::new(Personality::Worker);
        let good = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"payload-bytes-to-alter")
            .build();
        let mut bytes = std::fs::read(&good).unwrap();
        let at = bytes
            .windows(5)
            .position(|w| w == b"bytes")
            .expect("the payload is stored as is");
        bytes[at] ^= 1;
        let tampered = host.dir.path().join("tampered.patch");
        std::fs::write(&tampered, &bytes).unwrap();
        let err = install(&host, &tampered).unwrap_err().to_string();
        assert_eq!(
            err,
            "altered member: the SHA-256 of payload/all/etc/x differs from the manifest"
        );

        let untrusted = host
            .bundle("P2")
            .file(Section::All, "etc/y", b"y")
            .build_with(&stranger());
        let err = install(&host, &untrusted).unwrap_err().to_string();
        assert!(err.starts_with("untrusted key:"), "{err}");

        let nobody = host.installer_trusting(TrustedKeys::default());
        let err = nobody.verify(&good).unwrap_err().to_string();
        assert_eq!(err, NO_TRUSTED_KEYS);
        assert!(host.snapshot().is_empty());
        assert!(installed(&host).is_empty());
    }

    #[test]
    fn scripts_run_around_the_install_and_before_the_removal() {
        let host = Host::new(Personality::Worker);
        let log = host.dir.path().join("log");
        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"x")
            .script(
                Script::PreInstall,
                "test -e \"$CONVOY_ROOT/etc/x\" && exit 9\necho \"pre $CONVOY_PATCH_ID\" >> \"$CONVOY_ROOT/../log\"",
            )
            .script(
                Script::PostInstall,
                "test -e \"$CONVOY_ROOT/etc/x\" || exit 9\necho post >> \"$CONVOY_ROOT/../log\"",
            )
            .script(
                Script::PreRemove,
                "test -e \"$CONVOY_ROOT/etc/x\" || exit 9\necho pre-remove >> \"$CONVOY_ROOT/../log\"",
            )
            .build();
        install(&host, &bundle).unwrap();
        // The bundle may be gone by removal time: the agent kept the script.
        std::fs::remove_file(&bundle).unwrap();
        remove(&host, "P1").unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "pre P1\npost\npre-remove\n"
        );
    }

    #[test]
    fn a_failing_pre_install_script_leaves_the_root_unchanged() {
        let host = Host::new(Personality::Worker);
        write(&host, "etc/x", b"before", 0o640);
        let before = host.snapshot();
        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"after")
            .file(Section::All, "opt/new/file", b"new")
            .script(Script::PreInstall, "echo 'not today' >&2\nexit 1")
            .build();
        let err = install(&host, &bundle).unwrap_err().to_string();
        assert_eq!(
            err,
            "the pre-install script of P1 exited with code 1: not today"
        );
        assert_eq!(host.snapshot(), before);
        assert!(installed(&host).is_empty());
        assert!(state(&host).unfinished.is_none());
        let layout = Layout::new(&host.state_dir());
        assert!(!layout.patch_dir(&"P1".parse().unwrap()).exists());
    }

    #[test]
    fn a_failing_post_install_script_rolls_the_files_back() {
        let host = Host::new(Personality::Worker);
        write(&host, "etc/x", b"before", 0o640);
        let before = host.snapshot();
        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"after")
            .file(Section::All, "opt/new/file", b"new")
            .script(Script::PostInstall, "exit 4")
            .build();
        let err = install(&host, &bundle).unwrap_err().to_string();
        assert_eq!(err, "the post-install script of P1 exited with code 4");
        assert_eq!(host.snapshot(), before);
        assert!(installed(&host).is_empty());
        assert!(state(&host).unfinished.is_none());
    }

    /// Makes the record look as if the agent died after the journal was written and before
    /// the install was recorded: the files are in place, a temporary is half written.
    fn crash_before_commit(host: &Host, id: &str, operation: Operation) {
        let layout = Layout::new(&host.state_dir());
        let mut state = state(host);
        let id: PatchId = id.parse().unwrap();
        let record = if operation == Operation::Install {
            state.installed.remove(&id).unwrap()
        } else {
            state.installed[&id].clone()
        };
        state.unfinished = Some(Journal {
            operation,
            patch: id,
            changes: record.changes,
        });
        state.state = AgentState::Installing;
        state.save(&layout).unwrap();
    }

    #[test]
    fn an_install_interrupted_by_a_crash_is_rolled_back_at_the_next_start() {
        let host = Host::new(Personality::Worker);
        write(&host, "etc/x", b"before", 0o640);
        let before = host.snapshot();
        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"after")
            .file(Section::All, "opt/new/file", b"new")
            .build();
        install(&host, &bundle).unwrap();
        crash_before_commit(&host, "P1", Operation::Install);
        // One file was still being written when the agent died.
        let temp = files::temp_path(&host.root().join("opt/new/file"));
        std::fs::write(&temp, b"ne").unwrap();
        assert!(
            state(&host).report(None, "b").installed.is_empty(),
            "a patch whose install is unfinished is never reported installed"
        );

        let installer = host.installer();
        let held = installer.lock(false).unwrap();
        assert_eq!(
            held.recovered.as_deref(),
            Some("the agent stopped while installing P1; the install was rolled back")
        );
        drop(held);
        assert_eq!(host.snapshot(), before);
        let state = state(&host);
        assert!(state.installed.is_empty() && state.unfinished.is_none());
        assert_eq!(state.state, AgentState::InstallFailed);
        // A second start finds nothing to do.
        assert!(installer.lock(false).unwrap().recovered.is_none());
        // And the patch installs cleanly afterwards.
        install(&host, &bundle).unwrap();
        assert_eq!(host.read("etc/x"), "after");
    }

    #[test]
    fn a_removal_interrupted_by_a_crash_is_completed_at_the_next_start() {
        let host = Host::new(Personality::Worker);
        write(&host, "etc/x", b"before", 0o640);
        let before = host.snapshot();
        let bundle = host
            .bundle("P1")
            .file(Section::All, "etc/x", b"after")
            .file(Section::All, "opt/new/file", b"new")
            .build();
        install(&host, &bundle).unwrap();
        crash_before_commit(&host, "P1", Operation::Remove);
        // The first file was already restored.
        std::fs::write(host.root().join("etc/x"), b"before").unwrap();

        let held = host.installer().lock(false).unwrap();
        assert_eq!(
            held.recovered.as_deref(),
            Some("the agent stopped while removing P1; the removal was completed")
        );
        drop(held);
        assert_eq!(host.snapshot(), before);
        assert!(installed(&host).is_empty());
    }

    #[test]
    fn a_crash_before_the_root_was_touched_is_reported_at_the_next_start() {
        let host = Host::new(Personality::Worker);
        let layout = Layout::new(&host.state_dir());
        layout.create().unwrap();
        // A download left behind, as by an agent killed mid-download.
        std::fs::write(layout.bundles_dir().join("P1.patch.part"), b"half").unwrap();
        let state = PatchState {
            state: AgentState::Installing,
            ..PatchState::default()
        };
        state.save(&layout).unwrap();
        let held = host.installer().lock(false).unwrap();
        assert!(
            held.recovered
                .as_deref()
                .is_some_and(|m| m.contains("nothing was changed")),
            "{:?}",
            held.recovered
        );
        assert_eq!(held.state.state, AgentState::InstallFailed);
        assert_eq!(
            std::fs::read_dir(layout.bundles_dir()).unwrap().count(),
            0,
            "leftovers are cleaned"
        );
    }

    #[test]
    fn one_installer_at_a_time() {
        let host = Host::new(Personality::Worker);
        let first = host.installer();
        let _held = first.lock(false).unwrap();
        let err = host.installer().lock(false).unwrap_err().to_string();
        assert!(
            err.starts_with("another patch install is in progress on this host"),
            "{err}"
        );
    }

    #[test]
    fn reboot_requests_are_taken_once_and_only_in_their_boot() {
        let host = Host::new(Personality::Worker);
        let installer = host.installer();
        let mut held = installer.lock(false).unwrap();
        installer.request_reboot(&mut held, "c-1").unwrap();
        assert_eq!(
            installer.take_reboot_request(&mut held).unwrap().as_deref(),
            Some("c-1"),
            "the reboot names the command that asked for it"
        );
        assert_eq!(installer.take_reboot_request(&mut held).unwrap(), None);
        installer.request_reboot(&mut held, "c-2").unwrap();
        std::fs::write(host.state_dir().join("boot-id"), "rebooted").unwrap();
        assert_eq!(installer.take_reboot_request(&mut held).unwrap(), None);
        assert!(held.state.reboot_requested_in_boot.is_none());
        assert!(held.state.reboot_requested_by.is_none());
    }
}

//! The `install-patches` command: bring the host to the patches its controller wants.
//!
//! 1. Under the patch lock (recovering an unfinished change first), decide the work: the
//!    removals and installs not already done. Reboot-required work on an unlocked host, not
//!    forced, is refused with `Node must be locked.`; the agent state becomes
//!    `install-rejected` and nothing else changes.
//! 2. State `installing`. Download every bundle to install and verify it with the agent's
//!    trusted keys, before anything is removed: a bad bundle stops the command with the host
//!    untouched. The signed metadata has the last word on `reboot_required`.
//! 3. Removals in the given order (dependents first), then installs (requirements first),
//!    each patch all or nothing. The first failure stops the command: state `install-failed`,
//!    and the message says what failed and what was changed before it.
//! 4. State `idle`. A reboot-required change leaves the host needing a reboot (its report
//!    says so); the reboot comes from the controller when the host is unlocked, as a `reboot`
//!    command ([`HostPatches::reboot`]), which the agent records and runs once the outcome
//!    has been reported ([`HostPatches::reboot_if_requested`]).
//!
//! The outcome's `output` is the host's [`HostSoftware`] after the command.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use convoy_api::hosts::CommandOutcome;
use convoy_api::patches::InstallPatches;
use convoy_core::patch::{AgentState, HostSoftware, PatchId};
use tracing::{error, info, warn};
use uuid::Uuid;

use super::download::BundleSource;
use super::installer::{Held, Installer, NO_TRUSTED_KEYS};
use super::plan::{self, Plan, Refusal};
use super::reboot::{self, RebootCommand};
use super::state::PatchState;

/// The agent's patch installer: runs `install-patches` commands one at a time.
#[derive(Clone)]
pub struct HostPatches {
    installer: Arc<Installer>,
    /// Where bundles come from; None for an agent without a controller (tests).
    source: Option<BundleSource>,
    reboot: Option<RebootCommand>,
    /// One command at a time in this process (the file lock covers other processes).
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// What the patches of a command came to.
#[derive(Debug, Default)]
struct Done {
    installed: Vec<PatchId>,
    removed: Vec<PatchId>,
    reboot_required: bool,
}

impl Done {
    fn describe(&self) -> String {
        let list = |ids: &[PatchId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.installed.is_empty() {
            parts.push(format!("installed {}", list(&self.installed)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("removed {}", list(&self.removed)));
        }
        parts.join("; ")
    }
}

impl HostPatches {
    pub fn new(
        installer: Installer,
        source: Option<BundleSource>,
        reboot: Option<RebootCommand>,
    ) -> HostPatches {
        HostPatches {
            installer: Arc::new(installer),
            source,
            reboot,
            busy: Arc::default(),
        }
    }

    /// At agent start: recovers an unfinished change, then reboots if a reboot was requested
    /// in this boot and never ran (the agent died between the outcome and the reboot).
    pub async fn start(&self) {
        let installer = self.installer.clone();
        let recovered = tokio::task::spawn_blocking(move || installer.lock(true).map(drop)).await;
        match recovered {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!("{e:#}"),
            Err(e) => error!("patch recovery panicked: {e}"),
        }
        self.reboot_if_requested().await;
    }

    /// Runs the reboot command if a change asked for it in this boot. Called after each
    /// outcome has been reported (or reporting gave up), so the controller is not left
    /// waiting for an outcome the reboot would delay.
    pub async fn reboot_if_requested(&self) {
        let Some(command) = self.reboot.clone() else {
            return;
        };
        // Cheap look first: this runs after every command, and almost never has work.
        let requested = PatchState::load(&self.installer.layout)
            .is_ok_and(|s| s.reboot_requested_in_boot.is_some());
        if !requested {
            return;
        }
        let _busy = self.busy.lock().await;
        let installer = self.installer.clone();
        let rebooted = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut held = installer.lock(true)?;
            let Some(asked_by) = installer.take_reboot_request(&mut held)? else {
                return Ok(());
            };
            drop(held);
            warn!(
                command = asked_by,
                "rebooting the host (asked by command {asked_by})"
            );
            command.run(&installer.state_dir)
        })
        .await;
        match rebooted {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!("the reboot after a reboot-required patch failed: {e:#}"),
            Err(e) => error!("the reboot task panicked: {e}"),
        }
    }

    /// The `reboot` command `command_id`: records the request (once per boot; it runs after
    /// this outcome has been reported), or fails if the agent has no reboot command.
    pub async fn reboot(&self, command_id: Uuid) -> CommandOutcome {
        if self.reboot.is_none() {
            return CommandOutcome {
                succeeded: false,
                message: "the agent has no --reboot-command; reboot the host by hand".into(),
                output: serde_json::Value::Null,
            };
        }
        let _busy = self.busy.lock().await;
        let installer = self.installer.clone();
        let asked_by = command_id.to_string();
        let recorded = blocking(move || -> anyhow::Result<()> {
            let mut held = installer.lock(true)?;
            installer.request_reboot(&mut held, &asked_by)
        })
        .await
        .and_then(|r| r);
        match recorded {
            Ok(()) => {
                info!(command = %command_id, "a reboot is requested; it runs once the outcome is reported");
                CommandOutcome {
                    succeeded: true,
                    message: "rebooting".into(),
                    output: serde_json::Value::Null,
                }
            }
            Err(e) => CommandOutcome {
                succeeded: false,
                message: format!("cannot record the reboot: {e:#}"),
                output: serde_json::Value::Null,
            },
        }
    }

    /// Runs one `install-patches` command (`command_id`, named in the log of every removal
    /// it causes) to its outcome.
    pub async fn install_patches(
        &self,
        request: InstallPatches,
        command_id: Uuid,
    ) -> CommandOutcome {
        let _busy = self.busy.lock().await;
        match self.run(request, command_id).await {
            Ok(outcome) => outcome,
            Err(e) => {
                // The record itself could not be read or written.
                error!("install-patches: {e:#}");
                CommandOutcome {
                    succeeded: false,
                    message: format!("{e:#}"),
                    output: serde_json::Value::Null,
                }
            }
        }
    }

    async fn run(&self, request: InstallPatches, command: Uuid) -> anyhow::Result<CommandOutcome> {
        let this = self.clone();
        let begin_request = request.clone();
        let command_id = command.to_string();
        let begun = blocking(move || this.begin(&begin_request, command)).await??;
        let (mut held, plan) = match begun {
            Begun::Answered(outcome) => return Ok(outcome),
            Begun::Go(held, plan) => (*held, plan),
        };
        let mut bundles = Vec::new();
        for step in &plan.install {
            match self.fetch(step).await {
                Ok(path) => bundles.push(path),
                Err(e) => {
                    for path in &bundles {
                        let _ = std::fs::remove_file(path);
                    }
                    let reason = format!("downloading {} failed: {e:#}", step.id);
                    let this = self.clone();
                    return blocking(move || this.fail(&mut held, reason, &Done::default()))
                        .await?;
                }
            }
        }
        let this = self.clone();
        blocking(move || {
            let result = this.apply(&mut held, &plan, &bundles, &request, &command_id);
            for path in &bundles {
                let _ = std::fs::remove_file(path);
            }
            result
        })
        .await?
    }

    /// Step 1: the lock, recovery, the plan and the lock rule.
    fn begin(&self, request: &InstallPatches, command: Uuid) -> anyhow::Result<Begun> {
        let mut held = self.installer.lock(true)?;
        // Its scripts run as runner jobs of this command: asked again, it never runs them twice.
        held.command = Some(command);
        let installed: BTreeSet<PatchId> = held.state.installed.keys().cloned().collect();
        let plan = match plan::plan(request, &installed) {
            Ok(plan) => plan,
            Err(refusal) => {
                let state = match refusal {
                    Refusal::NodeMustBeLocked => AgentState::InstallRejected,
                    Refusal::BadPayload(_) => AgentState::InstallFailed,
                };
                let message = refusal.message();
                info!("install-patches refused: {message}");
                self.installer
                    .set_state(&mut held, state, Some(message.clone()))?;
                return Ok(Begun::Answered(self.outcome(false, message, &held)));
            }
        };
        // Whatever a command says: a patch signed as unremovable stays on this host.
        if let Some(step) = plan.remove.iter().find(|s| {
            held.state
                .installed
                .get(&s.id)
                .is_some_and(|r| r.unremovable)
        }) {
            let message = format!(
                "patch {} is unremovable (its signed metadata says so); this agent never \
                 removes it",
                step.id
            );
            warn!("install-patches refused: {message}");
            self.installer.set_state(
                &mut held,
                AgentState::InstallRejected,
                Some(message.clone()),
            )?;
            return Ok(Begun::Answered(self.outcome(false, message, &held)));
        }
        if plan.install.is_empty() && plan.remove.is_empty() {
            self.installer
                .set_state(&mut held, AgentState::Idle, None)?;
            let message = "nothing to install or remove".to_string();
            return Ok(Begun::Answered(self.outcome(true, message, &held)));
        }
        if !plan.install.is_empty() && self.installer.trusted.is_empty() {
            let message = NO_TRUSTED_KEYS.to_string();
            self.installer.set_state(
                &mut held,
                AgentState::InstallFailed,
                Some(message.clone()),
            )?;
            return Ok(Begun::Answered(self.outcome(false, message, &held)));
        }
        self.installer
            .set_state(&mut held, AgentState::Installing, None)?;
        Ok(Begun::Go(Box::new(held), plan))
    }

    async fn fetch(&self, step: &plan::Step) -> anyhow::Result<PathBuf> {
        let source = self
            .source
            .as_ref()
            .context("this agent has no controller to download from")?;
        source.fetch(step, &self.installer.layout).await
    }

    /// Steps 2 (verification) to 4.
    fn apply(
        &self,
        held: &mut Held,
        plan: &Plan,
        bundles: &[PathBuf],
        request: &InstallPatches,
        command_id: &str,
    ) -> anyhow::Result<CommandOutcome> {
        let mut verified = Vec::new();
        for (step, path) in plan.install.iter().zip(bundles) {
            let bundle = match self.installer.verify(path) {
                Ok(bundle) => bundle,
                Err(e) => {
                    let reason = format!("{} is refused: {e:#}", step.id);
                    return self.fail(held, reason, &Done::default());
                }
            };
            if bundle.metadata().id != step.id {
                let reason = format!(
                    "the controller sent patch {} when asked for {}",
                    bundle.metadata().id,
                    step.id
                );
                return self.fail(held, reason, &Done::default());
            }
            verified.push(bundle);
        }
        let removed_rr = plan.remove.iter().any(|s| {
            s.reboot_required
                || held
                    .state
                    .installed
                    .get(&s.id)
                    .is_some_and(|r| r.reboot_required)
        });
        let installed_rr = verified.iter().any(|b| b.metadata().reboot_required);
        if let Err(refusal) = plan::check_lock(
            removed_rr || installed_rr,
            request.force,
            request.host_locked,
        ) {
            let message = refusal.message();
            self.installer
                .set_state(held, AgentState::InstallRejected, Some(message.clone()))?;
            return Ok(self.outcome(false, message, held));
        }

        let mut done = Done::default();
        for step in &plan.remove {
            let rr = held
                .state
                .installed
                .get(&step.id)
                .is_some_and(|r| r.reboot_required);
            info!(
                command = command_id,
                patch = %step.id,
                force = request.force,
                "removing patch {} (asked by command {command_id})",
                step.id
            );
            if let Err(e) = self.installer.remove(held, &step.id) {
                return self.fail(held, format!("removing {} failed: {e:#}", step.id), &done);
            }
            done.removed.push(step.id.clone());
            done.reboot_required |= rr || step.reboot_required;
        }
        for bundle in &verified {
            match self.installer.install(held, bundle) {
                Ok(id) => done.installed.push(id),
                Err(e) => {
                    let reason = format!("installing {} failed: {e:#}", bundle.metadata().id);
                    return self.fail(held, reason, &done);
                }
            }
            done.reboot_required |= bundle.metadata().reboot_required;
        }

        self.installer.set_state(held, AgentState::Idle, None)?;
        let mut message = done.describe();
        if done.reboot_required {
            message.push_str(if request.host_locked {
                "; the host needs a reboot: unlocking it reboots it"
            } else {
                "; the host needs a reboot: lock and unlock it"
            });
        }
        info!("install-patches: {message}");
        Ok(self.outcome(true, message, held))
    }

    /// Ends the command with a failure: state `install-failed` with `reason`.
    fn fail(&self, held: &mut Held, reason: String, done: &Done) -> anyhow::Result<CommandOutcome> {
        warn!("install-patches: {reason}");
        let message = if done.installed.is_empty() && done.removed.is_empty() {
            reason
        } else {
            format!("{reason} (before that: {})", done.describe())
        };
        self.installer
            .set_state(held, AgentState::InstallFailed, Some(message.clone()))?;
        Ok(self.outcome(false, message, held))
    }

    fn outcome(&self, succeeded: bool, message: String, held: &Held) -> CommandOutcome {
        CommandOutcome {
            succeeded,
            message,
            output: serde_json::to_value(self.software(held)).unwrap_or_default(),
        }
    }

    fn software(&self, held: &Held) -> HostSoftware {
        let boot = reboot::boot_id(&self.installer.state_dir);
        held.state
            .report(Some(self.installer.release.clone()), &boot)
    }
}

enum Begun {
    /// Answered without changing anything under the root.
    Answered(CommandOutcome),
    Go(Box<Held>, Plan),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .context("the install task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patches::testing::{FakeController, Host, stranger};
    use convoy_api::patches::PatchToChange;
    use convoy_bundle::{Script, Section, TrustedKeys};
    use convoy_core::host::Personality;
    use sha2::{Digest, Sha256};

    const CREDENTIAL: &str = "cvh_host";

    struct Agent {
        host: Host,
        fake: FakeController,
        patches: HostPatches,
    }

    async fn agent_with(
        host: Host,
        trusted: Option<TrustedKeys>,
        reboot: Option<RebootCommand>,
    ) -> Agent {
        let (fake, url) = FakeController::start(CREDENTIAL).await;
        let installer = match trusted {
            Some(trusted) => host.installer_trusting(trusted),
            None => host.installer(),
        };
        let source = BundleSource::new(&url, CREDENTIAL, &Default::default()).unwrap();
        let patches = HostPatches::new(installer, Some(source), reboot);
        Agent {
            host,
            fake,
            patches,
        }
    }

    async fn agent() -> Agent {
        agent_with(Host::new(Personality::Worker), None, None).await
    }

    impl Agent {
        /// A signed in-service bundle with one file for every personality.
        fn bundle_with_file(&self, id: &str, path: &str, bytes: &[u8]) -> std::path::PathBuf {
            self.host.bundle(id).file(Section::All, path, bytes).build()
        }

        /// Puts the bundle on the controller; the change as the controller would send it.
        fn serve(&self, bundle: &std::path::Path, reboot_required: bool) -> PatchToChange {
            let bytes = std::fs::read(bundle).unwrap();
            let id = bundle.file_stem().unwrap().to_string_lossy().into_owned();
            let change = PatchToChange {
                id: id.clone(),
                reboot_required,
                sha256: Some(hex::encode(Sha256::digest(&bytes))),
                size: Some(bytes.len() as u64),
            };
            self.fake.put(&id, bytes);
            change
        }

        async fn run(
            &self,
            remove: Vec<PatchToChange>,
            install: Vec<PatchToChange>,
            force: bool,
            host_locked: bool,
        ) -> CommandOutcome {
            let request = InstallPatches {
                remove,
                install,
                force,
                host_locked,
            };
            self.patches.install_patches(request, Uuid::new_v4()).await
        }

        fn state(&self) -> PatchState {
            PatchState::load(&self.patches.installer.layout).unwrap()
        }

        fn software(&self, outcome: &CommandOutcome) -> HostSoftware {
            serde_json::from_value(outcome.output.clone()).unwrap()
        }
    }

    fn ids(set: &BTreeSet<PatchId>) -> Vec<&str> {
        set.iter().map(PatchId::as_str).collect()
    }

    fn removal(id: &str, reboot_required: bool) -> PatchToChange {
        PatchToChange {
            id: id.into(),
            reboot_required,
            sha256: None,
            size: None,
        }
    }

    /// A patch signed as unremovable stays, whatever a command says (even forced): the
    /// command is rejected before anything changes.
    #[tokio::test]
    async fn an_unremovable_patch_is_never_removed() {
        let agent = agent().await;
        let bundle = agent
            .host
            .bundle("KEEP")
            .file(Section::All, "etc/keep", b"keep")
            .unremovable()
            .build();
        let keep = agent.serve(&bundle, false);
        assert!(agent.run(vec![], vec![keep], false, false).await.succeeded);
        assert!(agent.state().installed[&"KEEP".parse::<PatchId>().unwrap()].unremovable);
        let before = agent.host.snapshot();

        let outcome = agent
            .run(vec![removal("KEEP", false)], vec![], true, true)
            .await;
        assert!(!outcome.succeeded);
        assert!(
            outcome.message.contains("unremovable"),
            "{}",
            outcome.message
        );
        assert_eq!(agent.host.snapshot(), before);
        assert_eq!(agent.state().state, AgentState::InstallRejected);
    }

    #[tokio::test]
    async fn a_command_removes_then_installs_and_reports_the_installed_set() {
        let agent = agent().await;
        let a = agent.bundle_with_file("A", "etc/a", b"a");
        let b = agent.bundle_with_file("B", "etc/b", b"b");
        let c = agent.bundle_with_file("C", "etc/c", b"c");
        let (a, b, c) = (
            agent.serve(&a, false),
            agent.serve(&b, false),
            agent.serve(&c, false),
        );

        let first = agent
            .run(vec![], vec![a.clone(), c.clone()], false, false)
            .await;
        assert!(first.succeeded, "{}", first.message);
        assert_eq!(first.message, "installed A, C");
        let second = agent
            .run(vec![c.clone()], vec![a.clone(), b.clone()], false, false)
            .await;
        assert!(second.succeeded, "{}", second.message);
        assert_eq!(second.message, "installed B; removed C");
        let software = agent.software(&second);
        assert_eq!(ids(&software.installed), ["A", "B"]);
        assert_eq!(ids(&software.changed_since_boot), ["A", "B", "C"]);
        assert_eq!(software.state, AgentState::Idle);
        assert_eq!(software.release.unwrap().as_str(), "25.09");
        assert!(!agent.host.root().join("etc/c").exists());
        // Nothing left in the download directory.
        let layout = &agent.patches.installer.layout;
        assert_eq!(std::fs::read_dir(layout.bundles_dir()).unwrap().count(), 0);

        let again = agent.run(vec![c], vec![a, b], false, false).await;
        assert!(again.succeeded);
        assert_eq!(again.message, "nothing to install or remove");
    }

    #[tokio::test]
    async fn reboot_required_work_on_an_unlocked_host_needs_a_lock_or_force() {
        let agent = agent().await;
        let bundle = agent
            .host
            .bundle("RR1")
            .reboot_required()
            .file(Section::All, "etc/kernel", b"new")
            .build();
        let change = agent.serve(&bundle, true);

        let refused = agent.run(vec![], vec![change.clone()], false, false).await;
        assert!(!refused.succeeded);
        assert_eq!(refused.message, "Node must be locked.");
        let state = agent.state();
        assert_eq!(state.state, AgentState::InstallRejected);
        assert_eq!(state.last_error.as_deref(), Some("Node must be locked."));
        assert!(state.installed.is_empty());
        assert!(agent.host.snapshot().is_empty());
        assert_eq!(agent.fake.requests(), 0, "refused before downloading");

        let forced = agent.run(vec![], vec![change.clone()], true, false).await;
        assert!(forced.succeeded, "{}", forced.message);
        assert_eq!(
            forced.message,
            "installed RR1; the host needs a reboot: lock and unlock it"
        );
        assert_eq!(agent.state().state, AgentState::Idle);
        assert_eq!(agent.state().last_error, None);

        let removal = removal("RR1", true);
        let refused = agent.run(vec![removal.clone()], vec![], false, false).await;
        assert_eq!(refused.message, "Node must be locked.");
        assert_eq!(agent.host.read("etc/kernel"), "new");
        let locked = agent.run(vec![removal], vec![], false, true).await;
        assert!(locked.succeeded, "{}", locked.message);
        assert!(agent.host.snapshot().is_empty());
    }

    #[tokio::test]
    async fn the_signed_metadata_has_the_last_word_on_reboot_required() {
        let agent = agent().await;
        let bundle = agent
            .host
            .bundle("RR1")
            .reboot_required()
            .file(Section::All, "etc/kernel", b"new")
            .build();
        // The controller's record says in-service, the signed bundle says otherwise.
        let change = agent.serve(&bundle, false);
        let refused = agent.run(vec![], vec![change], false, false).await;
        assert_eq!(refused.message, "Node must be locked.");
        assert_eq!(agent.state().state, AgentState::InstallRejected);
        assert!(agent.host.snapshot().is_empty());
    }

    #[tokio::test]
    async fn a_bundle_the_agent_refuses_changes_nothing() {
        let agent = agent().await;
        let keep = agent.bundle_with_file("KEEP", "etc/keep", b"k");
        let keep = agent.serve(&keep, false);
        assert!(
            agent
                .run(vec![], vec![keep.clone()], false, false)
                .await
                .succeeded
        );
        let before = agent.host.snapshot();

        let good = agent.bundle_with_file("P1", "etc/x", b"payload-bytes-to-alter");
        let announced = agent.serve(&good, false);
        // The bundle in the controller's store is altered behind its back.
        let mut bytes = std::fs::read(&good).unwrap();
        let at = bytes.windows(5).position(|w| w == b"bytes").unwrap();
        bytes[at] ^= 1;
        agent.fake.put("P1", bytes.clone());

        let outcome = agent
            .run(vec![keep.clone()], vec![announced.clone()], false, false)
            .await;
        assert!(!outcome.succeeded);
        assert!(
            outcome
                .message
                .starts_with("downloading P1 failed: the download of P1 has SHA-256"),
            "{}",
            outcome.message
        );
        // Even with a matching hash, the signature check refuses it.
        let rehashed = PatchToChange {
            sha256: Some(hex::encode(Sha256::digest(&bytes))),
            ..announced
        };
        let outcome = agent
            .run(vec![keep.clone()], vec![rehashed], false, false)
            .await;
        assert_eq!(
            outcome.message,
            "P1 is refused: altered member: the SHA-256 of payload/all/etc/x differs from the manifest"
        );
        let state = agent.state();
        assert_eq!(state.state, AgentState::InstallFailed);
        assert_eq!(state.last_error.as_deref(), Some(outcome.message.as_str()));
        // KEEP was to be removed in the same command: verification comes first.
        assert_eq!(agent.host.snapshot(), before);
        assert_eq!(ids(&agent.software(&outcome).installed), ["KEEP"]);

        let untrusted = agent
            .host
            .bundle("P2")
            .file(Section::All, "etc/y", b"y")
            .build_with(&stranger());
        let untrusted = agent.serve(&untrusted, false);
        let outcome = agent.run(vec![], vec![untrusted], false, false).await;
        assert!(
            outcome.message.starts_with("P2 is refused: untrusted key:"),
            "{}",
            outcome.message
        );
        assert_eq!(agent.host.snapshot(), before);
    }

    #[tokio::test]
    async fn an_agent_without_trusted_keys_refuses_every_install() {
        let agent = agent_with(
            Host::new(Personality::Worker),
            Some(TrustedKeys::default()),
            None,
        )
        .await;
        let bundle = agent.bundle_with_file("P1", "etc/x", b"x");
        let change = agent.serve(&bundle, false);
        let outcome = agent.run(vec![], vec![change], false, false).await;
        assert!(!outcome.succeeded);
        assert_eq!(outcome.message, NO_TRUSTED_KEYS);
        assert_eq!(agent.fake.requests(), 0);
        assert_eq!(agent.state().state, AgentState::InstallFailed);
    }

    #[tokio::test]
    async fn a_failure_midway_keeps_what_was_done_and_says_so() {
        let agent = agent().await;
        let a = agent.bundle_with_file("A", "etc/a", b"a");
        let b = agent
            .host
            .bundle("B")
            .file(Section::All, "etc/b", b"b")
            .script(Script::PreInstall, "echo 'no space left' >&2\nexit 1")
            .build();
        let (a, b) = (agent.serve(&a, false), agent.serve(&b, false));
        let outcome = agent.run(vec![], vec![a, b], false, false).await;
        assert!(!outcome.succeeded);
        assert_eq!(
            outcome.message,
            "installing B failed: the pre-install script of B exited with code 1: no space left \
             (before that: installed A)"
        );
        let software = agent.software(&outcome);
        assert_eq!(ids(&software.installed), ["A"]);
        assert_eq!(software.state, AgentState::InstallFailed);
        assert!(!agent.host.root().join("etc/b").exists());
    }

    #[tokio::test]
    async fn the_reboot_runs_once_when_asked_after_the_report() {
        let host = Host::new(Personality::Worker);
        let flag = host.dir.path().join("rebooted");
        let command = RebootCommand::Shell(format!("echo once >> '{}'", flag.display()));
        let agent = agent_with(host, None, Some(command)).await;
        let in_service = agent.bundle_with_file("IS", "etc/a", b"a");
        let in_service = agent.serve(&in_service, false);
        let rr = agent
            .host
            .bundle("RR")
            .reboot_required()
            .file(Section::All, "etc/k", b"k")
            .build();
        let rr = agent.serve(&rr, true);

        let outcome = agent.run(vec![], vec![in_service], false, false).await;
        assert_eq!(outcome.message, "installed IS");
        agent.patches.reboot_if_requested().await;
        assert!(!flag.exists(), "an in-service patch needs no reboot");

        let outcome = agent.run(vec![], vec![rr], false, true).await;
        assert_eq!(
            outcome.message,
            "installed RR; the host needs a reboot: unlocking it reboots it"
        );
        agent.patches.reboot_if_requested().await;
        assert!(
            !flag.exists(),
            "an install does not reboot; the unlock does"
        );
        assert!(
            agent
                .software(&outcome)
                .changed_since_boot
                .contains(&"RR".parse().unwrap())
        );

        let outcome = agent.patches.reboot(Uuid::new_v4()).await;
        assert_eq!(outcome.message, "rebooting");
        assert!(!flag.exists(), "not before the outcome is reported");
        agent.patches.reboot_if_requested().await;
        agent.patches.reboot_if_requested().await;
        assert_eq!(std::fs::read_to_string(&flag).unwrap(), "once\n");
    }

    #[tokio::test]
    async fn a_bad_payload_is_refused() {
        let agent = agent().await;
        let outcome = agent
            .run(vec![], vec![removal("../etc", false)], false, false)
            .await;
        assert!(!outcome.succeeded);
        assert!(
            outcome
                .message
                .starts_with("bad install-patches payload: id:"),
            "{}",
            outcome.message
        );
    }
}

//! StarlingX unified software management (USM, spec §5): the states of a release, of its
//! deploy and of each host's deploy, as pure state machines with the original's strings.
//!
//! The caller keeps one fact per release and one deploy record; every change goes through
//! `can_become`, so a crash between two writes can never leave a state the original could not
//! reach.

use serde::{Deserialize, Serialize};

use crate::names::named_enum;
use crate::patch::state::{AgentState, PatchState, RepoState};

/// Where a release stands (USM `states.py`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    Uploading,
    UploadFailed,
    Available,
    Unavailable,
    Deploying,
    Deployed,
    Removing,
    Committed,
}

named_enum!(ReleaseState, field = "state", {
    Uploading => "uploading",
    UploadFailed => "upload-failed",
    Available => "available",
    Unavailable => "unavailable",
    Deploying => "deploying",
    Deployed => "deployed",
    Removing => "removing",
    Committed => "committed",
});

impl ReleaseState {
    /// USM's valid transitions: uploading → available | upload-failed; available →
    /// deploying; deploying → deployed | available (aborted or rolled back); deployed →
    /// removing | unavailable. Convoy adds deployed → committed (`software commit`, which
    /// USM performs outside this table) and removing → available (the removal finished).
    pub fn can_become(self, next: ReleaseState) -> bool {
        use ReleaseState::*;
        matches!(
            (self, next),
            (Uploading, Available | UploadFailed)
                | (Available, Deploying)
                | (Deploying, Deployed | Available)
                | (Deployed, Removing | Unavailable | Committed)
                | (Removing, Available)
        )
    }

    /// `software delete` accepts the release: available, unavailable or upload-failed.
    pub fn is_deletable(self) -> bool {
        matches!(
            self,
            ReleaseState::Available | ReleaseState::Unavailable | ReleaseState::UploadFailed
        )
    }

    /// `software deploy start` accepts the release (`VALID_DEPLOY_START_STATES`): available,
    /// or deployed (deploying an earlier release back).
    pub fn can_start_deploy(self) -> bool {
        matches!(self, ReleaseState::Available | ReleaseState::Deployed)
    }
}

/// Where the site's one deploy stands (USM `deploy_state.py`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployState {
    Start,
    StartDone,
    StartFailed,
    Host,
    HostDone,
    HostFailed,
    Activate,
    ActivateDone,
    ActivateFailed,
    Completed,
    HostRollback,
    HostRollbackDone,
    HostRollbackFailed,
    ActivateRollbackPending,
    ActivateRollback,
    ActivateRollbackDone,
    ActivateRollbackFailed,
}

named_enum!(DeployState, field = "state", {
    Start => "start",
    StartDone => "start-done",
    StartFailed => "start-failed",
    Host => "host",
    HostDone => "host-done",
    HostFailed => "host-failed",
    Activate => "activate",
    ActivateDone => "activate-done",
    ActivateFailed => "activate-failed",
    Completed => "completed",
    HostRollback => "host-rollback",
    HostRollbackDone => "host-rollback-done",
    HostRollbackFailed => "host-rollback-failed",
    ActivateRollbackPending => "activate-rollback-pending",
    ActivateRollback => "activate-rollback",
    ActivateRollbackDone => "activate-rollback-done",
    ActivateRollbackFailed => "activate-rollback-failed",
});

impl DeployState {
    /// The deploy's transitions (spec §5): start → start-done | start-failed; start-done →
    /// host; host → host-done | host-failed, host-failed → host (retry); host-done →
    /// activate; activate → activate-done | activate-failed, activate-failed → activate
    /// (retry); activate-done → completed. Rollback: start-done, host, host-failed and
    /// host-done → host-rollback (`deploy abort` before activation); activate-done,
    /// activate-failed and completed → activate-rollback-pending → activate-rollback →
    /// activate-rollback-done | activate-rollback-failed (→ activate-rollback again);
    /// activate-rollback-done → host-rollback → host-rollback-done | host-rollback-failed
    /// (→ host-rollback again). A completed, start-failed or host-rollback-done deploy waits
    /// for `deploy delete` ([`DeployState::is_deletable`]).
    pub fn can_become(self, next: DeployState) -> bool {
        use DeployState::*;
        matches!(
            (self, next),
            (Start, StartDone | StartFailed)
                | (StartDone, Host)
                | (Host, HostDone | HostFailed)
                | (HostFailed, Host)
                | (HostDone, Activate)
                | (Activate, ActivateDone | ActivateFailed)
                | (ActivateFailed, Activate)
                | (ActivateDone, Completed)
                | (StartDone | Host | HostFailed | HostDone, HostRollback)
                | (
                    ActivateDone | ActivateFailed | Completed,
                    ActivateRollbackPending
                )
                | (ActivateRollbackPending, ActivateRollback)
                | (
                    ActivateRollback,
                    ActivateRollbackDone | ActivateRollbackFailed
                )
                | (ActivateRollbackFailed, ActivateRollback)
                | (ActivateRollbackDone, HostRollback)
                | (HostRollback, HostRollbackDone | HostRollbackFailed)
                | (HostRollbackFailed, HostRollback)
        )
    }

    /// The deploy record may be deleted (`software deploy delete`).
    pub fn is_deletable(self) -> bool {
        matches!(
            self,
            DeployState::Completed | DeployState::StartFailed | DeployState::HostRollbackDone
        )
    }

    /// `deploy start` has finished: hosts may be deployed.
    pub fn is_started(self) -> bool {
        use DeployState::*;
        matches!(
            self,
            StartDone | Host | HostDone | HostFailed | Activate | ActivateDone | ActivateFailed
        )
    }

    /// Activation has finished (the `activate-upgrade` step is not needed again).
    pub fn is_activated(self) -> bool {
        matches!(self, DeployState::ActivateDone | DeployState::Completed)
    }
}

/// Where one host's deploy stands (`software deploy host-list`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostDeployState {
    Pending,
    Deploying,
    Deployed,
    Failed,
    RollbackPending,
    RollbackDeploying,
    RollbackDeployed,
    RollbackFailed,
}

named_enum!(HostDeployState, field = "host-state", {
    Pending => "pending",
    Deploying => "deploying",
    Deployed => "deployed",
    Failed => "failed",
    RollbackPending => "rollback-pending",
    RollbackDeploying => "rollback-deploying",
    RollbackDeployed => "rollback-deployed",
    RollbackFailed => "rollback-failed",
});

impl HostDeployState {
    /// pending → deploying → deployed | failed, failed → deploying (retry); a rollback
    /// marks pending, deployed and failed hosts rollback-pending → rollback-deploying →
    /// rollback-deployed | rollback-failed, rollback-failed → rollback-deploying.
    pub fn can_become(self, next: HostDeployState) -> bool {
        use HostDeployState::*;
        matches!(
            (self, next),
            (Pending, Deploying)
                | (Deploying, Deployed | Failed)
                | (Failed, Deploying)
                | (Pending | Deployed | Failed, RollbackPending)
                | (RollbackPending, RollbackDeploying)
                | (RollbackDeploying, RollbackDeployed | RollbackFailed)
                | (RollbackFailed, RollbackDeploying)
        )
    }
}

/// What `software list` shows for a release the repository holds. Convoy keeps one
/// repository for patches and releases, so a release's state is derived from its patch
/// states and from the site's deploy record (`deploy`: that record's state when it deploys
/// this release), never stored twice:
///
/// - a deploy of it under way is `deploying`, and `deployed` once completed;
/// - otherwise committed is `committed`; partly applied (applied by hand, hosts still
///   installing) `deploying`; applied `deployed`; partly removed `removing`; else
///   `available`. With no hosts known (`n/a`) the repository state decides.
pub fn release_state(
    repo: RepoState,
    patch: PatchState,
    deploy: Option<DeployState>,
) -> ReleaseState {
    match deploy {
        Some(DeployState::Completed) => return ReleaseState::Deployed,
        Some(_) => return ReleaseState::Deploying,
        None => {}
    }
    match (repo, patch) {
        (RepoState::Committed, _) => ReleaseState::Committed,
        (_, PatchState::PartialApply) => ReleaseState::Deploying,
        (_, PatchState::PartialRemove) => ReleaseState::Removing,
        (RepoState::Applied, _) => ReleaseState::Deployed,
        (RepoState::Available, _) => ReleaseState::Available,
    }
}

/// One host's deploy state in `software deploy host-list`: a host the release is not for,
/// or that has installed it, is `deployed`; one installing it `deploying`; one whose last
/// install failed `failed`; else `pending`.
pub fn host_deploy_state(takes: bool, installed: bool, agent: AgentState) -> HostDeployState {
    if !takes || installed {
        return HostDeployState::Deployed;
    }
    match agent {
        AgentState::Installing => HostDeployState::Deploying,
        AgentState::InstallFailed => HostDeployState::Failed,
        _ => HostDeployState::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_the_originals() {
        for s in ReleaseState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.as_str().parse::<ReleaseState>(), Ok(s));
        }
        for s in DeployState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in HostDeployState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn a_release_goes_available_deploying_deployed_committed() {
        use ReleaseState::*;
        let path = [Uploading, Available, Deploying, Deployed, Committed];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(Deploying.can_become(Available));
        assert!(!Available.can_become(Deployed));
        assert!(!Committed.can_become(Available));
        assert!(Available.is_deletable() && !Deployed.is_deletable());
        assert!(Available.can_start_deploy() && Deployed.can_start_deploy());
        assert!(!Deploying.can_start_deploy());
    }

    #[test]
    fn a_deploy_goes_start_host_activate_complete() {
        use DeployState::*;
        let path = [
            Start,
            StartDone,
            Host,
            HostFailed,
            Host,
            HostDone,
            Activate,
            ActivateDone,
            Completed,
        ];
        for w in path.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
        let rollback = [
            Completed,
            ActivateRollbackPending,
            ActivateRollback,
            ActivateRollbackDone,
            HostRollback,
            HostRollbackDone,
        ];
        for w in rollback.windows(2) {
            assert!(w[0].can_become(w[1]), "{} -> {}", w[0], w[1]);
        }
        assert!(!Start.can_become(Host));
        assert!(!Completed.can_become(Start));
        for s in DeployState::ALL {
            assert!(!s.can_become(s), "{s} loops");
        }
        assert!(Completed.is_deletable() && StartFailed.is_deletable());
        assert!(!Host.is_deletable());
    }

    #[test]
    fn host_deploys_retry_and_roll_back() {
        use HostDeployState::*;
        assert!(Pending.can_become(Deploying));
        assert!(Deploying.can_become(Failed) && Failed.can_become(Deploying));
        assert!(Deployed.can_become(RollbackPending));
        assert!(!Deployed.can_become(Deploying));
        assert!(RollbackDeploying.can_become(RollbackDeployed));
    }
    #[test]
    fn a_release_state_comes_from_its_patch_state_and_the_deploy() {
        use PatchState as P;
        use ReleaseState::*;
        use RepoState as R;
        assert_eq!(release_state(R::Available, P::Available, None), Available);
        assert_eq!(release_state(R::Applied, P::PartialApply, None), Deploying);
        assert_eq!(release_state(R::Applied, P::Applied, None), Deployed);
        assert_eq!(
            release_state(R::Available, P::PartialRemove, None),
            Removing
        );
        assert_eq!(release_state(R::Committed, P::Committed, None), Committed);
        assert_eq!(release_state(R::Applied, P::Unknown, None), Deployed);
        // A deploy under way is deploying even once every host has it.
        let host_done = Some(DeployState::HostDone);
        assert_eq!(release_state(R::Applied, P::Applied, host_done), Deploying);
        let done = Some(DeployState::Completed);
        assert_eq!(release_state(R::Applied, P::Applied, done), Deployed);
    }

    #[test]
    fn host_deploy_states_follow_the_agent() {
        use HostDeployState::*;
        assert_eq!(host_deploy_state(false, false, AgentState::Idle), Deployed);
        assert_eq!(host_deploy_state(true, true, AgentState::Idle), Deployed);
        assert_eq!(host_deploy_state(true, false, AgentState::Idle), Pending);
        assert_eq!(
            host_deploy_state(true, false, AgentState::Installing),
            Deploying
        );
        assert_eq!(
            host_deploy_state(true, false, AgentState::InstallFailed),
            Failed
        );
    }
}

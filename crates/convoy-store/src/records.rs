//! The rows the store reads and writes, in domain types.

use convoy_core::command::CommandKind;
use convoy_core::host::{Administrative, HostFacts, Personality};
use convoy_core::patch::RepoState;
use convoy_core::role::Role;
use convoy_core::strategy::{StrategyKind, StrategyState};
use jiff::Timestamp;

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// PHC string (argon2id).
    pub password_hash: String,
    pub created_at: Timestamp,
}

/// Who a token belongs to and until when it is valid.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOwner {
    pub user: UserRecord,
    pub expires_at: Timestamp,
}

/// An agent's enrolment as the store records it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostEnrolment {
    /// What lets this enrolment happen.
    pub authority: EnrolAuthority,
    pub hostname: String,
    pub personality: Personality,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub credential_hash: String,
    pub facts: HostFacts,
    pub now: Timestamp,
}

/// What an enrolment presented, and so what it may do.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrolAuthority {
    /// The site-wide enrolment token: may enrol a hostname the site does not know, never take
    /// over one it knows.
    SiteToken,
    /// A single-use per-host token (its hash): it must be for this hostname and unexpired, and
    /// the enrolment uses it up. It may enrol the host anew or replace its credential.
    HostToken { token_hash: String },
}

/// A per-host enrolment token as stored (only its hash).
#[derive(Debug, Clone, PartialEq)]
pub struct HostEnrolToken {
    pub token_hash: String,
    pub hostname: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The user who created it.
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRecord {
    pub hostname: String,
    pub personality: Personality,
    pub zone: Option<String>,
    pub pod: Option<String>,
    pub cluster: Option<String>,
    pub administrative: Administrative,
    pub facts: HostFacts,
    pub last_seen: Option<Timestamp>,
    pub enrolled_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    pub id: String,
    pub hostname: String,
    pub kind: CommandKind,
    /// The command's arguments as JSON (`null` for none).
    pub payload: String,
    pub created_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    /// The agent session the last delivery went to.
    pub dispatched_session: Option<String>,
    pub completed_at: Option<Timestamp>,
    /// The agent's outcome as JSON, once reported.
    pub outcome: Option<String>,
}

/// The strategy a controller runs (at most one at a time).
#[derive(Debug, Clone, PartialEq)]
pub struct StrategyRecord {
    pub id: String,
    pub kind: StrategyKind,
    pub state: StrategyState,
    pub max_parallel: u32,
    pub stop_on_failure: bool,
    /// The kind's own options as JSON (scope, forced, timeout, payload...).
    pub options: String,
    /// Applied stage by stage: the last stage to run before the strategy waits (None: all).
    pub stop_at_stage: Option<u32>,
    pub details: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One step: one target driven through the phases of the strategy's kind.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub target: String,
    /// Order in the plan.
    pub position: u32,
    pub stage: u32,
    /// The group the target belongs to (a host's cluster).
    pub group: Option<String>,
    /// `initial`, the current phase, or `complete`, `failed`, `aborted`, `skipped`.
    pub state: String,
    /// The sweep phase has passed.
    pub swept: bool,
    pub details: String,
    /// JSON of the ending decided before a cleanup began.
    pub pending_end: Option<String>,
    /// The agent command carrying the current phase's action.
    pub command_id: Option<String>,
    pub phase_started_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl StepRecord {
    /// A step of a new strategy: `initial`, nothing done yet.
    pub fn planned(target: impl Into<String>, position: u32, stage: u32, now: Timestamp) -> Self {
        StepRecord {
            target: target.into(),
            position,
            stage,
            group: None,
            state: "initial".into(),
            swept: false,
            details: String::new(),
            pending_end: None,
            command_id: None,
            phase_started_at: None,
            started_at: None,
            finished_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

/// What happened in one phase of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseRecord {
    pub target: String,
    pub phase: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// `succeeded`, `avoid-maintenance`, `no-script` or `failed`, once finished.
    pub result: Option<String>,
    pub details: String,
    /// The action's output as JSON (a hook's exit code, stdout and stderr).
    pub output: String,
}

/// A step's change, written in one transaction with what it implies.
#[derive(Debug, Clone, PartialEq)]
pub struct StepWrite {
    pub step: StepRecord,
    /// The phase that just ended.
    pub finished_phase: Option<PhaseRecord>,
    /// The phase that now begins.
    pub started_phase: Option<PhaseRecord>,
    /// The command that performs the new phase on the host's agent.
    pub command: Option<CommandRecord>,
}

/// A command after an agent's report of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportedCommand {
    pub command: CommandRecord,
    /// This report recorded the outcome; false for a repeat (the first outcome stays, and
    /// what it said about the host was applied then).
    pub first: bool,
}

/// What a command's first outcome changes on its host, written in the same transaction as
/// the outcome itself: a crash can lose both or neither, never the effects alone.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostEffects {
    /// The host's maintenance state, when the outcome confirms a change of it.
    pub maintenance: Option<bool>,
    /// The host's patch state as the agent reported it with an install's answer.
    pub software: Option<convoy_core::patch::HostSoftware>,
    /// The host is no longer pending for any patch (it answered an install).
    pub clear_interim: bool,
}

/// An agent's outcome for a command, recorded in the same transaction as the strategy
/// changes it causes.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandCompletion {
    pub id: String,
    pub hostname: String,
    /// The outcome as JSON.
    pub outcome: String,
    pub completed_at: Timestamp,
    /// What the outcome changes on its host, as when the agent gateway records it.
    pub effects: HostEffects,
}

/// What one tick of the strategy driver writes, in one transaction: the outcomes it took and
/// the step changes (with their phases and commands) they caused, and what a System
/// Controller strategy's steps change on their subclouds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepBatch {
    pub completions: Vec<CommandCompletion>,
    pub steps: Vec<StepWrite>,
    pub subclouds: Vec<SubcloudStepWrite>,
}

impl StepBatch {
    pub fn is_empty(&self) -> bool {
        self.completions.is_empty() && self.steps.is_empty() && self.subclouds.is_empty()
    }
}

/// What a System Controller strategy's step changes on its subcloud (by name), written with
/// the tick that moves the step; a field left None is left as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubcloudStepWrite {
    pub name: String,
    pub deploy_status: Option<String>,
    pub software_version: Option<String>,
    pub error_description: Option<String>,
    /// The subcloud's `updated_at` when its deploy status changes.
    pub at: Timestamp,
}

impl SubcloudStepWrite {
    /// Takes `later`'s fields that are set.
    pub fn merge(&mut self, later: SubcloudStepWrite) {
        if later.deploy_status.is_some() {
            self.deploy_status = later.deploy_status;
            self.at = later.at;
        }
        if later.software_version.is_some() {
            self.software_version = later.software_version;
        }
        if later.error_description.is_some() {
            self.error_description = later.error_description;
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRecord {
    pub name: String,
    pub enabled: bool,
    pub disabled_by: Option<String>,
    pub updated_at: Timestamp,
}

impl CommandRecord {
    /// A command not yet delivered, with `payload` as JSON (`null` for none).
    pub fn new(
        id: String,
        hostname: &str,
        kind: CommandKind,
        payload: String,
        created_at: Timestamp,
    ) -> Self {
        CommandRecord {
            id,
            hostname: hostname.to_string(),
            kind,
            payload,
            created_at,
            dispatched_at: None,
            dispatched_session: None,
            completed_at: None,
            outcome: None,
        }
    }
}

/// A patch in the controller's repository.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchRecord {
    pub id: String,
    /// JSON `PatchMetadata`, as verified from the bundle.
    pub metadata: String,
    pub repo_state: RepoState,
    /// The verified bundle's file name in the controller's patch directory.
    pub file_name: String,
    pub size: u64,
    pub sha256: String,
    pub uploaded_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Changes to the patch repository, written in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatchChanges {
    pub upserts: Vec<PatchRecord>,
    pub deletes: Vec<String>,
    /// Patches whose hosts must report again (sw-patch's interim state): patch id, hosts.
    pub pending_hosts: Vec<(String, Vec<String>)>,
    /// A deploy to start with these changes (`deploy start`); refused with `Conflict` if the
    /// site has one already.
    pub start_deploy: Option<DeployRecord>,
}

/// The site's one software deploy (USM's deploy record).
#[derive(Debug, Clone, PartialEq)]
pub struct DeployRecord {
    /// The release it deploys (a row of the patch repository).
    pub release_id: String,
    /// The software version the site ran when the deploy started.
    pub from_release: String,
    pub state: convoy_core::sw_update::release::DeployState,
    pub reboot_required: bool,
    pub started_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An active alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRecord {
    pub uuid: String,
    pub alarm_id: String,
    pub entity: String,
    pub severity: convoy_core::alarm::Severity,
    pub reason: String,
    pub mgmt_affecting: bool,
    pub raised_at: Timestamp,
    /// Who raised it: `convoy`, `agent` or `operator`.
    pub source: String,
}

/// A raise (`set`) or a clear (`clear`) of an alarm, as kept in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    /// Order of the events, oldest first.
    pub seq: i64,
    pub alarm: AlarmRecord,
    pub state: String,
    pub at: Timestamp,
    /// Who raised or cleared it.
    pub by: String,
}

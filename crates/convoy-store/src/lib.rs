//! Persistence for convoyd: the [`Store`] trait, the records it reads and writes, and the
//! SQLite implementation (the embedded default).

mod records;
mod sqlite;
pub mod subclouds;

pub use records::{
    AlarmEvent, AlarmRecord, ClusterRecord, CommandCompletion, CommandRecord, DeployRecord,
    EnrolAuthority, HostEffects, HostEnrolToken, HostEnrolment, HostRecord, PatchChanges,
    PatchRecord, PhaseRecord, ReportedCommand, StepBatch, StepRecord, StepWrite, StrategyRecord,
    SubcloudStepWrite, TokenOwner, UserRecord,
};
pub use sqlite::SqliteStore;
pub use subclouds::SubcloudStore;

use async_trait::async_trait;
use convoy_core::command::CommandKind;
use convoy_core::host::{Administrative, HostFacts};
use convoy_core::strategy::StrategyState;
use jiff::{SignedDuration, Timestamp};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row would duplicate one that exists (`what` names it).
    #[error("{what} already exists")]
    Conflict { what: String },
    /// What the change presented does not allow it (`reason` says why).
    #[error("{reason}")]
    Refused { reason: String },
    #[error("unsupported database URL {url:?}: {reason}")]
    UnsupportedUrl { url: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row in {table}: {reason}")]
    Corrupt { table: &'static str, reason: String },
    #[error("cannot prepare the database file {path}: {reason}")]
    Io { path: String, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What [`Store::delete_user`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDeletion {
    Deleted,
    NotFound,
    /// Refused: the user is the last admin.
    LastAdmin,
}

/// Everything convoyd keeps. Each method is one transaction: it either happens entirely or
/// not at all, and once it returns the change survives a crash.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // users and tokens
    async fn insert_user(&self, user: &UserRecord) -> Result<()>;
    async fn user(&self, name: &str) -> Result<Option<UserRecord>>;
    async fn users(&self) -> Result<Vec<UserRecord>>;
    /// Deletes a user and every token issued to them, unless that would leave no admin: the
    /// check and the deletion are one transaction, so two admins deleting each other at once
    /// cannot both succeed.
    async fn delete_user(&self, name: &str) -> Result<UserDeletion>;
    async fn insert_token(
        &self,
        token_hash: &str,
        user_name: &str,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>>;
    /// Forgets one token; false if there was none.
    async fn revoke_token(&self, token_hash: &str) -> Result<bool>;
    /// Forgets tokens that expired before `now`; returns how many.
    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64>;

    // hosts
    /// Records an enrolled host, or re-enrols a known one: its identity, facts and credential
    /// are replaced, its administrative state is kept. Checked in the same transaction: the
    /// site token enrols only a hostname not yet known (else `Conflict`); a per-host token must
    /// be for this hostname and unexpired (else `Refused`), and is used up.
    async fn enrol_host(&self, enrolment: &HostEnrolment) -> Result<HostRecord>;
    /// Stores a per-host enrolment token, replacing any earlier one for the same host.
    async fn insert_host_enrol_token(&self, token: &HostEnrolToken) -> Result<()>;
    async fn host(&self, hostname: &str) -> Result<Option<HostRecord>>;
    async fn host_by_credential(&self, credential_hash: &str) -> Result<Option<HostRecord>>;
    async fn hosts(&self) -> Result<Vec<HostRecord>>;
    /// The host and every other host of its cluster (of none, if it has none), sorted by
    /// hostname; empty if the host is unknown.
    async fn cluster_of(&self, hostname: &str) -> Result<Vec<HostRecord>>;
    /// Records a heartbeat's facts. The maintenance flag is not taken from heartbeats (one
    /// collected before a change could arrive after it) but from the agent's confirmation of a
    /// maintenance command (`complete_command`'s effects). The next
    /// heartbeat repeats all of it, so a store may commit it without waiting for the disk.
    async fn record_heartbeat(
        &self,
        hostname: &str,
        facts: &HostFacts,
        now: Timestamp,
    ) -> Result<()>;
    /// Sets the host's administrative state; None if there is no such host. If the state
    /// changes, `on_change` (a command the change sends, a reboot say) is stored in the same
    /// transaction.
    async fn set_administrative(
        &self,
        hostname: &str,
        state: Administrative,
        on_change: Option<&CommandRecord>,
    ) -> Result<Option<HostRecord>>;
    /// Forgets a host, its credential and its commands, and clears (with a `clear` event by
    /// `convoy` at `now`) every alarm about it, in one transaction; false if there was none.
    async fn delete_host(&self, hostname: &str, now: Timestamp) -> Result<bool>;

    // commands
    async fn insert_command(&self, command: &CommandRecord) -> Result<()>;
    async fn command(&self, id: &str) -> Result<Option<CommandRecord>>;
    /// The commands with these ids that exist, in one query.
    async fn commands(&self, ids: &[String]) -> Result<Vec<CommandRecord>>;
    /// Marks the host's unfinished commands that are due for `session` (see
    /// [`convoy_core::command::due_for_delivery`]) as dispatched at `now` and returns them.
    /// The mark need not survive a crash (sessions include the controller's run), so a store
    /// may commit it without waiting for the disk.
    async fn dispatch_due_commands(
        &self,
        hostname: &str,
        session: &str,
        now: Timestamp,
        redeliver_after: SignedDuration,
    ) -> Result<Vec<CommandRecord>>;
    /// Forgets that these unfinished commands were delivered (their delivery did not reach
    /// the agent), so that the next poll gets them at once.
    async fn undeliver(&self, ids: &[String]) -> Result<()>;
    /// Records a command's outcome once, and with it, in the same transaction, what
    /// `effects` says the outcome changes on the host for the command's kind; a repeated
    /// report leaves the first one in place and changes nothing. Returns the command and
    /// whether this report was its first, or None if the host has no such command.
    async fn complete_command(
        &self,
        hostname: &str,
        id: &str,
        outcome_json: &str,
        now: Timestamp,
        effects: &(dyn Fn(CommandKind) -> HostEffects + Send + Sync),
    ) -> Result<Option<ReportedCommand>>;

    // strategies
    /// Stores a new strategy and its steps. Fails with `Conflict` naming the existing strategy
    /// when there is one: a controller runs one strategy at a time.
    async fn create_strategy(&self, strategy: &StrategyRecord, steps: &[StepRecord]) -> Result<()>;
    async fn strategy(&self) -> Result<Option<StrategyRecord>>;
    /// The strategy's steps in plan order.
    async fn steps(&self, strategy_id: &str) -> Result<Vec<StepRecord>>;
    /// One step of the strategy, by its target.
    async fn step(&self, strategy_id: &str, target: &str) -> Result<Option<StepRecord>>;
    /// The phases of every step (or only of `target`'s), in the order they started.
    async fn phases(&self, strategy_id: &str, target: Option<&str>) -> Result<Vec<PhaseRecord>>;
    /// Moves the strategy from `from` to `to` if it is still in `from`; false otherwise.
    async fn set_strategy_state(
        &self,
        strategy_id: &str,
        from: StrategyState,
        to: StrategyState,
        details: &str,
        now: Timestamp,
    ) -> Result<bool>;
    /// Applies the strategy (it must be in state `from`; compare-and-set), running its stages
    /// up to `stop_at_stage` (None: all). Applying an applying strategy continues it.
    async fn apply_strategy(
        &self,
        strategy_id: &str,
        from: StrategyState,
        stop_at_stage: Option<u32>,
        now: Timestamp,
    ) -> Result<bool>;
    /// Writes a driver tick in one transaction: the outcomes it took (each recorded once) and
    /// the steps' changes with the phase records and commands they imply.
    async fn write_steps(&self, strategy_id: &str, batch: &StepBatch) -> Result<()>;
    /// Removes the strategy with its steps and phases; false if there was none.
    async fn delete_strategy(&self, strategy_id: &str) -> Result<bool>;

    // clusters
    async fn clusters(&self) -> Result<Vec<ClusterRecord>>;
    /// Disables a cluster on behalf of `by` (a strategy id); harmless if already disabled.
    async fn disable_cluster(&self, name: &str, by: &str, now: Timestamp) -> Result<()>;
    /// Enables again the clusters `by` disabled (all of them, or only `name`); returns their
    /// names.
    async fn enable_clusters(
        &self,
        by: &str,
        name: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<String>>;

    // patches
    async fn patches(&self) -> Result<Vec<PatchRecord>>;
    async fn save_patches(&self, changes: &PatchChanges) -> Result<()>;
    /// (patch id, hostname) pairs of hosts that have not reported since the patch moved.
    async fn interim(&self) -> Result<Vec<(String, String)>>;
    /// A host reported (or was dropped): it is no longer pending for any patch.
    async fn clear_interim(&self, hostname: &str) -> Result<()>;
    /// The site's software deploy, if one exists.
    async fn deploy(&self) -> Result<Option<DeployRecord>>;
    /// Moves the deploy from `expected` to `next` (a compare-and-set: false if it is not in
    /// `expected`, or there is none).
    async fn set_deploy_state(
        &self,
        expected: convoy_core::sw_update::release::DeployState,
        next: convoy_core::sw_update::release::DeployState,
        now: Timestamp,
    ) -> Result<bool>;
    /// Deletes the deploy if it is still in `expected`; false otherwise.
    async fn delete_deploy(
        &self,
        expected: convoy_core::sw_update::release::DeployState,
    ) -> Result<bool>;
    /// (application, patch id) pairs.
    async fn app_dependencies(&self) -> Result<Vec<(String, String)>>;
    /// Replaces the patches an application depends on; an empty list forgets the application.
    async fn set_app_dependencies(&self, app: &str, patch_ids: &[String]) -> Result<()>;

    // alarms
    /// Raises `alarm` (an alarm id on an entity) with a `set` event, in one transaction. If
    /// that alarm is active already it is kept (its uuid and time), its severity, reason and
    /// management flag updated and a `set` event recorded only if they changed. Returns the
    /// active alarm and whether anything changed.
    async fn raise_alarm(&self, alarm: &AlarmRecord) -> Result<(AlarmRecord, bool)>;
    /// Clears the alarm with a `clear` event by `by`, in one transaction; None if it was not
    /// active.
    async fn clear_alarm(
        &self,
        alarm_id: &str,
        entity: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<Option<AlarmRecord>>;
    /// Active alarms, oldest first.
    async fn alarms(&self) -> Result<Vec<AlarmRecord>>;
    async fn alarm(&self, uuid: &str) -> Result<Option<AlarmRecord>>;
    /// The newest `limit` events, newest first.
    async fn alarm_events(&self, limit: u32) -> Result<Vec<AlarmEvent>>;

    // controllers
    /// The controller a swact last made active, if any.
    async fn active_controller(&self) -> Result<Option<String>>;
    /// Records `hostname` as the active controller if the recorded one is still `expected`
    /// (a compare-and-set, so two swacts at once cannot both win); false if it changed.
    async fn set_active_controller(&self, expected: Option<&str>, hostname: &str) -> Result<bool>;
}

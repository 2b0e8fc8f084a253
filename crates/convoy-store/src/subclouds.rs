//! What a System Controller keeps of its subclouds and their groups: its own trait, so that
//! the site's [`crate::Store`] stays as it is for a convoyd that has no subclouds.

use async_trait::async_trait;
use convoy_core::subcloud::{ApplyType, Availability, Management, Reference, SyncStatus};
use jiff::Timestamp;

use crate::{AlarmRecord, Result};

/// A subcloud group, with how many subclouds are in it.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub update_apply_type: ApplyType,
    pub max_parallel_subclouds: i64,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub subcloud_count: i64,
}

/// A group to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    pub name: String,
    pub description: String,
    pub update_apply_type: ApplyType,
    pub max_parallel_subclouds: i64,
    pub created_at: Timestamp,
}

/// Changes to a group; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub update_apply_type: Option<ApplyType>,
    pub max_parallel_subclouds: Option<i64>,
}

/// What [`SubcloudStore::delete_group`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDeletion {
    Deleted,
    NotFound,
    /// Refused: subclouds are in it.
    NotEmpty,
}

/// A subcloud and its endpoints' sync statuses (sorted by endpoint type).
#[derive(Debug, Clone, PartialEq)]
pub struct SubcloudRecord {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub group_id: i64,
    pub management: Management,
    pub availability: Availability,
    pub deploy_status: String,
    pub software_version: Option<String>,
    pub address: String,
    pub tls_fingerprint: Option<String>,
    pub service_user: String,
    /// The service account's password: a secret, never logged or answered.
    pub service_password: String,
    pub bootstrap_values: Option<String>,
    pub failed_audits: u32,
    /// The last audit's observations (JSON), if any.
    pub audit: Option<String>,
    pub audited_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
    pub endpoints: Vec<(String, SyncStatus)>,
    /// Why the last strategy step on it failed; None: no errors present.
    pub error_description: Option<String>,
    /// `prestaging`, `complete` or `failed`; None until a prestage runs (or after a skip).
    pub prestage_status: Option<String>,
    /// The software versions prestaged, `24.09,25.09`.
    pub prestage_versions: Option<String>,
    /// The request of a prestage of this subcloud alone while it runs (JSON; holds the
    /// sysadmin password: never logged or answered).
    pub prestage_request: Option<String>,
}

/// A write of a subcloud's prestage fields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PrestageWrite {
    /// The new status (None clears it).
    pub status: Option<String>,
    /// The new versions; None leaves them.
    pub versions: Option<String>,
    /// The standalone request (None clears it).
    pub request: Option<String>,
    /// Written only while the status is this (None is "never prestaged"); always if unset.
    pub when: Option<Option<String>>,
}

/// A subcloud to register.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubcloud {
    pub name: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub group_id: i64,
    pub deploy_status: String,
    pub software_version: Option<String>,
    pub address: String,
    pub tls_fingerprint: Option<String>,
    pub service_user: String,
    pub service_password: String,
    pub bootstrap_values: Option<String>,
    /// Endpoint types, each created `unknown`.
    pub endpoints: Vec<String>,
    pub created_at: Timestamp,
}

/// Changes to a subcloud; None leaves a field as it is. A change of management to unmanaged
/// sets every endpoint `unknown` in the same transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubcloudChanges {
    pub description: Option<String>,
    pub location: Option<String>,
    pub group_id: Option<i64>,
    pub management: Option<Management>,
    /// Set by the System Controller's strategies (`complete`, `sw-deploy-in-progress`,
    /// `sw-deploy-apply-strategy-failed`).
    pub deploy_status: Option<String>,
    pub software_version: Option<String>,
    pub updated_at: Option<Timestamp>,
}

/// What [`SubcloudStore::delete_subcloud`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubcloudDeletion {
    Deleted,
    NotFound,
    /// Refused: it is managed.
    Managed,
}

/// One audit's result for one subcloud, written in one transaction with the alarms it raises
/// and clears.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditWrite {
    pub availability: Availability,
    pub failed_audits: u32,
    /// Set when the audit read it.
    pub software_version: Option<String>,
    pub audit: Option<String>,
    pub audited_at: Timestamp,
    /// The management state the audit assumed: endpoint statuses are written only if the
    /// subcloud is still in it (an unmanage during the audit wins).
    pub assumed_management: Management,
    pub endpoints: Vec<(String, SyncStatus)>,
    pub raise: Vec<AlarmRecord>,
    /// (alarm id, entity) pairs to clear.
    pub clear: Vec<(String, String)>,
}

#[async_trait]
pub trait SubcloudStore: Send + Sync + 'static {
    async fn groups(&self) -> Result<Vec<GroupRecord>>;
    async fn group(&self, reference: &Reference) -> Result<Option<GroupRecord>>;
    /// Fails with `Conflict` if the name is taken.
    async fn insert_group(&self, group: &NewGroup) -> Result<GroupRecord>;
    /// None if there is no such group; `Conflict` if the new name is taken.
    async fn update_group(
        &self,
        id: i64,
        changes: &GroupChanges,
        now: Timestamp,
    ) -> Result<Option<GroupRecord>>;
    /// Deletes an empty group; the check and the deletion are one transaction.
    async fn delete_group(&self, id: i64) -> Result<GroupDeletion>;

    /// Every subcloud, by id.
    async fn subclouds(&self) -> Result<Vec<SubcloudRecord>>;
    async fn subcloud(&self, reference: &Reference) -> Result<Option<SubcloudRecord>>;
    /// The subclouds of these names that exist, by id: one read for many.
    async fn subclouds_named(&self, names: &[String]) -> Result<Vec<SubcloudRecord>>;
    /// Subclouds of one group, by id.
    async fn subclouds_in_group(&self, group_id: i64) -> Result<Vec<SubcloudRecord>>;
    /// Registers a subcloud, `unmanaged` and `offline`, with its endpoints `unknown`. Fails
    /// with `Conflict` if the name is taken and `Refused` if the group does not exist.
    async fn insert_subcloud(&self, subcloud: &NewSubcloud) -> Result<SubcloudRecord>;
    /// None if there is no such subcloud; `Refused` if the group does not exist.
    async fn update_subcloud(
        &self,
        id: i64,
        changes: &SubcloudChanges,
    ) -> Result<Option<SubcloudRecord>>;
    /// Sets a subcloud's deploy status, and its software version if given, at `at`: one
    /// statement, nothing read back (a strategy step sets them on thousands of subclouds).
    /// False if there is no such subcloud.
    async fn set_deploy_status(
        &self,
        id: i64,
        deploy_status: &str,
        software_version: Option<&str>,
        at: Timestamp,
    ) -> Result<bool>;
    /// Deletes an unmanaged subcloud and clears (by `convoy`, at `now`) every alarm about it
    /// (`alarm_entity` and every entity below it), in one transaction.
    async fn delete_subcloud(
        &self,
        id: i64,
        alarm_entity: &str,
        now: Timestamp,
    ) -> Result<SubcloudDeletion>;
    /// Sets the error description of the subcloud named `name` (None clears it).
    async fn set_error_description(&self, name: &str, description: Option<&str>) -> Result<()>;
    /// Clears the error description of every subcloud named, in one statement.
    async fn clear_error_descriptions(&self, names: &[String]) -> Result<()>;
    /// Writes a subcloud's prestage fields; false if it is gone or `write.when` did not hold.
    async fn set_prestage(&self, id: i64, write: &PrestageWrite) -> Result<bool>;
    /// Writes an audit's result; false if the subcloud is gone.
    async fn record_audit(&self, id: i64, write: &AuditWrite) -> Result<bool>;

    /// Identity sync, on the subcloud's side: creates or overwrites each user (role and
    /// password hash; a new one created at its `created_at`) in one transaction; returns how
    /// many were created or changed. Users not listed are kept. `Refused` (nothing changed) if
    /// it would leave no admin.
    async fn sync_users(&self, users: &[crate::UserRecord]) -> Result<u32>;
}

//! [`SubcloudStore`] on SQLite.

use async_trait::async_trait;
use convoy_core::subcloud::{Management, Reference, SyncStatus};
use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{SqliteStore, alarm_from, conflict, insert_alarm_event, millis, opt_time, parse, time};
use crate::subclouds::{
    AuditWrite, GroupChanges, GroupDeletion, GroupRecord, NewGroup, NewSubcloud, PrestageWrite,
    SubcloudChanges, SubcloudDeletion, SubcloudRecord, SubcloudStore,
};
use crate::{Result, StoreError};

const GROUP_SELECT: &str = "SELECT g.*, (SELECT COUNT(*) FROM subclouds s WHERE s.group_id = g.id) \
     AS subcloud_count FROM subcloud_groups g";

fn group_from(row: &SqliteRow) -> Result<GroupRecord> {
    Ok(GroupRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        update_apply_type: parse(
            "subcloud_groups",
            row.try_get::<&str, _>("update_apply_type")?,
        )?,
        max_parallel_subclouds: row.try_get("max_parallel_subclouds")?,
        created_at: opt_time("subcloud_groups", row.try_get("created_at")?)?,
        updated_at: opt_time("subcloud_groups", row.try_get("updated_at")?)?,
        subcloud_count: row.try_get("subcloud_count")?,
    })
}

fn subcloud_from(row: &SqliteRow, endpoints: Vec<(String, SyncStatus)>) -> Result<SubcloudRecord> {
    const T: &str = "subclouds";
    Ok(SubcloudRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        location: row.try_get("location")?,
        group_id: row.try_get("group_id")?,
        management: parse(T, row.try_get::<&str, _>("management")?)?,
        availability: parse(T, row.try_get::<&str, _>("availability")?)?,
        deploy_status: row.try_get("deploy_status")?,
        software_version: row.try_get("software_version")?,
        address: row.try_get("address")?,
        tls_fingerprint: row.try_get("tls_fingerprint")?,
        service_user: row.try_get("service_user")?,
        service_password: row.try_get("service_password")?,
        bootstrap_values: row.try_get("bootstrap_values")?,
        failed_audits: row.try_get::<i64, _>("failed_audits")? as u32,
        audit: row.try_get("audit")?,
        audited_at: opt_time(T, row.try_get("audited_at")?)?,
        created_at: time(T, row.try_get("created_at")?)?,
        updated_at: opt_time(T, row.try_get("updated_at")?)?,
        endpoints,
        error_description: row.try_get("error_description")?,
        prestage_status: row.try_get("prestage_status")?,
        prestage_versions: row.try_get("prestage_versions")?,
        prestage_request: row.try_get("prestage_request")?,
    })
}

fn reference_clause(reference: &Reference) -> (&'static str, ReferenceValue) {
    match reference {
        Reference::Id(id) => ("id = $1", ReferenceValue::Id(*id)),
        Reference::Name(name) => ("name = $1", ReferenceValue::Name(name.clone())),
    }
}

enum ReferenceValue {
    Id(i64),
    Name(String),
}

impl SqliteStore {
    /// Subclouds matching `clause` (with `$1` bound to `bind`), with their endpoints.
    async fn select_subclouds(
        &self,
        clause: &str,
        bind: Option<ReferenceValue>,
    ) -> Result<Vec<SubcloudRecord>> {
        let sql = format!("SELECT * FROM subclouds {clause} ORDER BY id");
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match &bind {
            Some(ReferenceValue::Id(id)) => query.bind(*id),
            Some(ReferenceValue::Name(name)) => query.bind(name.clone()),
            None => query,
        };
        // Rows are read as a stream and made records one at a time: SQLite copies each
        // value of a row it hands out (in the C allocator), so reading 10,000 subclouds at
        // once held all their copies beside the records. The endpoints come first (one query
        // for every subcloud selected), so each subcloud is whole as it is read.
        let endpoint_sql = format!(
            "SELECT subcloud_id, endpoint_type, sync_status FROM subcloud_endpoints \
             WHERE subcloud_id IN (SELECT id FROM subclouds {clause}) \
             ORDER BY subcloud_id, endpoint_type"
        );
        let endpoint_query = sqlx::query(sqlx::AssertSqlSafe(endpoint_sql));
        let endpoint_query = match &bind {
            Some(ReferenceValue::Id(id)) => endpoint_query.bind(*id),
            Some(ReferenceValue::Name(name)) => endpoint_query.bind(name.clone()),
            None => endpoint_query,
        };
        let mut endpoints: std::collections::HashMap<i64, Vec<(String, SyncStatus)>> =
            std::collections::HashMap::new();
        let mut endpoint_rows = endpoint_query.fetch(&self.reader);
        while let Some(row) = endpoint_rows.try_next().await? {
            endpoints
                .entry(row.try_get("subcloud_id")?)
                .or_default()
                .push((
                    row.try_get("endpoint_type")?,
                    parse("subcloud_endpoints", row.try_get::<&str, _>("sync_status")?)?,
                ));
        }
        drop(endpoint_rows);
        let mut records = vec![];
        let mut rows = query.fetch(&self.reader);
        while let Some(row) = rows.try_next().await? {
            let id: i64 = row.try_get("id")?;
            records.push(subcloud_from(
                &row,
                endpoints.remove(&id).unwrap_or_default(),
            )?);
        }
        Ok(records)
    }
}

fn missing_group(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Refused {
            reason: "Invalid group".into(),
        },
        _ => StoreError::Database(error),
    }
}

#[async_trait]
impl SubcloudStore for SqliteStore {
    async fn groups(&self) -> Result<Vec<GroupRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{GROUP_SELECT} ORDER BY g.id")))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(group_from).collect()
    }

    async fn group(&self, reference: &Reference) -> Result<Option<GroupRecord>> {
        let (clause, value) = reference_clause(reference);
        let sql = format!("{GROUP_SELECT} WHERE g.{clause}");
        let query = sqlx::query(sqlx::AssertSqlSafe(sql));
        let query = match value {
            ReferenceValue::Id(id) => query.bind(id),
            ReferenceValue::Name(name) => query.bind(name),
        };
        let row = query.fetch_optional(&self.reader).await?;
        row.as_ref().map(group_from).transpose()
    }

    async fn insert_group(&self, group: &NewGroup) -> Result<GroupRecord> {
        let id: i64 = sqlx::query(
            "INSERT INTO subcloud_groups (name, description, update_apply_type, \
               max_parallel_subclouds, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&group.name)
        .bind(&group.description)
        .bind(group.update_apply_type.as_str())
        .bind(group.max_parallel_subclouds)
        .bind(millis(group.created_at))
        .fetch_one(&self.writer)
        .await
        .map_err(|e| conflict(e, format!("subcloud group {:?}", group.name)))?
        .try_get("id")?;
        self.group_written(id).await
    }

    async fn update_group(
        &self,
        id: i64,
        changes: &GroupChanges,
        now: Timestamp,
    ) -> Result<Option<GroupRecord>> {
        let done = sqlx::query(
            "UPDATE subcloud_groups SET name = COALESCE($2, name), \
               description = COALESCE($3, description), \
               update_apply_type = COALESCE($4, update_apply_type), \
               max_parallel_subclouds = COALESCE($5, max_parallel_subclouds), \
               updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(&changes.name)
        .bind(&changes.description)
        .bind(changes.update_apply_type.map(|t| t.as_str()))
        .bind(changes.max_parallel_subclouds)
        .bind(millis(now))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, "subcloud group"))?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        self.group_written(id).await.map(Some)
    }

    async fn delete_group(&self, id: i64) -> Result<GroupDeletion> {
        let mut tx = self.writer.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM subcloud_groups WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if !exists {
            return Ok(GroupDeletion::NotFound);
        }
        let members: i64 = sqlx::query("SELECT COUNT(*) AS n FROM subclouds WHERE group_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if members > 0 {
            return Ok(GroupDeletion::NotEmpty);
        }
        sqlx::query("DELETE FROM subcloud_groups WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(GroupDeletion::Deleted)
    }

    async fn subclouds(&self) -> Result<Vec<SubcloudRecord>> {
        self.select_subclouds("", None).await
    }

    async fn subclouds_named(&self, names: &[String]) -> Result<Vec<SubcloudRecord>> {
        let names = serde_json::Value::from(names.to_vec()).to_string();
        // The names travel as one JSON array (bound as text): any number in one statement.
        self.select_subclouds(
            "WHERE name IN (SELECT value FROM json_each($1))",
            Some(ReferenceValue::Name(names)),
        )
        .await
    }

    async fn subcloud(&self, reference: &Reference) -> Result<Option<SubcloudRecord>> {
        let (clause, value) = reference_clause(reference);
        Ok(self
            .select_subclouds(&format!("WHERE {clause}"), Some(value))
            .await?
            .pop())
    }

    async fn subclouds_in_group(&self, group_id: i64) -> Result<Vec<SubcloudRecord>> {
        self.select_subclouds("WHERE group_id = $1", Some(ReferenceValue::Id(group_id)))
            .await
    }

    async fn insert_subcloud(&self, s: &NewSubcloud) -> Result<SubcloudRecord> {
        let mut tx = self.writer.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO subclouds (name, description, location, group_id, management, \
               availability, deploy_status, software_version, address, tls_fingerprint, \
               service_user, service_password, bootstrap_values, created_at) \
             VALUES ($1, $2, $3, $4, 'unmanaged', 'offline', $5, $6, $7, $8, $9, $10, $11, $12) \
             RETURNING id",
        )
        .bind(&s.name)
        .bind(&s.description)
        .bind(&s.location)
        .bind(s.group_id)
        .bind(&s.deploy_status)
        .bind(&s.software_version)
        .bind(&s.address)
        .bind(&s.tls_fingerprint)
        .bind(&s.service_user)
        .bind(&s.service_password)
        .bind(&s.bootstrap_values)
        .bind(millis(s.created_at))
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => missing_group(e),
            _ => conflict(e, format!("subcloud {:?}", s.name)),
        })?
        .try_get("id")?;
        for endpoint in &s.endpoints {
            sqlx::query(
                "INSERT INTO subcloud_endpoints (subcloud_id, endpoint_type, sync_status) \
                 VALUES ($1, $2, 'unknown')",
            )
            .bind(id)
            .bind(endpoint)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.subcloud_written(id).await
    }

    async fn update_subcloud(
        &self,
        id: i64,
        changes: &SubcloudChanges,
    ) -> Result<Option<SubcloudRecord>> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "UPDATE subclouds SET description = COALESCE($2, description), \
               location = COALESCE($3, location), group_id = COALESCE($4, group_id), \
               management = COALESCE($5, management), \
               updated_at = COALESCE($6, updated_at), \
               deploy_status = COALESCE($7, deploy_status), \
               software_version = COALESCE($8, software_version) WHERE id = $1",
        )
        .bind(id)
        .bind(&changes.description)
        .bind(&changes.location)
        .bind(changes.group_id)
        .bind(changes.management.map(|m| m.as_str()))
        .bind(changes.updated_at.map(millis))
        .bind(&changes.deploy_status)
        .bind(&changes.software_version)
        .execute(&mut *tx)
        .await
        .map_err(missing_group)?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if changes.management == Some(Management::Unmanaged) {
            sqlx::query(
                "UPDATE subcloud_endpoints SET sync_status = 'unknown' WHERE subcloud_id = $1",
            )
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.subcloud_written(id).await.map(Some)
    }

    async fn set_error_description(&self, name: &str, description: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE subclouds SET error_description = $2 WHERE name = $1")
            .bind(name)
            .bind(description)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn clear_error_descriptions(&self, names: &[String]) -> Result<()> {
        let names = serde_json::to_string(names).map_err(|e| StoreError::Corrupt {
            table: "subclouds",
            reason: e.to_string(),
        })?;
        sqlx::query(
            "UPDATE subclouds SET error_description = NULL \
             WHERE name IN (SELECT value FROM json_each($1))",
        )
        .bind(names)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn set_prestage(&self, id: i64, write: &PrestageWrite) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE subclouds SET prestage_status = $2, \
               prestage_versions = COALESCE($3, prestage_versions), prestage_request = $4 \
             WHERE id = $1 AND ($5 = 0 OR prestage_status IS $6)",
        )
        .bind(id)
        .bind(&write.status)
        .bind(&write.versions)
        .bind(&write.request)
        .bind(write.when.is_some())
        .bind(write.when.clone().flatten())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_deploy_status(
        &self,
        id: i64,
        deploy_status: &str,
        software_version: Option<&str>,
        at: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE subclouds SET deploy_status = $2, \
               software_version = COALESCE($3, software_version), updated_at = $4 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(deploy_status)
        .bind(software_version)
        .bind(millis(at))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_subcloud(
        &self,
        id: i64,
        alarm_entity: &str,
        now: Timestamp,
    ) -> Result<SubcloudDeletion> {
        let mut tx = self.writer.begin().await?;
        let management: Option<String> =
            sqlx::query("SELECT management FROM subclouds WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("management"))
                .transpose()?;
        match management.as_deref() {
            None => return Ok(SubcloudDeletion::NotFound),
            Some("managed") => return Ok(SubcloudDeletion::Managed),
            Some(_) => {}
        }
        sqlx::query("DELETE FROM subclouds WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // The subcloud's alarms and those below it (`subcloud=N.resource=software`).
        let cleared = sqlx::query(
            "DELETE FROM alarms WHERE entity = $1 OR substr(entity, 1, length($1) + 1) = $1 || '.' \
             RETURNING *",
        )
        .bind(alarm_entity)
        .fetch_all(&mut *tx)
        .await?;
        for row in &cleared {
            insert_alarm_event(&mut tx, &alarm_from(row)?, "clear", now, "convoy").await?;
        }
        tx.commit().await?;
        Ok(SubcloudDeletion::Deleted)
    }

    async fn record_audit(&self, id: i64, write: &AuditWrite) -> Result<bool> {
        let endpoints: Vec<serde_json::Value> = write
            .endpoints
            .iter()
            .map(|(endpoint, status)| {
                serde_json::json!({"endpoint": endpoint, "status": status.as_str()})
            })
            .collect();
        let raise: Vec<serde_json::Value> = write
            .raise
            .iter()
            .map(|a| {
                serde_json::json!({
                    "uuid": a.uuid,
                    "alarm_id": a.alarm_id,
                    "entity": a.entity,
                    "severity": a.severity.as_str(),
                    "reason": a.reason,
                    "mgmt_affecting": a.mgmt_affecting,
                    "raised_at": millis(a.raised_at),
                    "source": a.source,
                })
            })
            .collect();
        let clear: Vec<serde_json::Value> = write
            .clear
            .iter()
            .map(|(alarm_id, entity)| serde_json::json!({"alarm_id": alarm_id, "entity": entity}))
            .collect();
        let query = sqlx::query(RECORD_AUDIT)
            .bind(id)
            .bind(write.availability.as_str())
            .bind(i64::from(write.failed_audits))
            .bind(write.software_version.clone())
            .bind(write.audit.clone())
            .bind(millis(write.audited_at))
            .bind(serde_json::Value::Array(endpoints).to_string())
            .bind(write.assumed_management.as_str())
            .bind(serde_json::Value::Array(raise).to_string())
            .bind(serde_json::Value::Array(clear).to_string());
        // The query ends by restoring the pragma; if it stops before, that is done apart (a
        // connection that cannot is dropped, and a new one starts with FULL).
        let rows =
            super::on_writer(&self.writer, query, "ROLLBACK; PRAGMA synchronous = FULL").await?;
        let found: i64 = match rows.last() {
            Some(row) => row.try_get("found")?,
            None => 0,
        };
        Ok(found == 1)
    }

    async fn sync_users(&self, users: &[crate::UserRecord]) -> Result<u32> {
        let mut tx = self.writer.begin().await?;
        let mut changed = 0;
        for user in users {
            let done = sqlx::query(
                "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET role = excluded.role, \
                   password_hash = excluded.password_hash \
                 WHERE users.role != excluded.role OR users.password_hash != excluded.password_hash",
            )
            .bind(&user.name)
            .bind(user.role.as_str())
            .bind(&user.password_hash)
            .bind(millis(user.created_at))
            .execute(&mut *tx)
            .await?;
            changed += done.rows_affected() as u32;
        }
        let admins: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'admin'")
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        if admins == 0 {
            return Err(StoreError::Refused {
                reason: "the sync would leave the site without an admin".into(),
            });
        }
        tx.commit().await?;
        Ok(changed)
    }
}

impl SqliteStore {
    /// A group just written, read through the writer so the read sees the write.
    async fn group_written(&self, id: i64) -> Result<GroupRecord> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{GROUP_SELECT} WHERE g.id = $1"
        )))
        .bind(id)
        .fetch_one(&self.writer)
        .await?;
        group_from(&row)
    }

    async fn subcloud_written(&self, id: i64) -> Result<SubcloudRecord> {
        let row = sqlx::query("SELECT * FROM subclouds WHERE id = $1")
            .bind(id)
            .fetch_one(&self.writer)
            .await?;
        let endpoints = sqlx::query(
            "SELECT endpoint_type, sync_status FROM subcloud_endpoints WHERE subcloud_id = $1 \
             ORDER BY endpoint_type",
        )
        .bind(id)
        .fetch_all(&self.writer)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("endpoint_type")?,
                parse("subcloud_endpoints", row.try_get::<&str, _>("sync_status")?)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
        subcloud_from(&row, endpoints)
    }
}

/// An audit's result for subcloud $1, in one round trip to the writer's thread (a busy
/// System Controller sees thousands a cycle when subclouds change): its availability ($2),
/// failed audits ($3), software version ($4, if read), summary ($5, if read) at $6; its
/// endpoints' statuses ($7: `[{endpoint, status}]`) only if its management is still $8 (an
/// unmanage during the audit wins); the alarms to raise ($9), each with a `set` event unless
/// already active; the alarms to clear ($10: `[{alarm_id, entity}]`), each that was active
/// with a `clear` event. Nothing is written for a subcloud that is gone: `found` says which.
/// (Each statement looks alarms up by their `(alarm_id, entity)` index: a System Controller
/// holds an alarm or two for every subcloud out of sync.)
///
/// It is committed without an fsync (`synchronous = NORMAL`, which in WAL mode still syncs at
/// checkpoints, so the database stays whole): an audit is made again every cycle, and the
/// first cycle after a restart writes what a power loss took, where an fsync for each of
/// thousands of subclouds that change in a cycle would stand in the way of every other
/// commit. A crash of convoyd alone loses nothing: the commit is in the kernel's hands.
const RECORD_AUDIT: &str = "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE; \
    UPDATE subclouds SET availability = $2, failed_audits = $3, \
      software_version = COALESCE($4, software_version), audit = COALESCE($5, audit), \
      audited_at = $6 WHERE id = $1; \
    UPDATE subcloud_endpoints SET sync_status = j.value->>'status' \
      FROM json_each($7) AS j \
      WHERE subcloud_endpoints.subcloud_id = $1 \
        AND subcloud_endpoints.endpoint_type = j.value->>'endpoint' \
        AND (SELECT management FROM subclouds WHERE id = $1) = $8; \
    INSERT INTO alarm_events (uuid, alarm_id, entity, severity, reason, mgmt_affecting, \
        state, at, source) \
      SELECT j.value->>'uuid', j.value->>'alarm_id', j.value->>'entity', \
        j.value->>'severity', j.value->>'reason', j.value->>'mgmt_affecting', 'set', \
        j.value->>'raised_at', j.value->>'source' \
      FROM json_each($9) AS j \
      WHERE EXISTS (SELECT 1 FROM subclouds WHERE id = $1) \
        AND NOT EXISTS (SELECT 1 FROM alarms a \
          WHERE a.alarm_id = j.value->>'alarm_id' AND a.entity = j.value->>'entity'); \
    INSERT INTO alarms (uuid, alarm_id, entity, severity, reason, mgmt_affecting, \
        raised_at, source) \
      SELECT j.value->>'uuid', j.value->>'alarm_id', j.value->>'entity', \
        j.value->>'severity', j.value->>'reason', j.value->>'mgmt_affecting', \
        j.value->>'raised_at', j.value->>'source' \
      FROM json_each($9) AS j \
      WHERE EXISTS (SELECT 1 FROM subclouds WHERE id = $1) \
        AND NOT EXISTS (SELECT 1 FROM alarms a \
          WHERE a.alarm_id = j.value->>'alarm_id' AND a.entity = j.value->>'entity'); \
    INSERT INTO alarm_events (uuid, alarm_id, entity, severity, reason, mgmt_affecting, \
        state, at, source) \
      SELECT a.uuid, a.alarm_id, a.entity, a.severity, a.reason, a.mgmt_affecting, \
        'clear', $6, 'convoy' \
      FROM json_each($10) AS j JOIN alarms a \
        ON a.alarm_id = j.value->>'alarm_id' AND a.entity = j.value->>'entity' \
      WHERE EXISTS (SELECT 1 FROM subclouds WHERE id = $1); \
    DELETE FROM alarms \
      WHERE (alarm_id, entity) IN \
          (SELECT j.value->>'alarm_id', j.value->>'entity' FROM json_each($10) AS j) \
        AND EXISTS (SELECT 1 FROM subclouds WHERE id = $1); \
    SELECT EXISTS (SELECT 1 FROM subclouds WHERE id = $1) AS found; \
    COMMIT; PRAGMA synchronous = FULL";

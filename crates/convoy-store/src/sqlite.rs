//! The SQLite store: one file in the data directory, WAL journal, full fsync on commit.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use convoy_core::command::{Dispatch, due_for_delivery};
use convoy_core::host::{Administrative, HostFacts};
use jiff::{SignedDuration, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};

mod batch;
mod subclouds;

use crate::{
    AlarmEvent, AlarmRecord, ClusterRecord, CommandRecord, DeployRecord, EnrolAuthority,
    HostEffects, HostEnrolToken, HostEnrolment, HostRecord, PatchChanges, PatchRecord, PhaseRecord,
    ReportedCommand, Result, StepBatch, StepRecord, Store, StoreError, StrategyRecord, TokenOwner,
    UserDeletion, UserRecord,
};
use convoy_core::strategy::StrategyState;
use convoy_core::sw_update::release::DeployState;

/// The embedded default store.
///
/// Writes go through one connection, so they queue in the process instead of contending for
/// SQLite's lock (whose busy handler sleeps for milliseconds at a time); reads use a pool of
/// their own, which WAL lets run beside the writer.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or `sqlite:PATH`) and
    /// brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            return Err(StoreError::UnsupportedUrl {
                url: url.into(),
                reason: "this build of convoyd stores its data in SQLite; use sqlite://PATH".into(),
            });
        }
        let options = SqliteConnectOptions::from_str(url)?;
        // Password hashes and token hashes live here: readable by convoyd's user only. SQLite
        // gives its WAL and shared-memory files the database file's mode.
        private_file(options.get_filename())?;
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before the caller hears of it, even across power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // SQLite's page cache is per connection (2 MiB by default, nine connections) and
            // lives in the C allocator, which keeps what it freed per thread: a System
            // Controller listing 10,000 subclouds held tens of MiB of it. Reads that miss
            // the cache come from the kernel's page cache.
            .pragma("cache_size", format!("-{CACHE_KIB}"));
        // No ping before each use: a connection to a file in this process does not go
        // stale, and each ping is a round trip to the connection's worker thread (a thread
        // wake-up each way), as much as the statement it would precede.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { reader, writer })
    }
}

/// Each connection's page cache, KiB.
const CACHE_KIB: u32 = 512;

/// Creates the database file readable by its owner only, or makes an existing one so (with
/// its WAL files).
fn private_file(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
        return Ok(());
    }
    let failed = |e: std::io::Error| StoreError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .map_err(failed)?;
        }
    }
    Ok(())
}

/// A query that owns its arguments (so it can run in a task of its own).
type Query = sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

fn millis(t: Timestamp) -> i64 {
    t.as_millisecond()
}

fn time(table: &'static str, ms: i64) -> Result<Timestamp> {
    Timestamp::from_millisecond(ms).map_err(|e| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

fn opt_time(table: &'static str, ms: Option<i64>) -> Result<Option<Timestamp>> {
    ms.map(|ms| time(table, ms)).transpose()
}

fn parse<T: FromStr>(table: &'static str, value: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e: T::Err| StoreError::Corrupt {
        table,
        reason: e.to_string(),
    })
}

fn conflict(error: sqlx::Error, what: impl Into<String>) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict { what: what.into() }
        }
        _ => StoreError::Database(error),
    }
}

fn user_from(row: &SqliteRow) -> Result<UserRecord> {
    Ok(UserRecord {
        name: row.try_get("name")?,
        role: parse("users", row.try_get::<&str, _>("role")?)?,
        password_hash: row.try_get("password_hash")?,
        created_at: time("users", row.try_get("created_at")?)?,
    })
}

fn host_from(row: &SqliteRow) -> Result<HostRecord> {
    Ok(HostRecord {
        hostname: row.try_get("hostname")?,
        personality: parse("hosts", row.try_get::<&str, _>("personality")?)?,
        zone: row.try_get("zone")?,
        pod: row.try_get("pod")?,
        cluster: row.try_get("cluster")?,
        administrative: parse("hosts", row.try_get::<&str, _>("administrative")?)?,
        facts: HostFacts {
            capacity_cpus: row.try_get::<i64, _>("capacity_cpus")? as u32,
            capacity_memory_mib: row.try_get::<i64, _>("capacity_memory_mib")? as u64,
            load_cpus: row.try_get("load_cpus")?,
            load_memory_mib: row.try_get::<i64, _>("load_memory_mib")? as u64,
            boot_id: row.try_get("boot_id")?,
            os: row.try_get("os")?,
            agent_version: row.try_get("agent_version")?,
            state_fs_free_bytes: row.try_get::<i64, _>("state_fs_free_bytes")? as u64,
            maintenance: row.try_get("maintenance")?,
            software: serde_json::from_str(row.try_get::<&str, _>("software")?).map_err(|e| {
                StoreError::Corrupt {
                    table: "hosts",
                    reason: format!("software: {e}"),
                }
            })?,
            instances: serde_json::from_str(row.try_get::<&str, _>("instances")?).map_err(|e| {
                StoreError::Corrupt {
                    table: "hosts",
                    reason: format!("instances: {e}"),
                }
            })?,
        },
        last_seen: opt_time("hosts", row.try_get("last_seen")?)?,
        enrolled_at: time("hosts", row.try_get("enrolled_at")?)?,
    })
}

fn command_from(row: &SqliteRow) -> Result<CommandRecord> {
    Ok(CommandRecord {
        id: row.try_get("id")?,
        hostname: row.try_get("hostname")?,
        kind: parse("commands", row.try_get::<&str, _>("kind")?)?,
        payload: row.try_get("payload")?,
        created_at: time("commands", row.try_get("created_at")?)?,
        dispatched_at: opt_time("commands", row.try_get("dispatched_at")?)?,
        dispatched_session: row.try_get("dispatched_session")?,
        completed_at: opt_time("commands", row.try_get("completed_at")?)?,
        outcome: row.try_get("outcome")?,
    })
}

fn instances_json(instances: &[String]) -> Result<String> {
    serde_json::to_string(instances).map_err(|e| StoreError::Corrupt {
        table: "hosts",
        reason: format!("instances: {e}"),
    })
}

fn software_json(software: &convoy_core::patch::HostSoftware) -> Result<String> {
    serde_json::to_string(software).map_err(|e| StoreError::Corrupt {
        table: "hosts",
        reason: format!("software: {e}"),
    })
}

fn patch_from(row: &SqliteRow) -> Result<PatchRecord> {
    Ok(PatchRecord {
        id: row.try_get("id")?,
        metadata: row.try_get("metadata")?,
        repo_state: parse("patches", row.try_get::<&str, _>("repo_state")?)?,
        file_name: row.try_get("file_name")?,
        size: row.try_get::<i64, _>("size")? as u64,
        sha256: row.try_get("sha256")?,
        uploaded_at: time("patches", row.try_get("uploaded_at")?)?,
        updated_at: time("patches", row.try_get("updated_at")?)?,
    })
}

fn strategy_from(row: &SqliteRow) -> Result<StrategyRecord> {
    Ok(StrategyRecord {
        id: row.try_get("id")?,
        kind: parse("strategy", row.try_get::<&str, _>("kind")?)?,
        state: parse("strategy", row.try_get::<&str, _>("state")?)?,
        max_parallel: row.try_get::<i64, _>("max_parallel")? as u32,
        stop_on_failure: row.try_get("stop_on_failure")?,
        options: row.try_get("options")?,
        stop_at_stage: row
            .try_get::<Option<i64>, _>("stop_at_stage")?
            .map(|s| s as u32),
        details: row.try_get("details")?,
        created_at: time("strategy", row.try_get("created_at")?)?,
        updated_at: time("strategy", row.try_get("updated_at")?)?,
    })
}

fn step_from(row: &SqliteRow) -> Result<StepRecord> {
    Ok(StepRecord {
        target: row.try_get("target")?,
        position: row.try_get::<i64, _>("position")? as u32,
        stage: row.try_get::<i64, _>("stage")? as u32,
        group: row.try_get("grp")?,
        state: row.try_get("state")?,
        swept: row.try_get("swept")?,
        details: row.try_get("details")?,
        pending_end: row.try_get("pending_end")?,
        command_id: row.try_get("command_id")?,
        phase_started_at: opt_time("strategy_steps", row.try_get("phase_started_at")?)?,
        started_at: opt_time("strategy_steps", row.try_get("started_at")?)?,
        finished_at: opt_time("strategy_steps", row.try_get("finished_at")?)?,
        created_at: time("strategy_steps", row.try_get("created_at")?)?,
        updated_at: time("strategy_steps", row.try_get("updated_at")?)?,
    })
}

fn phase_from(row: &SqliteRow) -> Result<PhaseRecord> {
    Ok(PhaseRecord {
        target: row.try_get("target")?,
        phase: row.try_get("phase")?,
        started_at: time("step_phases", row.try_get("started_at")?)?,
        finished_at: opt_time("step_phases", row.try_get("finished_at")?)?,
        result: row.try_get("result")?,
        details: row.try_get("details")?,
        output: row.try_get("output")?,
    })
}

fn cluster_from(row: &SqliteRow) -> Result<ClusterRecord> {
    Ok(ClusterRecord {
        name: row.try_get("name")?,
        enabled: row.try_get::<&str, _>("state")? == "enabled",
        disabled_by: row.try_get("disabled_by")?,
        updated_at: time("clusters", row.try_get("updated_at")?)?,
    })
}

/// Runs a query that leaves the writer connection in a state of its own until its last
/// statement (a transaction, a pragma) restores it: on an error `recovery` restores it
/// instead, and a connection that cannot be restored is closed. In a task of its own, so that
/// a caller dropped half-way (a request cut off) cannot stop it in between.
async fn on_writer(
    writer: &SqlitePool,
    query: Query,
    recovery: &'static str,
) -> sqlx::Result<Vec<SqliteRow>> {
    let writer = writer.clone();
    let task = tokio::spawn(async move {
        let mut connection = writer.acquire().await?;
        let e = match query.fetch_all(&mut *connection).await {
            Ok(rows) => return Ok(rows),
            Err(e) => e,
        };
        if sqlx::query(recovery)
            .execute(&mut *connection)
            .await
            .is_err()
        {
            let _ = connection.detach();
        }
        Err(e)
    });
    task.await
        .map_err(|e| sqlx::Error::Protocol(format!("a write task failed: {e}")))?
}

/// Marks commands (`$1`: `[{id, dispatched_at}]`, the mark each was read with) as delivered
/// at `$2` to `$3`: a compare-and-set, so two concurrent polls never both take the same
/// delivery; returns the ids this query took. A delivery mark need not survive a crash
/// (deliveries belong to one run of convoyd: after a restart every unfinished command is
/// handed out again), so it is committed without an fsync; the pragmas travel in the query,
/// which is one round trip to the writer's thread.
const MARK_DISPATCHED: &str = "PRAGMA synchronous = OFF; \
    UPDATE commands SET dispatched_at = $2, dispatched_session = $3 \
      FROM json_each($1) AS j \
      WHERE commands.id = j.value->>'id' AND commands.completed_at IS NULL \
        AND commands.dispatched_at IS j.value->>'dispatched_at' \
      RETURNING commands.id; \
    PRAGMA synchronous = FULL";

#[async_trait]
impl Store for SqliteStore {
    async fn insert_user(&self, user: &UserRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (name, role, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(millis(user.created_at))
        .execute(&self.writer)
        .await
        .map_err(|e| conflict(e, format!("user {:?}", user.name)))?;
        Ok(())
    }

    async fn user(&self, name: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(user_from).transpose()
    }

    async fn users(&self) -> Result<Vec<UserRecord>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(user_from).collect()
    }

    async fn delete_user(&self, name: &str) -> Result<UserDeletion> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query(
            "DELETE FROM users WHERE name = $1 AND (role <> 'admin' OR EXISTS \
               (SELECT 1 FROM users WHERE role = 'admin' AND name <> $1))",
        )
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let outcome = if done.rows_affected() > 0 {
            UserDeletion::Deleted
        } else if sqlx::query("SELECT 1 FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            UserDeletion::LastAdmin
        } else {
            UserDeletion::NotFound
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn insert_token(
        &self,
        token_hash: &str,
        user_name: &str,
        issued_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO tokens (token_hash, user_name, issued_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_name)
        .bind(millis(issued_at))
        .bind(millis(expires_at))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn token_owner(&self, token_hash: &str) -> Result<Option<TokenOwner>> {
        let row = sqlx::query(
            "SELECT u.*, t.expires_at AS token_expires_at FROM tokens t \
             JOIN users u ON u.name = t.user_name WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok(TokenOwner {
                user: user_from(&row)?,
                expires_at: time("tokens", row.try_get("token_expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn revoke_token(&self, token_hash: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM tokens WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn purge_expired_tokens(&self, now: Timestamp) -> Result<u64> {
        let done = sqlx::query("DELETE FROM tokens WHERE expires_at < $1")
            .bind(millis(now))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn enrol_host(&self, e: &HostEnrolment) -> Result<HostRecord> {
        let mut tx = self.writer.begin().await?;
        // The site token only ever inserts: a known hostname is a unique violation.
        let upsert = match &e.authority {
            EnrolAuthority::SiteToken => "",
            EnrolAuthority::HostToken { token_hash } => {
                let used = sqlx::query(
                    "DELETE FROM host_enrol_tokens \
                     WHERE token_hash = $1 AND hostname = $2 AND expires_at > $3 RETURNING hostname",
                )
                .bind(token_hash)
                .bind(&e.hostname)
                .bind(millis(e.now))
                .fetch_optional(&mut *tx)
                .await?;
                if used.is_none() {
                    return Err(StoreError::Refused {
                        reason: format!(
                            "the enrolment token is not valid for host {:?}: it is for another \
                             host, expired or already used",
                            e.hostname
                        ),
                    });
                }
                "ON CONFLICT (hostname) DO UPDATE SET \
                   personality = excluded.personality, zone = excluded.zone, pod = excluded.pod, \
                   cluster = excluded.cluster, credential_hash = excluded.credential_hash, \
                   capacity_cpus = excluded.capacity_cpus, \
                   capacity_memory_mib = excluded.capacity_memory_mib, \
                   load_cpus = excluded.load_cpus, load_memory_mib = excluded.load_memory_mib, \
                   boot_id = excluded.boot_id, os = excluded.os, \
                   agent_version = excluded.agent_version, \
                   state_fs_free_bytes = excluded.state_fs_free_bytes, last_seen = excluded.last_seen, \
                   maintenance = excluded.maintenance, software = excluded.software, \
                   instances = excluded.instances "
            }
        };
        let query = format!(
            "INSERT INTO hosts (hostname, personality, zone, pod, cluster, administrative, \
               credential_hash, capacity_cpus, capacity_memory_mib, load_cpus, load_memory_mib, \
               boot_id, os, agent_version, state_fs_free_bytes, last_seen, enrolled_at, maintenance, \
               software, instances) \
             VALUES ($1, $2, $3, $4, $5, 'unlocked', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, \
               $16, $17, $18) \
             {upsert}RETURNING *"
        );
        // The only part put in is one of the two static clauses above.
        let row = sqlx::query(sqlx::AssertSqlSafe(query))
            .bind(&e.hostname)
            .bind(e.personality.as_str())
            .bind(&e.zone)
            .bind(&e.pod)
            .bind(&e.cluster)
            .bind(&e.credential_hash)
            .bind(i64::from(e.facts.capacity_cpus))
            .bind(e.facts.capacity_memory_mib as i64)
            .bind(e.facts.load_cpus)
            .bind(e.facts.load_memory_mib as i64)
            .bind(&e.facts.boot_id)
            .bind(&e.facts.os)
            .bind(&e.facts.agent_version)
            .bind(e.facts.state_fs_free_bytes as i64)
            .bind(millis(e.now))
            .bind(e.facts.maintenance)
            .bind(software_json(&e.facts.software)?)
            .bind(instances_json(&e.facts.instances)?)
            .fetch_one(&mut *tx)
            .await
            .map_err(|err| conflict(err, format!("host {:?}", e.hostname)))?;
        let host = host_from(&row)?;
        tx.commit().await?;
        Ok(host)
    }

    async fn insert_host_enrol_token(&self, token: &HostEnrolToken) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM host_enrol_tokens WHERE hostname = $1")
            .bind(&token.hostname)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO host_enrol_tokens (token_hash, hostname, created_at, expires_at, created_by) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&token.token_hash)
        .bind(&token.hostname)
        .bind(millis(token.created_at))
        .bind(millis(token.expires_at))
        .bind(&token.created_by)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn host(&self, hostname: &str) -> Result<Option<HostRecord>> {
        let row = sqlx::query("SELECT * FROM hosts WHERE hostname = $1")
            .bind(hostname)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(host_from).transpose()
    }

    async fn host_by_credential(&self, credential_hash: &str) -> Result<Option<HostRecord>> {
        let row = sqlx::query("SELECT * FROM hosts WHERE credential_hash = $1")
            .bind(credential_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(host_from).transpose()
    }

    async fn hosts(&self) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query("SELECT * FROM hosts ORDER BY hostname")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(host_from).collect()
    }

    async fn undeliver(&self, ids: &[String]) -> Result<()> {
        sqlx::query(
            "UPDATE commands SET dispatched_at = NULL, dispatched_session = NULL \
             WHERE id IN (SELECT value FROM json_each($1)) AND completed_at IS NULL",
        )
        .bind(serde_json::to_string(ids).map_err(|e| StoreError::Corrupt {
            table: "commands",
            reason: e.to_string(),
        })?)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn cluster_of(&self, hostname: &str) -> Result<Vec<HostRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM hosts WHERE cluster IS (SELECT cluster FROM hosts WHERE hostname = $1) \
               AND EXISTS (SELECT 1 FROM hosts WHERE hostname = $1) \
             ORDER BY hostname",
        )
        .bind(hostname)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(host_from).collect()
    }

    async fn record_heartbeat(&self, hostname: &str, f: &HostFacts, now: Timestamp) -> Result<()> {
        // Every heartbeat carries the whole of the host's facts, so one a crash loses is
        // replaced by the next within a ping interval: not worth an fsync, which 200 agents
        // every 5 s would put in the way of the strategy's commits.
        // One round trip: the pragmas travel in the query.
        let query = sqlx::query(
            "PRAGMA synchronous = OFF; \
             UPDATE hosts SET capacity_cpus = $2, capacity_memory_mib = $3, load_cpus = $4, \
               load_memory_mib = $5, boot_id = $6, os = $7, agent_version = $8, \
               state_fs_free_bytes = $9, last_seen = $10, software = $11, instances = $12 \
             WHERE hostname = $1; \
             PRAGMA synchronous = FULL",
        )
        .bind(hostname)
        .bind(i64::from(f.capacity_cpus))
        .bind(f.capacity_memory_mib as i64)
        .bind(f.load_cpus)
        .bind(f.load_memory_mib as i64)
        .bind(&f.boot_id)
        .bind(&f.os)
        .bind(&f.agent_version)
        .bind(f.state_fs_free_bytes as i64)
        .bind(millis(now))
        .bind(software_json(&f.software)?)
        .bind(instances_json(&f.instances)?);
        // The query ends by restoring the pragma; if it stops before, that is done apart.
        on_writer(&self.writer, query, "PRAGMA synchronous = FULL").await?;
        Ok(())
    }

    async fn set_administrative(
        &self,
        hostname: &str,
        state: Administrative,
        on_change: Option<&CommandRecord>,
    ) -> Result<Option<HostRecord>> {
        let mut tx = self.writer.begin().await?;
        let before: Option<String> =
            sqlx::query_scalar("SELECT administrative FROM hosts WHERE hostname = $1")
                .bind(hostname)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(before) = before else {
            tx.rollback().await?;
            return Ok(None);
        };
        let row =
            sqlx::query("UPDATE hosts SET administrative = $2 WHERE hostname = $1 RETURNING *")
                .bind(hostname)
                .bind(state.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(command) = on_change.filter(|_| before != state.as_str()) {
            batch::Rows {
                commands: &[command],
                ..Default::default()
            }
            .execute(batch::INSERT_COMMANDS, &mut *tx)
            .await
            .map_err(|e| conflict(e, format!("command {}", command.id)))?;
        }
        let host = host_from(&row)?;
        tx.commit().await?;
        Ok(Some(host))
    }

    async fn delete_host(&self, hostname: &str, now: Timestamp) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = sqlx::query("DELETE FROM hosts WHERE hostname = $1")
            .bind(hostname)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        // Alarms about the host or what is on it (`host=H`, `host=H.<...>`): no cause left.
        let entity = convoy_core::alarm::host_entity(hostname);
        let rows = sqlx::query(
            "DELETE FROM alarms WHERE entity = $1 \
               OR substr(entity, 1, length($1) + 1) = $1 || '.' RETURNING *",
        )
        .bind(&entity)
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            insert_alarm_event(&mut tx, &alarm_from(row)?, "clear", now, "convoy").await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_command(&self, c: &CommandRecord) -> Result<()> {
        batch::Rows {
            commands: &[c],
            ..Default::default()
        }
        .execute(batch::INSERT_COMMANDS, &self.writer)
        .await
        .map_err(|e| conflict(e, format!("command {}", c.id)))
    }

    async fn command(&self, id: &str) -> Result<Option<CommandRecord>> {
        let row = sqlx::query("SELECT * FROM commands WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(command_from).transpose()
    }

    async fn commands(&self, ids: &[String]) -> Result<Vec<CommandRecord>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let ids = serde_json::to_string(ids).map_err(|e| StoreError::Corrupt {
            table: "commands",
            reason: e.to_string(),
        })?;
        let rows =
            sqlx::query("SELECT * FROM commands WHERE id IN (SELECT value FROM json_each($1))")
                .bind(ids)
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(command_from).collect()
    }

    async fn dispatch_due_commands(
        &self,
        hostname: &str,
        session: &str,
        now: Timestamp,
        redeliver_after: SignedDuration,
    ) -> Result<Vec<CommandRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM commands WHERE hostname = $1 AND completed_at IS NULL ORDER BY created_at, id",
        )
        .bind(hostname)
        .fetch_all(&self.reader)
        .await?;
        let mut due = Vec::new();
        for row in &rows {
            let command = command_from(row)?;
            let last = match (command.dispatched_at, command.dispatched_session.as_deref()) {
                (Some(at), Some(session)) => Some(Dispatch { at, session }),
                _ => None,
            };
            if due_for_delivery(last, session, now, redeliver_after) {
                due.push(command);
            }
        }
        if due.is_empty() {
            return Ok(due);
        }
        let marks = serde_json::Value::Array(
            due.iter()
                .map(|c| serde_json::json!({"id": c.id, "dispatched_at": c.dispatched_at.map(millis)}))
                .collect(),
        );
        let query = sqlx::query(MARK_DISPATCHED)
            .bind(marks.to_string())
            .bind(millis(now))
            .bind(session.to_string());
        let taken: Vec<String> = on_writer(&self.writer, query, "PRAGMA synchronous = FULL")
            .await?
            .iter()
            .map(|row| row.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
        Ok(due
            .into_iter()
            .filter(|c| taken.contains(&c.id))
            .map(|mut c| {
                c.dispatched_at = Some(now);
                c.dispatched_session = Some(session.to_string());
                c
            })
            .collect())
    }

    async fn complete_command(
        &self,
        hostname: &str,
        id: &str,
        outcome_json: &str,
        now: Timestamp,
        effects: &(dyn Fn(convoy_core::command::CommandKind) -> HostEffects + Send + Sync),
    ) -> Result<Option<ReportedCommand>> {
        let mut tx = self.writer.begin().await?;
        let updated = sqlx::query(
            "UPDATE commands SET completed_at = $3, outcome = $4 \
             WHERE id = $1 AND hostname = $2 AND completed_at IS NULL RETURNING *",
        )
        .bind(id)
        .bind(hostname)
        .bind(millis(now))
        .bind(outcome_json)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = updated {
            let command = command_from(&row)?;
            apply_host_effects(&mut tx, hostname, &effects(command.kind)).await?;
            tx.commit().await?;
            return Ok(Some(ReportedCommand {
                command,
                first: true,
            }));
        }
        tx.rollback().await?;
        // Already completed (a repeated report), or not this host's command.
        let row = sqlx::query("SELECT * FROM commands WHERE id = $1 AND hostname = $2")
            .bind(id)
            .bind(hostname)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref()
            .map(|row| {
                Ok(ReportedCommand {
                    command: command_from(row)?,
                    first: false,
                })
            })
            .transpose()
    }

    async fn create_strategy(&self, strategy: &StrategyRecord, steps: &[StepRecord]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO strategy (slot, id, kind, state, max_parallel, stop_on_failure, options, \
               details, created_at, updated_at) \
             VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (slot) DO NOTHING",
        )
        .bind(&strategy.id)
        .bind(strategy.kind.as_str())
        .bind(strategy.state.as_str())
        .bind(i64::from(strategy.max_parallel))
        .bind(strategy.stop_on_failure)
        .bind(&strategy.options)
        .bind(&strategy.details)
        .bind(millis(strategy.created_at))
        .bind(millis(strategy.updated_at))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            let existing = sqlx::query("SELECT * FROM strategy WHERE slot = 1")
                .fetch_one(&mut *tx)
                .await?;
            let existing = strategy_from(&existing)?;
            return Err(StoreError::Conflict {
                what: format!("a {} strategy (state {})", existing.kind, existing.state),
            });
        }
        let steps: Vec<&StepRecord> = steps.iter().collect();
        batch::Rows {
            strategy_id: &strategy.id,
            steps: &steps,
            ..Default::default()
        }
        .execute(batch::UPSERT_STEPS, &mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn strategy(&self) -> Result<Option<StrategyRecord>> {
        let row = sqlx::query("SELECT * FROM strategy WHERE slot = 1")
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(strategy_from).transpose()
    }

    async fn steps(&self, strategy_id: &str) -> Result<Vec<StepRecord>> {
        let rows =
            sqlx::query("SELECT * FROM strategy_steps WHERE strategy_id = $1 ORDER BY position")
                .bind(strategy_id)
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(step_from).collect()
    }

    async fn step(&self, strategy_id: &str, target: &str) -> Result<Option<StepRecord>> {
        let row =
            sqlx::query("SELECT * FROM strategy_steps WHERE strategy_id = $1 AND target = $2")
                .bind(strategy_id)
                .bind(target)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(step_from).transpose()
    }

    async fn phases(&self, strategy_id: &str, target: Option<&str>) -> Result<Vec<PhaseRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM step_phases WHERE strategy_id = $1 AND ($2 IS NULL OR target = $2) \
             ORDER BY started_at, rowid",
        )
        .bind(strategy_id)
        .bind(target)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(phase_from).collect()
    }

    async fn set_strategy_state(
        &self,
        strategy_id: &str,
        from: StrategyState,
        to: StrategyState,
        details: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE strategy SET state = $3, details = $4, updated_at = $5 \
             WHERE id = $1 AND state = $2",
        )
        .bind(strategy_id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(details)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn apply_strategy(
        &self,
        strategy_id: &str,
        from: StrategyState,
        stop_at_stage: Option<u32>,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE strategy SET state = 'applying', stop_at_stage = $3, updated_at = $4 \
             WHERE id = $1 AND state = $2",
        )
        .bind(strategy_id)
        .bind(from.as_str())
        .bind(stop_at_stage.map(i64::from))
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn write_steps(&self, strategy_id: &str, batch: &StepBatch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let steps: Vec<&StepRecord> = batch.steps.iter().map(|w| &w.step).collect();
        let phases: Vec<&PhaseRecord> = batch
            .steps
            .iter()
            .flat_map(|w| [&w.finished_phase, &w.started_phase])
            .flatten()
            .collect();
        let commands: Vec<&CommandRecord> = batch
            .steps
            .iter()
            .filter_map(|w| w.command.as_ref())
            .collect();
        let rows = batch::Rows {
            strategy_id,
            completions: &batch.completions,
            steps: &steps,
            phases: &phases,
            commands: &commands,
            subclouds: &batch.subclouds,
        };
        // One round trip to the writer's thread: the transaction is in the query, and it is
        // rolled back if the query stops half-way.
        let query = rows.query(batch::WRITE_TICK_TRANSACTION);
        on_writer(&self.writer, query, "ROLLBACK")
            .await
            .map_err(|e| conflict(e, "a command of this batch"))?;
        Ok(())
    }

    async fn delete_strategy(&self, strategy_id: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM strategy WHERE id = $1")
            .bind(strategy_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn clusters(&self) -> Result<Vec<ClusterRecord>> {
        let rows = sqlx::query("SELECT * FROM clusters ORDER BY name")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(cluster_from).collect()
    }

    async fn disable_cluster(&self, name: &str, by: &str, now: Timestamp) -> Result<()> {
        sqlx::query(
            "INSERT INTO clusters (name, state, disabled_by, updated_at) \
             VALUES ($1, 'disabled', $2, $3) \
             ON CONFLICT (name) DO UPDATE SET state = 'disabled', disabled_by = $2, updated_at = $3 \
             WHERE clusters.state = 'enabled'",
        )
        .bind(name)
        .bind(by)
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn enable_clusters(
        &self,
        by: &str,
        name: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "UPDATE clusters SET state = 'enabled', disabled_by = NULL, updated_at = $3 \
             WHERE disabled_by = $1 AND ($2 IS NULL OR name = $2) RETURNING name",
        )
        .bind(by)
        .bind(name)
        .bind(millis(now))
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|row| row.try_get("name").map_err(StoreError::from))
            .collect()
    }

    async fn patches(&self) -> Result<Vec<PatchRecord>> {
        let rows = sqlx::query("SELECT * FROM patches ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(patch_from).collect()
    }

    async fn save_patches(&self, changes: &PatchChanges) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for p in &changes.upserts {
            sqlx::query(
                "INSERT INTO patches (id, metadata, repo_state, file_name, size, sha256, \
                   uploaded_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET metadata = excluded.metadata, \
                   repo_state = excluded.repo_state, file_name = excluded.file_name, \
                   size = excluded.size, sha256 = excluded.sha256, updated_at = excluded.updated_at",
            )
            .bind(&p.id)
            .bind(&p.metadata)
            .bind(p.repo_state.as_str())
            .bind(&p.file_name)
            .bind(p.size as i64)
            .bind(&p.sha256)
            .bind(millis(p.uploaded_at))
            .bind(millis(p.updated_at))
            .execute(&mut *tx)
            .await?;
        }
        for id in &changes.deletes {
            sqlx::query("DELETE FROM patches WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(deploy) = &changes.start_deploy {
            let started = sqlx::query(
                "INSERT INTO software_deploy (id, release_id, from_release, state, \
                   reboot_required, started_at, updated_at) VALUES (1, $1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&deploy.release_id)
            .bind(&deploy.from_release)
            .bind(deploy.state.as_str())
            .bind(deploy.reboot_required)
            .bind(millis(deploy.started_at))
            .bind(millis(deploy.updated_at))
            .execute(&mut *tx)
            .await?;
            if started.rows_affected() == 0 {
                return Err(StoreError::Conflict {
                    what: "software deploy".into(),
                });
            }
        }
        for (patch, hosts) in &changes.pending_hosts {
            for host in hosts {
                sqlx::query(
                    "INSERT INTO patch_interim (patch_id, hostname) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(patch)
                .bind(host)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deploy(&self) -> Result<Option<DeployRecord>> {
        let row = sqlx::query("SELECT * FROM software_deploy WHERE id = 1")
            .fetch_optional(&self.reader)
            .await?;
        row.map(|row| {
            let table = "software_deploy";
            Ok(DeployRecord {
                release_id: row.try_get("release_id")?,
                from_release: row.try_get("from_release")?,
                state: parse(table, row.try_get::<&str, _>("state")?)?,
                reboot_required: row.try_get("reboot_required")?,
                started_at: time(table, row.try_get("started_at")?)?,
                updated_at: time(table, row.try_get("updated_at")?)?,
            })
        })
        .transpose()
    }

    async fn set_deploy_state(
        &self,
        expected: DeployState,
        next: DeployState,
        now: Timestamp,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE software_deploy SET state = $2, updated_at = $3 WHERE id = 1 AND state = $1",
        )
        .bind(expected.as_str())
        .bind(next.as_str())
        .bind(millis(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_deploy(&self, expected: DeployState) -> Result<bool> {
        let done = sqlx::query("DELETE FROM software_deploy WHERE id = 1 AND state = $1")
            .bind(expected.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn interim(&self) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT patch_id, hostname FROM patch_interim ORDER BY patch_id, hostname")
                .fetch_all(&self.reader)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("patch_id")?, r.try_get("hostname")?)))
            .collect()
    }

    async fn clear_interim(&self, hostname: &str) -> Result<()> {
        sqlx::query("DELETE FROM patch_interim WHERE hostname = $1")
            .bind(hostname)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn app_dependencies(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT app, patch_id FROM app_dependencies ORDER BY app, patch_id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("app")?, r.try_get("patch_id")?)))
            .collect()
    }

    async fn set_app_dependencies(&self, app: &str, patch_ids: &[String]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM app_dependencies WHERE app = $1")
            .bind(app)
            .execute(&mut *tx)
            .await?;
        for id in patch_ids {
            sqlx::query("INSERT INTO app_dependencies (app, patch_id) VALUES ($1, $2)")
                .bind(app)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn active_controller(&self) -> Result<Option<String>> {
        let row = sqlx::query("SELECT hostname FROM active_controller WHERE id = 1")
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get("hostname")).transpose()?)
    }

    async fn set_active_controller(&self, expected: Option<&str>, hostname: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO active_controller (id, hostname) SELECT 1, $2 \
               WHERE $1 IS (SELECT hostname FROM active_controller WHERE id = 1) \
             ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname",
        )
        .bind(expected)
        .bind(hostname)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn raise_alarm(&self, alarm: &AlarmRecord) -> Result<(AlarmRecord, bool)> {
        let mut tx = self.writer.begin().await?;
        let existing = sqlx::query("SELECT * FROM alarms WHERE alarm_id = $1 AND entity = $2")
            .bind(&alarm.alarm_id)
            .bind(&alarm.entity)
            .fetch_optional(&mut *tx)
            .await?;
        let active = match existing.as_ref().map(alarm_from).transpose()? {
            Some(active)
                if active.severity == alarm.severity
                    && active.reason == alarm.reason
                    && active.mgmt_affecting == alarm.mgmt_affecting =>
            {
                tx.rollback().await?;
                return Ok((active, false));
            }
            Some(active) => {
                sqlx::query(
                    "UPDATE alarms SET severity = $2, reason = $3, mgmt_affecting = $4 \
                     WHERE uuid = $1",
                )
                .bind(&active.uuid)
                .bind(alarm.severity.as_str())
                .bind(&alarm.reason)
                .bind(alarm.mgmt_affecting)
                .execute(&mut *tx)
                .await?;
                AlarmRecord {
                    severity: alarm.severity,
                    reason: alarm.reason.clone(),
                    mgmt_affecting: alarm.mgmt_affecting,
                    ..active
                }
            }
            None => {
                sqlx::query(
                    "INSERT INTO alarms (uuid, alarm_id, entity, severity, reason, \
                       mgmt_affecting, raised_at, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&alarm.uuid)
                .bind(&alarm.alarm_id)
                .bind(&alarm.entity)
                .bind(alarm.severity.as_str())
                .bind(&alarm.reason)
                .bind(alarm.mgmt_affecting)
                .bind(millis(alarm.raised_at))
                .bind(&alarm.source)
                .execute(&mut *tx)
                .await?;
                alarm.clone()
            }
        };
        insert_alarm_event(&mut tx, &active, "set", alarm.raised_at, &alarm.source).await?;
        tx.commit().await?;
        Ok((active, true))
    }

    async fn clear_alarm(
        &self,
        alarm_id: &str,
        entity: &str,
        at: Timestamp,
        by: &str,
    ) -> Result<Option<AlarmRecord>> {
        let mut tx = self.writer.begin().await?;
        let row = sqlx::query("DELETE FROM alarms WHERE alarm_id = $1 AND entity = $2 RETURNING *")
            .bind(alarm_id)
            .bind(entity)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cleared) = row.as_ref().map(alarm_from).transpose()? else {
            tx.rollback().await?;
            return Ok(None);
        };
        insert_alarm_event(&mut tx, &cleared, "clear", at, by).await?;
        tx.commit().await?;
        Ok(Some(cleared))
    }

    async fn alarms(&self) -> Result<Vec<AlarmRecord>> {
        let rows = sqlx::query("SELECT * FROM alarms ORDER BY raised_at, alarm_id, entity")
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(alarm_from).collect()
    }

    async fn alarm(&self, uuid: &str) -> Result<Option<AlarmRecord>> {
        let row = sqlx::query("SELECT * FROM alarms WHERE uuid = $1")
            .bind(uuid)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(alarm_from).transpose()
    }

    async fn alarm_events(&self, limit: u32) -> Result<Vec<AlarmEvent>> {
        let rows = sqlx::query("SELECT * FROM alarm_events ORDER BY seq DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(AlarmEvent {
                    seq: row.try_get("seq")?,
                    alarm: alarm_in(row, "alarm_events", "at")?,
                    state: row.try_get("state")?,
                    at: time("alarm_events", row.try_get("at")?)?,
                    by: row.try_get("source")?,
                })
            })
            .collect()
    }
}

/// Records a raise or a clear in the alarm history, inside the change's transaction.
async fn insert_alarm_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    alarm: &AlarmRecord,
    state: &str,
    at: Timestamp,
    by: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO alarm_events (uuid, alarm_id, entity, severity, reason, mgmt_affecting, \
           state, at, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&alarm.uuid)
    .bind(&alarm.alarm_id)
    .bind(&alarm.entity)
    .bind(alarm.severity.as_str())
    .bind(&alarm.reason)
    .bind(alarm.mgmt_affecting)
    .bind(state)
    .bind(millis(at))
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn alarm_from(row: &SqliteRow) -> Result<AlarmRecord> {
    alarm_in(row, "alarms", "raised_at")
}

/// An alarm's fields in a row of `table`, its time in column `at`.
fn alarm_in(row: &SqliteRow, table: &'static str, at: &str) -> Result<AlarmRecord> {
    Ok(AlarmRecord {
        uuid: row.try_get("uuid")?,
        alarm_id: row.try_get("alarm_id")?,
        entity: row.try_get("entity")?,
        severity: parse(table, row.try_get::<&str, _>("severity")?)?,
        reason: row.try_get("reason")?,
        mgmt_affecting: row.try_get("mgmt_affecting")?,
        raised_at: time(table, row.try_get(at)?)?,
        source: row.try_get("source")?,
    })
}

/// Writes what a first outcome changes on its host, inside the outcome's transaction.
async fn apply_host_effects(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    hostname: &str,
    effects: &HostEffects,
) -> Result<()> {
    if let Some(maintenance) = effects.maintenance {
        sqlx::query("UPDATE hosts SET maintenance = $2 WHERE hostname = $1")
            .bind(hostname)
            .bind(maintenance)
            .execute(&mut **tx)
            .await?;
    }
    if let Some(software) = &effects.software {
        sqlx::query("UPDATE hosts SET software = $2 WHERE hostname = $1")
            .bind(hostname)
            .bind(software_json(software)?)
            .execute(&mut **tx)
            .await?;
    }
    if effects.clear_interim {
        sqlx::query("DELETE FROM patch_interim WHERE hostname = $1")
            .bind(hostname)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn marking_deliveries_and_heartbeats_leave_the_writer_with_its_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("convoy.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let synchronous = || async {
            sqlx::query_scalar::<_, i64>("PRAGMA synchronous")
                .fetch_one(&store.writer)
                .await
                .unwrap()
        };
        // 2 is FULL.
        assert_eq!(synchronous().await, 2);
        let facts: HostFacts = serde_json::from_value(serde_json::json!({
            "capacity_cpus": 1, "capacity_memory_mib": 1, "load_cpus": 0.0,
            "load_memory_mib": 0, "boot_id": "b", "os": "o", "agent_version": "v",
            "state_fs_free_bytes": 0
        }))
        .unwrap();
        let now = Timestamp::now();
        store
            .enrol_host(&crate::HostEnrolment {
                authority: crate::EnrolAuthority::SiteToken,
                hostname: "h".into(),
                personality: convoy_core::host::Personality::Worker,
                zone: None,
                pod: None,
                cluster: None,
                credential_hash: "c".into(),
                facts: facts.clone(),
                now,
            })
            .await
            .unwrap();
        let command = CommandRecord::new(
            "c1".into(),
            "h",
            convoy_core::command::CommandKind::Ping,
            "null".into(),
            now,
        );
        store.insert_command(&command).await.unwrap();
        let taken = store
            .dispatch_due_commands("h", "s", now, SignedDuration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].dispatched_session.as_deref(), Some("s"));
        assert_eq!(synchronous().await, 2);
        // Already delivered to this run: not again before the redelivery delay.
        let again = store
            .dispatch_due_commands("h", "s", now, SignedDuration::from_secs(30))
            .await
            .unwrap();
        assert!(again.is_empty());
        // A delivery taken back is handed out at once.
        store.undeliver(&["c1".to_string()]).await.unwrap();
        let again = store
            .dispatch_due_commands("h", "s", now, SignedDuration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        store.record_heartbeat("h", &facts, now).await.unwrap();
        assert_eq!(synchronous().await, 2);
        // An audit's write too (of a subcloud that is gone: nothing is written).
        use crate::subclouds::{AuditWrite, SubcloudStore};
        let audit = AuditWrite {
            availability: convoy_core::subcloud::Availability::Online,
            failed_audits: 0,
            software_version: None,
            audit: None,
            audited_at: now,
            assumed_management: convoy_core::subcloud::Management::Managed,
            endpoints: vec![],
            raise: vec![],
            clear: vec![],
        };
        assert!(!store.record_audit(1, &audit).await.unwrap());
        assert_eq!(synchronous().await, 2);
    }
}

//! Many rows in one round trip: each table's rows go to SQLite as one JSON array that its
//! statement reads with `json_each`, and a driver tick's statements go together as one query
//! (`$N` names the same argument in every statement of a query). Each query is a round trip
//! to the connection's worker thread, and on a busy machine each round trip waits for a CPU:
//! one query a tick instead of one per table (or per row) keeps the writer's transaction short.

use serde_json::{Value, json};

use super::{Query, millis};
use crate::{CommandCompletion, CommandRecord, PhaseRecord, StepRecord, SubcloudStepWrite};

/// Records outcomes ($1; the first one of a command stays) and what they change on their
/// hosts: the maintenance state they confirm, the patch state an install reported, and the
/// host no longer pending.
macro_rules! complete_commands {
    () => {
        "UPDATE commands SET completed_at = j.value->>'completed_at', outcome = j.value->>'outcome' \
           FROM json_each($1) AS j \
           WHERE commands.id = j.value->>'id' AND commands.hostname = j.value->>'hostname' \
             AND commands.completed_at IS NULL; \
         UPDATE hosts SET maintenance = j.value->>'maintenance' \
           FROM json_each($1) AS j \
           WHERE hosts.hostname = j.value->>'hostname' AND j.value->>'maintenance' IS NOT NULL; \
         UPDATE hosts SET software = j.value->>'software' \
           FROM json_each($1) AS j \
           WHERE hosts.hostname = j.value->>'hostname' AND j.value->>'software' IS NOT NULL; \
         DELETE FROM patch_interim WHERE hostname IN \
           (SELECT j.value->>'hostname' FROM json_each($1) AS j \
             WHERE j.value->>'clear_interim' = 1)"
    };
}

/// Inserts or updates the steps ($3) of strategy $2; a step given twice ends as its last
/// version. `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
macro_rules! upsert_steps {
    () => {
        "INSERT INTO strategy_steps (strategy_id, target, position, stage, grp, state, swept, \
             details, pending_end, command_id, phase_started_at, started_at, finished_at, \
             created_at, updated_at) \
           SELECT $2, value->>'target', value->>'position', value->>'stage', value->>'grp', \
             value->>'state', value->>'swept', value->>'details', value->>'pending_end', \
             value->>'command_id', value->>'phase_started_at', value->>'started_at', \
             value->>'finished_at', value->>'created_at', value->>'updated_at' \
           FROM json_each($3) WHERE true \
           ON CONFLICT (strategy_id, target) DO UPDATE SET \
             state = excluded.state, swept = excluded.swept, details = excluded.details, \
             pending_end = excluded.pending_end, command_id = excluded.command_id, \
             phase_started_at = excluded.phase_started_at, started_at = excluded.started_at, \
             finished_at = excluded.finished_at, updated_at = excluded.updated_at"
    };
}

/// Inserts or updates the phase records ($4) of strategy $2; one given twice ends as its last
/// version.
macro_rules! upsert_phases {
    () => {
        "INSERT INTO step_phases (strategy_id, target, phase, started_at, finished_at, result, \
             details, output) \
           SELECT $2, value->>'target', value->>'phase', value->>'started_at', \
             value->>'finished_at', value->>'result', value->>'details', value->>'output' \
           FROM json_each($4) WHERE true \
           ON CONFLICT (strategy_id, target, phase) DO UPDATE SET \
             started_at = excluded.started_at, finished_at = excluded.finished_at, \
             result = excluded.result, details = excluded.details, output = excluded.output"
    };
}

/// Inserts new commands ($5); an id that exists already fails the whole query.
macro_rules! insert_commands {
    () => {
        "INSERT INTO commands (id, hostname, kind, payload, created_at, dispatched_at, \
             dispatched_session, completed_at, outcome) \
           SELECT value->>'id', value->>'hostname', value->>'kind', value->>'payload', \
             value->>'created_at', value->>'dispatched_at', value->>'dispatched_session', \
             value->>'completed_at', value->>'outcome' \
           FROM json_each($5)"
    };
}

/// Sets what steps change on their subclouds ($6, one row a subcloud): each field given.
macro_rules! update_subclouds {
    () => {
        "UPDATE subclouds SET \
             deploy_status = COALESCE(j.value->>'deploy_status', deploy_status), \
             software_version = COALESCE(j.value->>'software_version', software_version), \
             error_description = COALESCE(j.value->>'error_description', error_description), \
             updated_at = CASE WHEN j.value->>'deploy_status' IS NULL THEN updated_at \
               ELSE j.value->>'at' END \
           FROM json_each($6) AS j WHERE subclouds.name = j.value->>'name'"
    };
}

/// Everything a driver tick writes, in a transaction of its own, all in one round trip.
pub(super) const WRITE_TICK_TRANSACTION: &str = concat!(
    "BEGIN IMMEDIATE; ",
    complete_commands!(),
    "; ",
    upsert_steps!(),
    "; ",
    upsert_phases!(),
    "; ",
    insert_commands!(),
    "; ",
    update_subclouds!(),
    "; COMMIT"
);
pub(super) const UPSERT_STEPS: &str = upsert_steps!();
pub(super) const INSERT_COMMANDS: &str = insert_commands!();

/// The arguments of the statements above, each table's rows as a JSON array (empty unless
/// given).
#[derive(Default)]
pub(super) struct Rows<'a> {
    pub strategy_id: &'a str,
    pub completions: &'a [CommandCompletion],
    pub steps: &'a [&'a StepRecord],
    pub phases: &'a [&'a PhaseRecord],
    pub commands: &'a [&'a CommandRecord],
    pub subclouds: &'a [SubcloudStepWrite],
}

impl Rows<'_> {
    /// Runs `sql` (the statements above, alone or together) with these rows.
    pub(super) async fn execute<'c, E>(&self, sql: &'static str, executor: E) -> sqlx::Result<()>
    where
        E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
    {
        self.query(sql).execute(executor).await?;
        Ok(())
    }

    /// `sql` with these rows bound, owning its arguments (so it can be run in a task).
    pub(super) fn query(&self, sql: &'static str) -> Query {
        fn array<T>(rows: &[T], row: impl Fn(&T) -> Value) -> String {
            Value::Array(rows.iter().map(row).collect()).to_string()
        }
        sqlx::query(sql)
            .bind(array(self.completions, completion_row))
            .bind(self.strategy_id.to_string())
            .bind(array(self.steps, |s| step_row(s)))
            .bind(array(self.phases, |p| phase_row(p)))
            .bind(array(self.commands, |c| command_row(c)))
            .bind(array(self.subclouds, subcloud_row))
    }
}

fn completion_row(c: &CommandCompletion) -> Value {
    json!({
        "id": c.id,
        "hostname": c.hostname,
        "outcome": c.outcome,
        "completed_at": millis(c.completed_at),
        "maintenance": c.effects.maintenance,
        "software": c.effects.software.as_ref().and_then(|s| serde_json::to_string(s).ok()),
        "clear_interim": c.effects.clear_interim,
    })
}

fn subcloud_row(s: &SubcloudStepWrite) -> Value {
    json!({
        "name": s.name,
        "deploy_status": s.deploy_status,
        "software_version": s.software_version,
        "error_description": s.error_description,
        "at": millis(s.at),
    })
}

fn step_row(s: &StepRecord) -> Value {
    json!({
        "target": s.target,
        "position": s.position,
        "stage": s.stage,
        "grp": s.group,
        "state": s.state,
        "swept": s.swept,
        "details": s.details,
        "pending_end": s.pending_end,
        "command_id": s.command_id,
        "phase_started_at": s.phase_started_at.map(millis),
        "started_at": s.started_at.map(millis),
        "finished_at": s.finished_at.map(millis),
        "created_at": millis(s.created_at),
        "updated_at": millis(s.updated_at),
    })
}

fn phase_row(p: &PhaseRecord) -> Value {
    json!({
        "target": p.target,
        "phase": p.phase,
        "started_at": millis(p.started_at),
        "finished_at": p.finished_at.map(millis),
        "result": p.result,
        "details": p.details,
        "output": p.output,
    })
}

fn command_row(c: &CommandRecord) -> Value {
    json!({
        "id": c.id,
        "hostname": c.hostname,
        "kind": c.kind.as_str(),
        "payload": c.payload,
        "created_at": millis(c.created_at),
        "dispatched_at": c.dispatched_at.map(millis),
        "dispatched_session": c.dispatched_session,
        "completed_at": c.completed_at.map(millis),
        "outcome": c.outcome,
    })
}

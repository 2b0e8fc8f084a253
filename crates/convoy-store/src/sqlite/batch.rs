//! Many rows in one statement: each batch goes to SQLite as one JSON array that the statement
//! reads with `json_each`. A driver tick writes tens of rows; one statement per table instead
//! of one per row keeps the writer's transaction short (each statement is a round trip to the
//! connection's worker thread).

use serde_json::{Value, json};

use super::millis;
use crate::{CommandCompletion, CommandRecord, PhaseRecord, Result, StepRecord};

type Sqlite = sqlx::Sqlite;

/// Inserts or updates steps; a step given twice ends as its last version.
pub(super) async fn upsert_steps<'c, E>(
    executor: E,
    strategy_id: &str,
    steps: &[&StepRecord],
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    if steps.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = steps
        .iter()
        .map(|s| {
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
        })
        .collect();
    // `WHERE true` tells SQLite's parser that ON CONFLICT belongs to the INSERT.
    sqlx::query(
        "INSERT INTO strategy_steps (strategy_id, target, position, stage, grp, state, swept, \
           details, pending_end, command_id, phase_started_at, started_at, finished_at, \
           created_at, updated_at) \
         SELECT $1, value->>'target', value->>'position', value->>'stage', value->>'grp', \
           value->>'state', value->>'swept', value->>'details', value->>'pending_end', \
           value->>'command_id', value->>'phase_started_at', value->>'started_at', \
           value->>'finished_at', value->>'created_at', value->>'updated_at' \
         FROM json_each($2) WHERE true \
         ON CONFLICT (strategy_id, target) DO UPDATE SET \
           state = excluded.state, swept = excluded.swept, details = excluded.details, \
           pending_end = excluded.pending_end, command_id = excluded.command_id, \
           phase_started_at = excluded.phase_started_at, started_at = excluded.started_at, \
           finished_at = excluded.finished_at, updated_at = excluded.updated_at",
    )
    .bind(strategy_id)
    .bind(Value::Array(rows).to_string())
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts or updates phase records; a phase given twice ends as its last version.
pub(super) async fn upsert_phases<'c, E>(
    executor: E,
    strategy_id: &str,
    phases: &[&PhaseRecord],
) -> Result<()>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    if phases.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = phases
        .iter()
        .map(|p| {
            json!({
                "target": p.target,
                "phase": p.phase,
                "started_at": millis(p.started_at),
                "finished_at": p.finished_at.map(millis),
                "result": p.result,
                "details": p.details,
                "output": p.output,
            })
        })
        .collect();
    sqlx::query(
        "INSERT INTO step_phases (strategy_id, target, phase, started_at, finished_at, result, \
           details, output) \
         SELECT $1, value->>'target', value->>'phase', value->>'started_at', \
           value->>'finished_at', value->>'result', value->>'details', value->>'output' \
         FROM json_each($2) WHERE true \
         ON CONFLICT (strategy_id, target, phase) DO UPDATE SET \
           started_at = excluded.started_at, finished_at = excluded.finished_at, \
           result = excluded.result, details = excluded.details, output = excluded.output",
    )
    .bind(strategy_id)
    .bind(Value::Array(rows).to_string())
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts new commands; an id that exists already fails the whole statement.
pub(super) async fn insert_commands<'c, E>(
    executor: E,
    commands: &[&CommandRecord],
) -> std::result::Result<(), sqlx::Error>
where
    E: sqlx::Executor<'c, Database = Sqlite>,
{
    if commands.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = commands
        .iter()
        .map(|c| {
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
        })
        .collect();
    sqlx::query(
        "INSERT INTO commands (id, hostname, kind, payload, created_at, dispatched_at, \
           dispatched_session, completed_at, outcome) \
         SELECT value->>'id', value->>'hostname', value->>'kind', value->>'payload', \
           value->>'created_at', value->>'dispatched_at', value->>'dispatched_session', \
           value->>'completed_at', value->>'outcome' \
         FROM json_each($1)",
    )
    .bind(Value::Array(rows).to_string())
    .execute(executor)
    .await?;
    Ok(())
}

/// Records outcomes (the first one of a command stays) and the maintenance state they
/// confirm.
pub(super) async fn complete_commands(
    connection: &mut sqlx::SqliteConnection,
    completions: &[CommandCompletion],
) -> Result<()> {
    if completions.is_empty() {
        return Ok(());
    }
    let rows = Value::Array(
        completions
            .iter()
            .map(|c| {
                json!({
                    "id": c.id,
                    "hostname": c.hostname,
                    "outcome": c.outcome,
                    "completed_at": millis(c.completed_at),
                    "maintenance": c.maintenance,
                })
            })
            .collect(),
    )
    .to_string();
    sqlx::query(
        "UPDATE commands SET completed_at = j.value->>'completed_at', outcome = j.value->>'outcome' \
         FROM json_each($1) AS j \
         WHERE commands.id = j.value->>'id' AND commands.hostname = j.value->>'hostname' \
           AND commands.completed_at IS NULL",
    )
    .bind(&rows)
    .execute(&mut *connection)
    .await?;
    sqlx::query(
        "UPDATE hosts SET maintenance = j.value->>'maintenance' \
         FROM json_each($1) AS j \
         WHERE hosts.hostname = j.value->>'hostname' AND j.value->>'maintenance' IS NOT NULL",
    )
    .bind(&rows)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

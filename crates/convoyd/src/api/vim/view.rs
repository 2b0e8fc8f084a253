//! A software-update strategy in the original's JSON (`SwUpdateStrategyQueryData`, spec §4.2):
//! hyphenated keys, the build, apply and abort phases with their stages and steps, results and
//! completion. The engine runs one step per host; a VIM step's result gathers the records of
//! that phase on every host of its stage.

use std::collections::BTreeMap;

use convoy_core::strategy::Terminal;
use convoy_core::strategy::kind::Kind;
use convoy_core::sw_update::kind::{UpdatePhase, UpdateRules, vim_state};
use convoy_core::sw_update::lifecycle::{self, UpdateResult, completion_percentage};
use convoy_core::sw_update::stages::PlannedStep;
use convoy_store::{PhaseRecord, StepRecord, StrategyRecord};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::strategy::sw_update::{SwUpdateOptions, SwUpdateRecord, summary};

/// The original's date format (shown in UTC here), or "".
fn date(at: Option<Timestamp>) -> String {
    at.map(|t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn result_of(name: Option<&str>) -> UpdateResult {
    match name {
        Some("success") => UpdateResult::Success,
        Some("failed") => UpdateResult::Failed,
        Some("timed-out") => UpdateResult::TimedOut,
        Some(_) => UpdateResult::Failed,
        None => UpdateResult::Inprogress,
    }
}

/// What the records of one VIM step say, over the hosts that run it.
struct Gathered {
    result: UpdateResult,
    reason: String,
    start: Option<Timestamp>,
    end: Option<Timestamp>,
}

fn gather(records: &[&PhaseRecord], hosts: usize, over: bool) -> Gathered {
    let start = records.iter().map(|r| r.started_at).min();
    let running = records.iter().any(|r| r.finished_at.is_none());
    let end = if running || records.len() < hosts {
        None
    } else {
        records.iter().filter_map(|r| r.finished_at).max()
    };
    let failed = records
        .iter()
        .find(|r| !matches!(r.result.as_deref(), Some("success") | None));
    let result = match failed {
        Some(r) => result_of(r.result.as_deref()),
        None if records.is_empty() && !over => UpdateResult::Initial,
        None if records.len() == hosts && !running => UpdateResult::Success,
        None if over => UpdateResult::Aborted,
        None => UpdateResult::Inprogress,
    };
    Gathered {
        result,
        reason: failed.map(|r| r.details.clone()).unwrap_or_default(),
        start,
        end,
    }
}

fn step_json(planned: &PlannedStep, id: usize, g: &Gathered) -> Value {
    json!({
        "step-id": id,
        "step-name": planned.name.as_str(),
        "timeout": planned.timeout.as_secs(),
        "entity-type": planned.entity_type.as_str(),
        "entity-names": planned.entity_names,
        "entity-uuids": [],
        "result": g.result.as_str(),
        "reason": g.reason,
        "start-date-time": date(g.start),
        "end-date-time": date(g.end),
    })
}

/// Folds results the original's way: the first failed, timed-out or aborted one wins; else
/// in progress while any is; else success once all are.
fn fold(results: &[UpdateResult]) -> UpdateResult {
    if results.is_empty() {
        return UpdateResult::Initial;
    }
    if let Some(bad) = results.iter().find(|r| {
        matches!(
            r,
            UpdateResult::Failed | UpdateResult::TimedOut | UpdateResult::Aborted
        )
    }) {
        return *bad;
    }
    if results.iter().all(|r| *r == UpdateResult::Success) {
        UpdateResult::Success
    } else if results.iter().all(|r| *r == UpdateResult::Initial) {
        UpdateResult::Initial
    } else {
        UpdateResult::Inprogress
    }
}

fn phase_json(
    name: &str,
    stages: Vec<Value>,
    results: &[UpdateResult],
    inprogress: bool,
    reason: &str,
    stop_at: Option<u32>,
) -> Value {
    let step_results: Vec<UpdateResult> = stages
        .iter()
        .flat_map(|s| s["steps"].as_array().cloned().unwrap_or_default())
        .filter_map(|s| s["result"].as_str().and_then(|r| r.parse().ok()))
        .collect();
    let current = results
        .iter()
        .position(|r| *r != UpdateResult::Success)
        .unwrap_or(results.len());
    let starts: Vec<&str> = stages
        .iter()
        .filter_map(|s| s["start-date-time"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    let ends: Vec<&str> = stages
        .iter()
        .filter_map(|s| s["end-date-time"].as_str())
        .collect();
    let result = if inprogress {
        UpdateResult::Inprogress
    } else {
        fold(results)
    };
    let timeout: u64 = stages
        .iter()
        .filter_map(|s| s["timeout"].as_u64())
        .sum::<u64>()
        + 1;
    json!({
        "phase-name": name,
        "timeout": timeout,
        "total-stages": stages.len(),
        "current-stage": current,
        "stop-at-stage": stop_at.map_or(stages.len(), |s| s as usize),
        "inprogress": inprogress,
        "completion-percentage": completion_percentage(inprogress, step_results),
        "result": result.as_str(),
        "reason": reason,
        "response": "",
        "start-date-time": starts.first().copied().unwrap_or(""),
        "end-date-time": if inprogress || ends.iter().any(|e| e.is_empty()) { "" } else { ends.last().copied().unwrap_or("") },
        "stages": stages,
    })
}

/// The strategy as `GET /api/orchestration/sw-patch/strategy` shows it.
pub fn strategy_json(
    strategy: &StrategyRecord,
    record: &SwUpdateRecord,
    steps: &[StepRecord],
    phases: &[PhaseRecord],
) -> Value {
    let over = strategy.state.is_terminal();
    let (vim, current_phase) = vim_state(summary(strategy, record, steps));

    let mut apply_stages = Vec::new();
    let mut apply_results = Vec::new();
    let mut abort_stages = Vec::new();
    let mut abort_results = Vec::new();
    let mut apply_reason = String::new();
    if let Some(plan) = &record.plan {
        let rules = UpdateRules::new(&plan.stages, &record.durations);
        for (i, stage) in plan.stages.iter().enumerate() {
            let hosts: Vec<&str> = steps
                .iter()
                .filter(|s| s.stage as usize == i + 1)
                .map(|s| s.target.as_str())
                .collect();
            let of_stage = |name: &str| -> Vec<&PhaseRecord> {
                phases
                    .iter()
                    .filter(|p| p.phase == name && hosts.contains(&p.target.as_str()))
                    .collect()
            };
            let mut step_values = Vec::new();
            let mut results = Vec::new();
            let mut undo: BTreeMap<usize, Value> = BTreeMap::new();
            for (j, planned) in stage.steps.iter().enumerate() {
                let phase = UpdatePhase {
                    stage: i as u32,
                    step: j as u16,
                    undo: false,
                };
                let g = gather(&of_stage(rules.phase_name(phase)), hosts.len(), over);
                if apply_reason.is_empty() && !g.reason.is_empty() {
                    apply_reason = g.reason.clone();
                }
                results.push(g.result);
                step_values.push(step_json(planned, j, &g));
                let undo_phase = UpdatePhase {
                    undo: true,
                    ..phase
                };
                if let Some(compensation) = rules.planned(undo_phase) {
                    let records = of_stage(rules.phase_name(undo_phase));
                    if !records.is_empty() {
                        let g = gather(&records, records.len(), over);
                        undo.insert(j, step_json(compensation, 0, &g));
                    }
                }
            }
            let g = fold(&results);
            let stage_start = step_values
                .iter()
                .filter_map(|s| s["start-date-time"].as_str())
                .find(|s| !s.is_empty())
                .unwrap_or("");
            let stage_end = match g {
                UpdateResult::Inprogress | UpdateResult::Initial => "",
                _ => step_values
                    .iter()
                    .rev()
                    .filter_map(|s| s["end-date-time"].as_str())
                    .find(|s| !s.is_empty())
                    .unwrap_or(""),
            };
            let timeout: u64 = stage.steps.iter().map(|s| s.timeout.as_secs()).sum::<u64>() + 1;
            apply_stages.push(json!({
                "stage-id": i,
                "stage-name": stage.name.as_str(),
                "timeout": timeout,
                "total-steps": step_values.len(),
                "current-step": results.iter().position(|r| *r != UpdateResult::Success).unwrap_or(results.len()),
                "inprogress": g == UpdateResult::Inprogress,
                "result": g.as_str(),
                "reason": "",
                "start-date-time": stage_start,
                "end-date-time": stage_end,
                "steps": step_values,
            }));
            apply_results.push(g);
            if !undo.is_empty() {
                // Compensations run latest first.
                let steps: Vec<Value> = undo
                    .into_values()
                    .rev()
                    .enumerate()
                    .map(|(id, mut s)| {
                        s["step-id"] = json!(id);
                        s
                    })
                    .collect();
                let results: Vec<UpdateResult> = steps
                    .iter()
                    .filter_map(|s| s["result"].as_str().and_then(|r| r.parse().ok()))
                    .collect();
                let g = fold(&results);
                abort_results.push(g);
                abort_stages.push(json!({
                    "stage-id": abort_stages.len(),
                    "stage-name": stage.name.as_str(),
                    "timeout": steps.iter().filter_map(|s| s["timeout"].as_u64()).sum::<u64>() + 1,
                    "total-steps": steps.len(),
                    "current-step": steps.len(),
                    "inprogress": g == UpdateResult::Inprogress,
                    "result": g.as_str(),
                    "reason": "",
                    "start-date-time": steps.first().map_or(json!(""), |s| s["start-date-time"].clone()),
                    "end-date-time": steps.last().map_or(json!(""), |s| s["end-date-time"].clone()),
                    "steps": steps,
                }));
            }
        }
    }
    // Applied stage by stage, the apply phase rests between stages.
    let resting = steps
        .iter()
        .all(|s| s.state == "initial" || Terminal::parse(&s.state).is_some());
    let applying = vim == convoy_core::sw_update::lifecycle::StrategyState::Applying
        && !(strategy.stop_at_stage.is_some() && resting);
    let aborting = vim == convoy_core::sw_update::lifecycle::StrategyState::Aborting;
    let build_reason = record.build_reason.clone().unwrap_or_default();
    let build_result = if record.build_reason.is_some() {
        UpdateResult::Failed
    } else {
        UpdateResult::Success
    };
    let build_stage = record.plan.as_ref().map(|plan| {
        let g = Gathered {
            result: build_result,
            reason: String::new(),
            start: Some(strategy.created_at),
            end: Some(strategy.created_at),
        };
        let steps: Vec<Value> = plan
            .build_stage
            .steps
            .iter()
            .enumerate()
            .map(|(j, s)| step_json(s, j, &g))
            .collect();
        json!({
            "stage-id": 0,
            "stage-name": plan.build_stage.name.as_str(),
            "timeout": plan.build_stage.steps.iter().map(|s| s.timeout.as_secs()).sum::<u64>() + 1,
            "total-steps": steps.len(),
            "current-step": steps.len(),
            "inprogress": false,
            "result": build_result.as_str(),
            "reason": "",
            "start-date-time": date(Some(strategy.created_at)),
            "end-date-time": date(Some(strategy.created_at)),
            "steps": steps,
        })
    });
    let build_results = vec![build_result];
    let build_phase = phase_json(
        "build",
        build_stage.into_iter().collect(),
        &build_results,
        false,
        &build_reason,
        None,
    );
    let apply_phase = phase_json(
        "apply",
        apply_stages,
        &apply_results,
        applying,
        &apply_reason,
        strategy.stop_at_stage,
    );
    let abort_phase = phase_json("abort", abort_stages, &abort_results, aborting, "", None);
    let current = match current_phase {
        convoy_core::sw_update::lifecycle::Phase::Build => &build_phase,
        convoy_core::sw_update::lifecycle::Phase::Abort => &abort_phase,
        _ => &apply_phase,
    };
    let completion = current["completion-percentage"].clone();
    let mut strategy_json = options_json(&record.options);
    let fields = [
        ("uuid", json!(strategy.id)),
        ("state", json!(vim.as_str())),
        ("current-phase", json!(current_phase.as_str())),
        ("current-phase-completion-percentage", completion),
        ("build-phase", build_phase),
        ("apply-phase", apply_phase),
        ("abort-phase", abort_phase),
    ];
    for (key, value) in fields {
        strategy_json.insert(key.into(), value);
    }
    Value::Object(strategy_json)
}

/// The strategy's name and options, as the original shows them.
fn options_json(options: &SwUpdateOptions) -> serde_json::Map<String, Value> {
    let o = options.apply_options();
    let mut fields = serde_json::Map::new();
    let common = [
        ("name", json!(o.kind.as_str())),
        (
            "controller-apply-type",
            json!(o.controller_apply_type.as_str()),
        ),
        ("storage-apply-type", json!(o.storage_apply_type.as_str())),
        ("swift-apply-type", json!(o.swift_apply_type.as_str())),
        ("worker-apply-type", json!(o.worker_apply_type.as_str())),
        (
            "max-parallel-worker-hosts",
            json!(o.max_parallel_worker_hosts),
        ),
        (
            "default-instance-action",
            json!(o.default_instance_action.as_str()),
        ),
        ("alarm-restrictions", json!(o.alarm_restrictions.as_str())),
    ];
    for (key, value) in common {
        fields.insert(key.into(), value);
    }
    if let SwUpdateOptions::Upgrade(o) = options {
        fields.insert("release".into(), json!(o.release().unwrap_or("")));
        fields.insert("rollback".into(), json!(o.rollback));
        fields.insert("delete".into(), json!(o.delete));
    }
    fields
}

/// What the original's apply and abort rules read of the strategy.
pub fn status(
    strategy: &StrategyRecord,
    record: &SwUpdateRecord,
    steps: &[StepRecord],
) -> lifecycle::StrategyStatus {
    let total = record.plan.as_ref().map_or(0, |p| p.stages.len()) as u32;
    let (vim, phase) = vim_state(summary(strategy, record, steps));
    let ended = |s: &StepRecord| Terminal::parse(&s.state).is_some();
    // The first stage (0-based) with a step not ended.
    let current_stage = (0..total)
        .find(|i| steps.iter().any(|s| s.stage == i + 1 && !ended(s)))
        .unwrap_or(total);
    let stage_inprogress = steps
        .iter()
        .any(|s| s.stage == current_stage + 1 && !ended(s) && s.state != "initial");
    lifecycle::StrategyStatus {
        state: vim,
        phase,
        build_reason: record.build_reason.clone().unwrap_or_default(),
        total_stages: total,
        current_stage,
        stop_at_stage: strategy.stop_at_stage.unwrap_or(total),
        stage_inprogress,
    }
}

/// The name and state `GET /api/orchestration/current-strategy/strategy` shows.
pub fn current_json(
    strategy: &StrategyRecord,
    vim: Option<(&SwUpdateRecord, &[StepRecord])>,
) -> Value {
    let state = match vim {
        Some((record, steps)) => vim_state(summary(strategy, record, steps))
            .0
            .as_str()
            .to_string(),
        None => strategy.state.as_str().to_string(),
    };
    json!({"strategy": {"name": strategy.kind.as_str(), "state": state}})
}

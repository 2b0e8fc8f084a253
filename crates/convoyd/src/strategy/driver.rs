//! The strategy driver: one background task that moves the controller's strategy forward.
//!
//! Each tick reads the strategy from the store, feeds every finished phase into the kind's
//! phase machine, asks the engine which steps start, and writes every transition (with the
//! agent command that performs the next phase) in one transaction before the agent can see the
//! command. Nothing lives only in memory: a controller killed at any point resumes from the
//! store, and since commands carry ids the agents deduplicate, no effect is repeated.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context as _;
use convoy_api::hosts::CommandOutcome;
use convoy_api::strategies::RollingMaintenanceOptions;
use convoy_core::phases::rolling_maintenance::{
    self as rm, Action, Context, Next, Phase, PhaseResult,
};
use convoy_core::strategy::engine::{Decision, EngineView, Progress, StepView, decide};
use convoy_core::strategy::{Ending, StrategyKind, StrategyState, Terminal};
use convoy_store::{CommandRecord, HostRecord, PhaseRecord, StepRecord, StepWrite, StrategyRecord};
use jiff::Timestamp;
use tracing::{error, info};
use uuid::Uuid;

use super::rolling_maintenance::{
    capacity_check, command_for, phase_timeout, result_name, result_of,
};
use crate::clock;
use crate::state::AppState;

/// Longest the driver sleeps without being woken (a safety net; wake-ups normally come from
/// outcomes, API actions and phase deadlines).
const IDLE_WAKE: Duration = Duration::from_secs(5);
/// How long the driver lets outcomes gather after the first one wakes it.
const DEBOUNCE: Duration = Duration::from_millis(2);

pub fn spawn(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let strategy_changed = app.wakeups.strategy().notified();
            let outcome_arrived = app.wakeups.outcomes().notified();
            tokio::pin!(strategy_changed, outcome_arrived);
            strategy_changed.as_mut().enable();
            outcome_arrived.as_mut().enable();
            let wait = match tick(&app).await {
                Ok(wait) => wait.unwrap_or(IDLE_WAKE).min(IDLE_WAKE),
                Err(e) => {
                    error!("strategy driver: {e:#}");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = strategy_changed => {}
                _ = outcome_arrived => {
                    // Outcomes of a stage's hosts arrive close together: a moment's wait lets
                    // one tick take many of them.
                    tokio::time::sleep(DEBOUNCE).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// One pass over the strategy. Returns how soon to look again (None: only when woken).
async fn tick(app: &AppState) -> anyhow::Result<Option<Duration>> {
    let Some(mut strategy) = app.store.strategy().await? else {
        return Ok(None);
    };
    let now = clock::now();
    if !strategy.state.is_active() {
        if strategy.state.is_terminal() {
            restore_clusters(app, &strategy.id, now).await?;
        }
        return Ok(None);
    }
    match strategy.kind {
        StrategyKind::RollingMaintenance => {
            let options: RollingMaintenanceOptions = serde_json::from_str(&strategy.options)
                .context("the strategy's options are unreadable")?;
            RollingMaintenance {
                app,
                options: &options,
                pending: Mutex::default(),
            }
            .tick(&mut strategy, now)
            .await
        }
    }
}

/// Enables again every cluster the strategy disabled: at its end, and after a crash.
async fn restore_clusters(app: &AppState, strategy_id: &str, now: Timestamp) -> anyhow::Result<()> {
    for name in app.store.enable_clusters(strategy_id, None, now).await? {
        info!(cluster = name, "cluster enabled again");
    }
    Ok(())
}

struct RollingMaintenance<'a> {
    app: &'a AppState,
    options: &'a RollingMaintenanceOptions,
    /// Step changes of this tick not yet written, and the hosts to wake once they are.
    pending: Mutex<(Vec<StepWrite>, Vec<String>)>,
}

/// Where a stored step stands, for the engine.
fn progress(step: &StepRecord) -> Progress {
    if let Some(terminal) = Terminal::parse(&step.state) {
        return Progress::Done(terminal);
    }
    match step.state.parse::<Phase>() {
        Ok(Phase::SWEEP) => Progress::Sweeping,
        Ok(_) => Progress::Running,
        Err(_) if step.swept => Progress::Swept,
        Err(_) => Progress::Pending,
    }
}

fn engine_view<'v>(strategy: &StrategyRecord, views: &'v [StepView]) -> EngineView<'v> {
    EngineView {
        state: strategy.state,
        stop_on_failure: strategy.stop_on_failure,
        max_parallel: strategy.max_parallel as usize,
        sweep: true,
        steps: views,
    }
}

fn views(steps: &[StepRecord]) -> Vec<StepView> {
    steps
        .iter()
        .map(|s| StepView {
            stage: s.stage,
            progress: progress(s),
        })
        .collect()
}

impl RollingMaintenance<'_> {
    async fn tick(
        &self,
        strategy: &mut StrategyRecord,
        now: Timestamp,
    ) -> anyhow::Result<Option<Duration>> {
        let store = &self.app.store;
        let mut steps = store.steps(&strategy.id).await?;
        // The inventory is read only if a capacity check needs it; the running steps'
        // commands in one query.
        let mut hosts: Option<Vec<HostRecord>> = None;
        let waiting_on: Vec<String> = steps.iter().filter_map(|s| s.command_id.clone()).collect();
        let mut outcomes: HashMap<String, CommandRecord> = store
            .commands(&waiting_on)
            .await?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect();
        let mut wake: Option<Timestamp> = None;

        // 1. Feed every finished phase into the phase machine.
        for i in 0..steps.len() {
            while let Ok(phase) = steps[i].state.parse::<Phase>() {
                let (result, output) = match phase.action() {
                    Action::CapacityCheck => {
                        // Hosts of the same stage already on their way into maintenance take
                        // no load, whatever their last heartbeat said.
                        let leaving: Vec<&str> = steps
                            .iter()
                            .filter(|s| {
                                matches!(
                                    s.state.parse::<Phase>(),
                                    Ok(Phase::EnterMaintenance
                                        | Phase::Maintenance
                                        | Phase::ExitMaintenance)
                                )
                            })
                            .map(|s| s.target.as_str())
                            .collect();
                        if hosts.is_none() {
                            hosts = Some(store.hosts().await?);
                        }
                        (
                            capacity_check(
                                &steps[i].target,
                                hosts.as_deref().unwrap_or_default(),
                                &leaving,
                                now,
                                self.app.ping_interval,
                            ),
                            serde_json::Value::Null,
                        )
                    }
                    _ => match outcome(&steps[i], &mut outcomes)? {
                        Some(outcome) => (result_of(phase, &outcome), outcome.output),
                        None => {
                            let deadline = steps[i].phase_started_at.unwrap_or(now)
                                + phase_timeout(phase, self.options, self.app.ping_interval);
                            if now < deadline {
                                wake = Some(wake.map_or(deadline, |w| w.min(deadline)));
                                break;
                            }
                            let waited = phase_timeout(phase, self.options, self.app.ping_interval);
                            (
                                PhaseResult::Failed(format!(
                                    "no outcome from {} within {} s; is its agent running?",
                                    steps[i].target,
                                    waited.as_secs()
                                )),
                                serde_json::Value::Null,
                            )
                        }
                    },
                };
                let views = views(&steps);
                let stopping = engine_view(strategy, &views).stopping();
                self.advance(
                    strategy,
                    &mut steps[i],
                    phase,
                    result,
                    output,
                    stopping,
                    now,
                )
                .await?;
            }
        }

        self.flush(strategy).await?;

        // 2. Let the engine start steps, abort pending ones and move the strategy on.
        for _ in 0..steps.len() + 4 {
            let views = views(&steps);
            let decisions = decide(&engine_view(strategy, &views));
            if decisions.is_empty() {
                break;
            }
            for decision in decisions {
                match decision {
                    Decision::StartSweep(i) => {
                        self.begin(strategy, &mut steps[i], Phase::SWEEP, None, now)
                            .await?
                    }
                    Decision::StartStep(i) => {
                        if let Some(cluster) = steps[i].group.clone() {
                            store.disable_cluster(&cluster, &strategy.id, now).await?;
                        }
                        self.begin(strategy, &mut steps[i], Phase::FIRST, None, now)
                            .await?;
                    }
                    Decision::AbortPending(i) => {
                        let ending = Ending::new(Terminal::Aborted, "Aborted before it started");
                        self.end(strategy, &mut steps[i], ending, None, now).await?;
                    }
                    Decision::Become(next) => {
                        // The steps' changes are on disk before the strategy's.
                        self.flush(strategy).await?;
                        let details = strategy_details(next, &steps);
                        if !store
                            .set_strategy_state(&strategy.id, strategy.state, next, &details, now)
                            .await?
                        {
                            // Changed under us (an API action): look again at once.
                            return Ok(Some(Duration::ZERO));
                        }
                        info!(strategy = strategy.id, from = %strategy.state, to = %next, "strategy state");
                        strategy.state = next;
                    }
                }
            }
        }

        self.flush(strategy).await?;

        // 3. Enable the clusters whose hosts are done, or all of them once stopping or done.
        let views = views(&steps);
        let stopping = engine_view(strategy, &views).stopping() || strategy.state.is_terminal();
        for cluster in store.clusters().await? {
            if cluster.disabled_by.as_deref() != Some(strategy.id.as_str()) {
                continue;
            }
            let members: Vec<&StepRecord> = steps
                .iter()
                .filter(|s| s.group.as_deref() == Some(&cluster.name))
                .collect();
            let busy = members.iter().any(|s| progress(s) == Progress::Running);
            let done = members
                .iter()
                .all(|s| matches!(progress(s), Progress::Done(_)));
            if !busy && (done || stopping) {
                store
                    .enable_clusters(&strategy.id, Some(&cluster.name), now)
                    .await?;
                info!(cluster = cluster.name, "cluster enabled again");
            }
        }

        Ok(wake.map(|at| {
            let left = at.duration_since(now);
            Duration::from_millis(left.as_millis().max(0) as u64)
        }))
    }

    /// Records how `phase` ended and moves the step where the phase machine says.
    #[allow(clippy::too_many_arguments)]
    async fn advance(
        &self,
        strategy: &StrategyRecord,
        step: &mut StepRecord,
        phase: Phase,
        result: PhaseResult,
        output: serde_json::Value,
        stopping: bool,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let finished = PhaseRecord {
            target: step.target.clone(),
            phase: phase.as_str().into(),
            started_at: step.phase_started_at.unwrap_or(now),
            finished_at: Some(now),
            result: Some(result_name(&result).into()),
            details: match &result {
                PhaseResult::Failed(reason) => reason.clone(),
                _ => String::new(),
            },
            output: output.to_string(),
        };
        let pending: Option<Ending> = step
            .pending_end
            .as_deref()
            .map(serde_json::from_str)
            .transpose()?;
        let context = Context {
            hostname: &step.target,
            forced: self.options.forced,
            stopping,
            pending: pending.as_ref(),
        };
        info!(step = step.target, phase = %phase, result = result_name(&result), "phase ended");
        match rm::after(phase, result, context) {
            Next::Phase(next) => self.begin(strategy, step, next, Some(finished), now).await,
            Next::Cleanup { then } => {
                step.pending_end = Some(serde_json::to_string(&then)?);
                self.begin(strategy, step, Phase::ExitMaintenance, Some(finished), now)
                    .await
            }
            Next::AwaitStage => {
                step.state = "initial".into();
                step.swept = true;
                step.details = "Pre-flight passed; waiting for its stage".into();
                step.command_id = None;
                step.phase_started_at = None;
                step.updated_at = now;
                self.write(strategy, step, Some(finished), None, None).await
            }
            Next::End(ending) => self.end(strategy, step, ending, Some(finished), now).await,
        }
    }

    /// Starts `phase` on the step: the step, the phase record and the command that performs
    /// it are written together, then the host's agent is woken.
    async fn begin(
        &self,
        strategy: &StrategyRecord,
        step: &mut StepRecord,
        phase: Phase,
        finished: Option<PhaseRecord>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let command = command_for(phase, self.options).map(|(kind, payload)| {
            CommandRecord::new(
                Uuid::new_v4().to_string(),
                &step.target,
                kind,
                payload.to_string(),
                now,
            )
        });
        step.state = phase.as_str().into();
        step.command_id = command.as_ref().map(|c| c.id.clone());
        step.phase_started_at = Some(now);
        step.started_at.get_or_insert(now);
        step.updated_at = now;
        let started = PhaseRecord {
            target: step.target.clone(),
            phase: phase.as_str().into(),
            started_at: now,
            finished_at: None,
            result: None,
            details: String::new(),
            output: "null".into(),
        };
        self.write(strategy, step, finished, Some(started), command)
            .await
    }

    async fn end(
        &self,
        strategy: &StrategyRecord,
        step: &mut StepRecord,
        ending: Ending,
        finished: Option<PhaseRecord>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        info!(
            step = step.target,
            state = ending.state.as_str(),
            reason = ending.reason,
            "step ended"
        );
        step.state = ending.state.as_str().into();
        step.details = ending.reason;
        step.command_id = None;
        step.pending_end = None;
        step.phase_started_at = None;
        if step.started_at.is_some() {
            step.finished_at = Some(now);
        }
        step.updated_at = now;
        self.write(strategy, step, finished, None, None).await
    }

    /// Queues a step's change; [`Self::flush`] writes the queue in one transaction.
    async fn write(
        &self,
        _strategy: &StrategyRecord,
        step: &StepRecord,
        finished_phase: Option<PhaseRecord>,
        started_phase: Option<PhaseRecord>,
        command: Option<CommandRecord>,
    ) -> anyhow::Result<()> {
        let mut pending = self.pending.lock().expect("pending writes lock");
        if command.is_some() {
            pending.1.push(step.target.clone());
        }
        pending.0.push(StepWrite {
            step: step.clone(),
            finished_phase,
            started_phase,
            command,
        });
        Ok(())
    }

    /// Writes the queued changes in one transaction, then wakes the agents that have a new
    /// command: nothing reaches an agent before it is on disk.
    async fn flush(&self, strategy: &StrategyRecord) -> anyhow::Result<()> {
        let (writes, wake) =
            std::mem::take(&mut *self.pending.lock().expect("pending writes lock"));
        self.app.store.write_steps(&strategy.id, &writes).await?;
        for host in wake {
            self.app.wakeups.wake_host(&host);
        }
        Ok(())
    }
}

/// The outcome of the step's current command, once the agent reported it (taken from the
/// commands read at the start of the tick; a command created in this tick has none yet).
fn outcome(
    step: &StepRecord,
    commands: &mut HashMap<String, CommandRecord>,
) -> anyhow::Result<Option<CommandOutcome>> {
    let Some(id) = &step.command_id else {
        return Ok(None);
    };
    let Some(command) = commands.remove(id) else {
        return Ok(None);
    };
    match command.outcome {
        Some(json) if command.completed_at.is_some() => Ok(Some(serde_json::from_str(&json)?)),
        _ => Ok(None),
    }
}

/// The strategy's details when it changes state: why it failed, if it did.
fn strategy_details(next: StrategyState, steps: &[StepRecord]) -> String {
    if next != StrategyState::Failed {
        return String::new();
    }
    steps
        .iter()
        .find(|s| s.state == Terminal::Failed.as_str())
        .map(|s| format!("{}: {}", s.target, s.details))
        .unwrap_or_default()
}

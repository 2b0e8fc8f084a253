//! The strategy driver: one background task that moves the controller's strategy forward.
//!
//! Each tick reads the strategy from the store, feeds every finished phase into the kind's
//! phase machine, asks the engine which steps start, and writes every transition (with the
//! agent command that performs the next phase, and the outcomes that caused it) in one
//! transaction before the agent can see the command. Between ticks the driver keeps the steps
//! it wrote in memory (it is their only writer while the strategy lives); the store stays the
//! truth: a failed tick, a new strategy or a restart loads them again, so a controller killed
//! at any point resumes from the store, and since commands carry ids the agents deduplicate,
//! no effect is repeated. Outcomes come through the [`Inbox`]: each report is answered with
//! the host's next command once both are on disk.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use convoy_api::agent::{CommandDelivery, FollowedBy};
use convoy_api::hosts::CommandOutcome;
use convoy_api::strategies::RollingMaintenanceOptions;
use convoy_core::command::CommandKind;
use convoy_core::strategy::engine::{Decision, EngineView, Progress, StepView, decide};
use convoy_core::strategy::kind::{
    Effect, Effects, Kind, PhaseEnd, StepChange, StepFacts, begin_effects, deadline, progress,
    transition,
};
use convoy_core::strategy::{Ending, StrategyKind, StrategyState, Terminal};
use convoy_store::{
    CommandCompletion, CommandRecord, PhaseRecord, StepBatch, StepRecord, StepWrite, StrategyRecord,
};
use jiff::Timestamp;
use tracing::{debug, error, info};

use super::dc_prestage::DcPrestageSite;
use super::dc_sw_deploy::DcSwDeploySite;
use super::inbox::Offer;
use super::outcome_effects::host_effects;
use super::rolling_maintenance::RollingMaintenanceSite;
use super::site_kind::{SiteKind, TickEnd};
use super::subcloud_call::DcStrategyRecord;
use super::sw_update::{SwUpdateRecord, SwUpdateSite};
use crate::clock;
use crate::polls::Waiting;
use crate::state::AppState;

/// Longest the driver sleeps without being woken (a safety net; wake-ups normally come from
/// outcomes, API actions and phase deadlines).
const IDLE_WAKE: Duration = Duration::from_secs(5);
/// How often the driver lets other tasks run after the first outcome wakes it, so that
/// reports already on their way join the same tick. Yielding costs no timer tick: a fixed
/// sleep here was most of a phase's latency on an idle controller, and under load the reports
/// that come in during a tick gather by themselves.
const GATHER_YIELDS: usize = 4;

pub fn spawn(app: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut loaded: Option<Loaded> = None;
        loop {
            let strategy_changed = app.wakeups.strategy().notified();
            tokio::pin!(strategy_changed);
            strategy_changed.as_mut().enable();
            let wait = match tick(&app, &mut loaded, clock::now()).await {
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
                _ = app.inbox.arrived().notified() => {
                    for _ in 0..GATHER_YIELDS {
                        tokio::task::yield_now().await;
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// The running strategy and its steps as the driver last wrote them.
struct Loaded {
    strategy_id: String,
    /// None: read it again (it changed under the driver).
    strategy: Option<StrategyRecord>,
    /// [`Wakeups::strategy_changes`](crate::wakeups::Wakeups::strategy_changes) when the
    /// strategy was read: an operator's change since then means reading it again.
    changes: u64,
    cached: Cached,
}

/// What the driver keeps of a strategy between ticks: its steps as it last wrote them, and
/// for each step checked side by side, the phase it was checked in (its start) and when its
/// last check ended.
struct Cached {
    steps: Vec<StepRecord>,
    checked: Checked,
}

/// By step index: the start of the phase a side-by-side check was made in, and its end.
type Checked = HashMap<usize, (Option<Timestamp>, Timestamp)>;

/// One pass over the strategy, as of `now`. Returns how soon to look again (None: only when
/// woken). `loaded` is taken for the pass and given back only if the pass succeeds.
async fn tick(
    app: &AppState,
    loaded: &mut Option<Loaded>,
    now: Timestamp,
) -> anyhow::Result<Option<Duration>> {
    // Reports nobody takes below are dropped, so their senders store them themselves.
    let offers = app.inbox.take();
    let changes = app.wakeups.strategy_changes();
    let cached = loaded.take();
    // While a strategy runs the driver is its only writer but for operators' actions, which
    // are counted: its copy is current unless one came in. The steps are the driver's alone.
    let (strategy, cached) = match cached {
        Some(Loaded {
            strategy: Some(strategy),
            changes: seen,
            cached,
            ..
        }) if seen == changes => {
            let id = strategy.id.clone();
            (Some(strategy), Some((id, cached)))
        }
        Some(Loaded {
            strategy_id,
            cached,
            ..
        }) => (app.store.strategy().await?, Some((strategy_id, cached))),
        None => (app.store.strategy().await?, None),
    };
    let Some(mut strategy) = strategy else {
        app.inbox.await_commands([]);
        return Ok(None);
    };
    if !strategy.state.is_active() {
        app.inbox.await_commands([]);
        if strategy.state.is_terminal() {
            restore_clusters(app, &strategy.id, now).await?;
        }
        return Ok(None);
    }
    let cached = cached
        .filter(|(id, _)| *id == strategy.id)
        .map(|(_, cached)| cached);
    let (wait, cached, current) = match strategy.kind {
        StrategyKind::RollingMaintenance => {
            let options: RollingMaintenanceOptions = serde_json::from_str(&strategy.options)
                .context("the strategy's options are unreadable")?;
            let kind = RollingMaintenanceSite::new(options, app.ping_interval);
            Driver::new(app, &kind)
                .run(&mut strategy, now, cached, offers)
                .await?
        }
        StrategyKind::DcSwDeploy => {
            let record: DcStrategyRecord = serde_json::from_str(&strategy.options)
                .context("the strategy's options are unreadable")?;
            let kind = DcSwDeploySite::new(record, &strategy.id, app);
            Driver::new(app, &kind)
                .run(&mut strategy, now, cached, offers)
                .await?
        }
        StrategyKind::DcPrestage => {
            let record: DcStrategyRecord = serde_json::from_str(&strategy.options)
                .context("the strategy's options are unreadable")?;
            let kind = DcPrestageSite::new(record, &strategy.id, app)?;
            Driver::new(app, &kind)
                .run(&mut strategy, now, cached, offers)
                .await?
        }
        StrategyKind::SwPatch | StrategyKind::SwUpgrade => {
            let record = SwUpdateRecord::parse(strategy.kind, &strategy.options)
                .context("the strategy's options are unreadable")?
                .context("not a software-update strategy")?;
            let kind = SwUpdateSite::load(app, record).await?;
            Driver::new(app, &kind)
                .run(&mut strategy, now, cached, offers)
                .await?
        }
    };
    *loaded = Some(Loaded {
        strategy_id: strategy.id.clone(),
        strategy: current.then_some(strategy),
        changes,
        cached,
    });
    Ok(wait)
}

/// Enables again every cluster the strategy disabled: at its end, and after a crash.
async fn restore_clusters(app: &AppState, strategy_id: &str, now: Timestamp) -> anyhow::Result<()> {
    for name in app.store.enable_clusters(strategy_id, None, now).await? {
        info!(cluster = name, "cluster enabled again");
    }
    Ok(())
}

/// One tick of one strategy of kind `K`.
struct Driver<'a, K: SiteKind> {
    app: &'a AppState,
    kind: &'a K,
    pending: Mutex<Pending>,
    /// Set when a step ends in this tick.
    ended: AtomicBool,
    /// Set when the strategy changed under the driver: its copy must be read again.
    stale: AtomicBool,
}

/// What a tick has decided and not yet written.
#[derive(Default)]
struct Pending {
    batch: StepBatch,
    /// Hosts with a new command to fetch by polling.
    wake: Vec<String>,
    /// Reports taken in this tick, answered once their outcome is written.
    offers: Vec<Offer>,
    /// Commands handed to a reporting agent in the answer to its report, by host.
    handed: HashMap<String, Vec<CommandRecord>>,
    /// Commands handed to a host's waiting long poll.
    polled: Vec<(CommandRecord, Waiting)>,
    /// Outcomes of carried commands that came with their carrier's report, by command id.
    carried: HashMap<String, CommandOutcome>,
}

fn facts<'s>(step: &'s StepRecord, pending_end: Option<&'s Ending>) -> StepFacts<'s> {
    StepFacts {
        target: &step.target,
        stage: step.stage,
        state: &step.state,
        swept: step.swept,
        pending_end,
        phase_started_at: step.phase_started_at,
    }
}

impl<'a, K: SiteKind> Driver<'a, K> {
    /// The checks of `due` steps, at most `parallel` at a time, each with a cache of its own;
    /// by step index.
    async fn checks_side_by_side(
        &self,
        steps: &[StepRecord],
        due: Vec<(usize, <K::Rules as Kind>::Action)>,
        parallel: usize,
        now: Timestamp,
    ) -> anyhow::Result<HashMap<usize, Option<<K::Rules as Kind>::Result>>> {
        use futures_util::StreamExt;
        let checked: Vec<(usize, anyhow::Result<_>)> = futures_util::stream::iter(due)
            .map(|(i, action)| async move {
                let mut cache = K::TickCache::default();
                let result = self
                    .kind
                    .check(self.app, action, i, steps, &mut cache, now)
                    .await;
                (i, result)
            })
            .buffer_unordered(parallel)
            .collect()
            .await;
        checked
            .into_iter()
            .map(|(i, result)| result.map(|r| (i, r)))
            .collect()
    }

    /// The steps whose side-by-side check is due (with the action to check): one new in its
    /// phase (not yet checked in it), one at its phase's deadline, or one whose last check
    /// ended the recheck interval ago. Each step keeps its own pace, so a step moving on does
    /// not make the others' subclouds be read again, however often the driver wakes.
    fn due_checks(
        &self,
        steps: &[StepRecord],
        checked: &Checked,
        now: Timestamp,
    ) -> Vec<(usize, <K::Rules as Kind>::Action)> {
        let rules = self.rules();
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let phase = rules.parse_phase(s.stage, &s.state)?;
                let Effect::Controller(action) = rules.effect(phase, &s.target) else {
                    return None;
                };
                (now >= self.next_check(i, s, phase, checked, now)).then_some((i, action))
            })
            .collect()
    }

    /// When a step checked side by side is checked next: at once if not yet checked in its
    /// phase, else a recheck interval after its last check ended, or at its phase's deadline.
    fn next_check(
        &self,
        i: usize,
        step: &StepRecord,
        phase: <K::Rules as Kind>::Phase,
        checked: &Checked,
        now: Timestamp,
    ) -> Timestamp {
        match checked.get(&i) {
            Some((in_phase, ended)) if *in_phase == step.phase_started_at => {
                deadline(self.rules(), phase, &facts(step, None), now)
                    .min(*ended + self.kind.recheck())
            }
            _ => now,
        }
    }

    fn new(app: &'a AppState, kind: &'a K) -> Self {
        Driver {
            app,
            kind,
            pending: Mutex::default(),
            ended: AtomicBool::new(false),
            stale: AtomicBool::new(false),
        }
    }

    fn rules(&self) -> &K::Rules {
        self.kind.rules()
    }

    fn views(&self, steps: &[StepRecord]) -> Vec<StepView> {
        steps.iter().map(|s| self.view(s)).collect()
    }

    fn view(&self, step: &StepRecord) -> StepView {
        StepView {
            stage: step.stage,
            progress: progress(self.rules(), step.stage, &step.state, step.swept),
        }
    }

    fn engine_view<'v>(&self, strategy: &StrategyRecord, views: &'v [StepView]) -> EngineView<'v> {
        EngineView {
            state: strategy.state,
            stop_on_failure: strategy.stop_on_failure,
            max_parallel: strategy.max_parallel as usize,
            sweep: self.rules().sweep().is_some(),
            max_parallel_sweep: self.kind.sweep_parallelism(strategy),
            stop_after_stage: strategy.stop_at_stage,
            steps: views,
        }
    }

    /// The tick: returns how soon to look again, what to keep for the next tick, and whether
    /// the strategy record is still current.
    async fn run(
        &self,
        strategy: &mut StrategyRecord,
        now: Timestamp,
        cached: Option<Cached>,
        offers: Vec<Offer>,
    ) -> anyhow::Result<(Option<Duration>, Cached, bool)> {
        let (wait, cached) = self.tick(strategy, now, cached, offers).await?;
        Ok((wait, cached, !self.stale.load(Ordering::SeqCst)))
    }

    async fn tick(
        &self,
        strategy: &mut StrategyRecord,
        now: Timestamp,
        cached: Option<Cached>,
        offers: Vec<Offer>,
    ) -> anyhow::Result<(Option<Duration>, Cached)> {
        let store = &self.app.store;
        let inbox = &self.app.inbox;
        let rules = self.rules();
        // Cleared before the store is read, so an outcome stored meanwhile is read next time.
        let stored_elsewhere = inbox.take_stored();
        let (mut steps, fresh, mut checked) = match cached {
            Some(Cached { steps, checked }) => (steps, false, checked),
            None => (store.steps(&strategy.id).await?, true, Checked::new()),
        };
        let waiting_on: Vec<String> = steps.iter().filter_map(|s| s.command_id.clone()).collect();
        if fresh {
            // Before the store is read: a report from now on comes to the inbox.
            inbox.await_commands(waiting_on.iter().cloned());
        }
        let mut cache = K::TickCache::default();
        let mut outcomes: HashMap<String, CommandOutcome> = HashMap::new();
        if fresh || stored_elsewhere {
            for command in store.commands(&waiting_on).await? {
                if let (Some(json), Some(_)) = (&command.outcome, command.completed_at) {
                    outcomes.insert(command.id.clone(), serde_json::from_str(json)?);
                }
            }
        }
        self.take_offers(&steps, offers, &mut outcomes, now);

        // Checks a kind makes side by side: each step's first check of the tick, at once.
        let parallel = self.kind.parallel_checks();
        let due = if parallel > 1 {
            self.due_checks(&steps, &checked, now)
        } else {
            Vec::new()
        };
        let mut prefetched = if due.is_empty() {
            HashMap::new()
        } else {
            let started = std::time::Instant::now();
            let indices: Vec<usize> = due.iter().map(|(i, _)| *i).collect();
            self.kind.checks_due(&indices, &steps);
            let results = self.checks_side_by_side(&steps, due, parallel, now).await?;
            // Counted from the checks' end: each subcloud is read again at least the recheck
            // interval after this read.
            let took = jiff::SignedDuration::try_from(started.elapsed()).unwrap_or_default();
            for i in indices {
                checked.insert(i, (steps[i].phase_started_at, now + took));
            }
            results
        };
        // Progress of steps still in their phase goes in with the tick's writes, so the
        // driver's copy stays the step as stored.
        for (i, details) in self.kind.progress() {
            if let Some(step) = steps.get_mut(i)
                && step.details != details
            {
                step.details = details;
                step.updated_at = now;
                self.write(step, None, None, None)?;
            }
        }

        // 1. Feed every finished phase into the kind's rules. The engine's view is kept as
        // the steps move (one pass over the steps a tick, not one a transition); whether the
        // strategy is stopping changes only once a step has failed.
        let mut views = self.views(&steps);
        let mut stopping = self.engine_view(strategy, &views).stopping();
        let failed = |v: &StepView| v.progress == Progress::Done(Terminal::Failed);
        let mut any_failed = views.iter().any(failed);
        for i in 0..steps.len() {
            while let Some(phase) = rules.parse_phase(steps[i].stage, &steps[i].state) {
                let pending_end: Option<Ending> = steps[i]
                    .pending_end
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()?;
                let step_facts = facts(&steps[i], pending_end.as_ref());
                let due = deadline(rules, phase, &step_facts, now);
                let (result, output) = match rules.effect(phase, &steps[i].target) {
                    Effect::Controller(action) => {
                        let checked = match prefetched.remove(&i) {
                            Some(checked) => checked,
                            // Its next check comes with the next tick's.
                            None if parallel > 1 => break,
                            None => {
                                self.kind
                                    .check(self.app, action, i, &steps, &mut cache, now)
                                    .await?
                            }
                        };
                        match checked {
                            Some(result) => (result, serde_json::Value::Null),
                            None if now < due => break,
                            None => (
                                rules.timed_out(phase, &steps[i].target),
                                serde_json::Value::Null,
                            ),
                        }
                    }
                    Effect::Command(_) => match steps[i]
                        .command_id
                        .as_ref()
                        .and_then(|id| outcomes.remove(id))
                    {
                        Some(outcome) => (
                            self.kind.result_of(phase, &steps[i].target, &outcome),
                            outcome.output,
                        ),
                        None if now < due => break,
                        None => (
                            rules.timed_out(phase, &steps[i].target),
                            serde_json::Value::Null,
                        ),
                    },
                    // The time passing is the phase's result.
                    Effect::Wait if now < due => break,
                    Effect::Wait => (
                        rules.timed_out(phase, &steps[i].target),
                        serde_json::Value::Null,
                    ),
                };
                let step_facts = facts(&steps[i], pending_end.as_ref());
                debug!(step = steps[i].target, phase = rules.phase_name(phase), result = ?result, "phase ended");
                let moved = transition(rules, &step_facts, phase, result, stopping, now);
                self.advance(&mut steps[i], moved, output, now)?;
                views[i] = self.view(&steps[i]);
                any_failed |= failed(&views[i]);
                if any_failed {
                    stopping = self.engine_view(strategy, &views).stopping();
                }
            }
        }

        // (Written with step 2's changes: one commit a tick.)

        // 2. Let the engine start steps, abort pending ones and move the strategy on.
        for _ in 0..steps.len() + 4 {
            let views = self.views(&steps);
            let decisions = decide(&self.engine_view(strategy, &views));
            if decisions.is_empty() {
                break;
            }
            for decision in decisions {
                match decision {
                    Decision::StartSweep(i) => {
                        let sweep = rules.sweep().context("the kind has no sweep")?;
                        let effects = begin_effects(rules, sweep, &steps[i].target, false);
                        self.begin(&mut steps[i], sweep, effects, None, None, now)?
                    }
                    Decision::StartStep(i) => {
                        self.kind
                            .stage_starting(self.app, strategy, &steps[i], &mut cache, now)
                            .await?;
                        match rules.first(steps[i].stage) {
                            Some(first) => {
                                let effects = begin_effects(rules, first, &steps[i].target, false);
                                self.begin(&mut steps[i], first, effects, None, None, now)?;
                            }
                            None => {
                                let ending = Ending::new(Terminal::Complete, "Nothing to do");
                                self.end(&mut steps[i], ending, None, now)?;
                            }
                        }
                    }
                    Decision::AbortPending(i) => {
                        let ending = Ending::new(Terminal::Aborted, "Aborted before it started");
                        self.end(&mut steps[i], ending, None, now)?;
                    }
                    Decision::Become(next) => {
                        // The steps' changes are on disk before the strategy's.
                        self.flush(strategy).await?;
                        if next.is_terminal() {
                            // What the kind held is released before anyone can see the
                            // strategy ended.
                            let end = TickEnd {
                                stopping: true,
                                changed: true,
                            };
                            self.kind
                                .tick_written(self.app, strategy, &steps, end, now)
                                .await?;
                        }
                        let details = strategy_details(next, &steps);
                        if !store
                            .set_strategy_state(&strategy.id, strategy.state, next, &details, now)
                            .await?
                        {
                            // Changed under us (an API action): look again at once. The steps
                            // were just written, so they stay loaded.
                            self.stale.store(true, Ordering::SeqCst);
                            return Ok((Some(Duration::ZERO), Cached { steps, checked }));
                        }
                        info!(strategy = strategy.id, from = %strategy.state, to = %next, "strategy state");
                        strategy.state = next;
                        // A strategy's own alarm follows its state.
                        self.app.wakeups.recheck_alarms();
                    }
                }
            }
        }

        self.flush(strategy).await?;

        // 3. Let the kind release what its steps no longer need.
        let views = self.views(&steps);
        let end = TickEnd {
            stopping: self.engine_view(strategy, &views).stopping() || strategy.state.is_terminal(),
            changed: fresh || self.ended.load(Ordering::SeqCst),
        };
        self.kind
            .tick_written(self.app, strategy, &steps, end, now)
            .await?;

        inbox.await_commands(steps.iter().filter_map(|s| s.command_id.clone()));

        let wait = self
            .next_deadline(&steps, now, &checked, parallel > 1)
            .map(|at| {
                let left = at.duration_since(now);
                Duration::from_millis(left.as_millis().max(0) as u64)
            });
        Ok((wait, Cached { steps, checked }))
    }

    /// Takes the reports of commands the steps wait for: their outcomes are recorded with
    /// this tick's first write. Any other report is dropped, so its sender stores it.
    fn take_offers(
        &self,
        steps: &[StepRecord],
        offers: Vec<Offer>,
        outcomes: &mut HashMap<String, CommandOutcome>,
        now: Timestamp,
    ) {
        let mut pending = self.pending.lock().expect("pending writes lock");
        for offer in offers {
            let Some(step) = steps
                .iter()
                .find(|s| s.command_id.as_deref() == Some(offer.command_id.as_str()))
            else {
                continue;
            };
            if step.target != offer.hostname || outcomes.contains_key(&offer.command_id) {
                continue;
            }
            let kind = self
                .rules()
                .parse_phase(step.stage, &step.state)
                .and_then(|phase| self.command_kind(phase, &step.target));
            pending.batch.completions.push(CommandCompletion {
                id: offer.command_id.clone(),
                hostname: offer.hostname.clone(),
                outcome: serde_json::to_string(&offer.outcome).unwrap_or_default(),
                completed_at: now,
                effects: kind
                    .map(|kind| host_effects(kind, &offer.outcome))
                    .unwrap_or_default(),
            });
            outcomes.insert(offer.command_id.clone(), offer.outcome.clone());
            // The outcome of the command this one carried: recorded with the carried
            // command's record when the step gets there, later in this tick.
            if let Some(then) = &offer.then
                && carried_id(&offer.command_id).ok() == Some(then.id.to_string())
            {
                outcomes.insert(then.id.to_string(), then.outcome.clone());
                pending
                    .carried
                    .insert(then.id.to_string(), then.outcome.clone());
            }
            pending.offers.push(offer);
        }
    }

    /// The earliest moment a step's phase runs out of time, among the steps waiting for one,
    /// or a controller check that has not settled is asked again: for checks made side by
    /// side (`side_by_side`), a recheck interval after the step's last check ended (at once if
    /// not yet checked in its phase); else a recheck interval from now, or at once for a
    /// check begun in this tick.
    fn next_deadline(
        &self,
        steps: &[StepRecord],
        now: Timestamp,
        checked: &Checked,
        side_by_side: bool,
    ) -> Option<Timestamp> {
        let rules = self.rules();
        let recheck = self.kind.recheck();
        steps
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let phase = rules.parse_phase(s.stage, &s.state)?;
                let due = deadline(rules, phase, &facts(s, None), now);
                Some(match rules.effect(phase, &s.target) {
                    Effect::Controller(_) if side_by_side => {
                        self.next_check(i, s, phase, checked, now)
                    }
                    Effect::Controller(_) if s.phase_started_at == Some(now) => now,
                    Effect::Controller(_) => due.min(now + recheck),
                    Effect::Command(_) | Effect::Wait => due,
                })
            })
            .min()
    }

    /// The agent command kind that performs `phase`, if one does.
    fn command_kind(&self, phase: <K::Rules as Kind>::Phase, target: &str) -> Option<CommandKind> {
        match self.rules().effect(phase, target) {
            Effect::Command(action) => self.kind.command(action, target).map(|(kind, _)| kind),
            _ => None,
        }
    }

    /// Records how a phase ended and moves the step as the kind's transition says.
    fn advance(
        &self,
        step: &mut StepRecord,
        moved: convoy_core::strategy::kind::Transition<
            <K::Rules as Kind>::Phase,
            <K::Rules as Kind>::Action,
        >,
        output: serde_json::Value,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let PhaseEnd {
            phase,
            result,
            details,
        } = moved.finished;
        let finished = PhaseRecord {
            target: step.target.clone(),
            phase: phase.clone(),
            started_at: step.phase_started_at.unwrap_or(now),
            finished_at: Some(now),
            result: Some(result.into()),
            details,
            output: output.to_string(),
        };
        let effects = (moved.effect, moved.carried);
        match moved.change {
            StepChange::Begin { phase, carried } => {
                // The agent already has the command of a phase sent along with this one.
                let carried_by = step.command_id.clone().filter(|_| carried);
                self.begin(step, phase, effects, Some(finished), carried_by, now)
            }
            StepChange::BeginCleanup { phase, then } => {
                step.pending_end = Some(serde_json::to_string(&then)?);
                self.begin(step, phase, effects, Some(finished), None, now)
            }
            StepChange::AwaitStage => {
                step.state = "initial".into();
                step.swept = true;
                step.details = format!("{} passed; waiting for its stage", capitalised(&phase));
                step.command_id = None;
                step.phase_started_at = None;
                step.updated_at = now;
                self.write(step, Some(finished), None, None)
            }
            StepChange::End(ending) => self.end(step, ending, Some(finished), now),
        }
    }

    /// Starts `phase` on the step: the step, the phase record and the command that performs
    /// it are written together, then the host's agent is woken. `carried_by` is the command
    /// that already took this phase's command to the agent, if one did.
    fn begin(
        &self,
        step: &mut StepRecord,
        phase: <K::Rules as Kind>::Phase,
        effects: Effects<K::Rules>,
        finished: Option<PhaseRecord>,
        carried_by: Option<String>,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let (command, began, finished) = match carried_by {
            Some(first) => {
                let (command, began) = self.carried_command(step, phase, &first, now)?;
                // The carrier's phase ended when the carried one began.
                let finished = finished.map(|f| PhaseRecord {
                    finished_at: Some(began),
                    ..f
                });
                (command, began, finished)
            }
            None => (self.new_command(step, effects, now)?, now, finished),
        };
        let name = self.rules().phase_name(phase).to_string();
        step.state = name.clone();
        step.command_id = command.as_ref().map(|c| c.id.clone());
        step.phase_started_at = Some(began);
        step.started_at.get_or_insert(now);
        step.updated_at = now;
        let started = PhaseRecord {
            target: step.target.clone(),
            phase: name,
            started_at: began,
            finished_at: None,
            result: None,
            details: String::new(),
            output: "null".into(),
        };
        self.write(step, finished, Some(started), command)
    }

    /// A new command for a phase's effect, with the command of the phase it carries inside,
    /// handed to the agent's report or poll if one is here.
    fn new_command(
        &self,
        step: &StepRecord,
        (effect, carried): Effects<K::Rules>,
        now: Timestamp,
    ) -> anyhow::Result<Option<CommandRecord>> {
        let Some(Effect::Command(action)) = effect else {
            return Ok(None);
        };
        let Some((kind, mut payload)) = self.kind.command(action, &step.target) else {
            return Ok(None);
        };
        let id = crate::ids::command_id();
        if let Some((_, Effect::Command(then_action))) = carried
            && let Some((then_kind, then_payload)) = self.kind.command(then_action, &step.target)
        {
            let then = CommandDelivery {
                id: carried_id(&id)?.parse()?,
                kind: then_kind,
                payload: then_payload,
            };
            payload = serde_json::to_value(FollowedBy { then })?;
        }
        let mut command = CommandRecord::new(id, &step.target, kind, payload.to_string(), now);
        if !self.hand_to_reporter(&mut command, now) {
            self.hand_to_poll(&mut command, now);
        }
        Ok(Some(command))
    }

    /// The record of the command `first` took to the agent for `phase`, and when the phase
    /// began: delivered to the agent run that reported `first`, and completed if its outcome
    /// came along (the phase then began the work's run time ago, not when this tick heard of
    /// it; never before the carrier's phase began). If this tick did not hear that report (it
    /// was read from the store), the command is left to be delivered again, which the agent
    /// answers from its record or ignores while it runs.
    fn carried_command(
        &self,
        step: &StepRecord,
        phase: <K::Rules as Kind>::Phase,
        first: &str,
        now: Timestamp,
    ) -> anyhow::Result<(Option<CommandRecord>, Timestamp)> {
        let Effect::Command(action) = self.rules().effect(phase, &step.target) else {
            return Ok((None, now));
        };
        let Some((kind, payload)) = self.kind.command(action, &step.target) else {
            return Ok((None, now));
        };
        let mut command = CommandRecord::new(
            carried_id(first)?,
            &step.target,
            kind,
            payload.to_string(),
            now,
        );
        let mut began = now;
        let mut pending = self.pending.lock().expect("pending writes lock");
        if let Some(outcome) = pending.carried.remove(&command.id) {
            command.completed_at = Some(now);
            command.outcome = Some(serde_json::to_string(&outcome)?);
            if let Some(took) = self.kind.duration_of(&outcome) {
                began = (now - took).max(step.phase_started_at.unwrap_or(now));
            }
        }
        if let Some(session) = pending
            .offers
            .iter()
            .find(|o| o.command_id == first)
            .and_then(|o| o.session.clone())
        {
            command.dispatched_at = Some(now);
            command.dispatched_session = Some(session);
        }
        Ok((Some(command), began))
    }

    fn end(
        &self,
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
        self.ended.store(true, Ordering::SeqCst);
        step.state = ending.state.as_str().into();
        step.details = ending.reason;
        step.command_id = None;
        step.pending_end = None;
        step.phase_started_at = None;
        if step.started_at.is_some() {
            step.finished_at = Some(now);
        }
        step.updated_at = now;
        self.kind.step_ended(step);
        self.write(step, finished, None, None)
    }

    /// If the command's host reported in this tick, the command goes back in the answer to
    /// that report: it is marked as delivered to the reporting agent run.
    fn hand_to_reporter(&self, command: &mut CommandRecord, now: Timestamp) -> bool {
        let mut pending = self.pending.lock().expect("pending writes lock");
        let Some(session) = pending
            .offers
            .iter()
            .find(|o| o.hostname == command.hostname)
            .and_then(|o| o.session.clone())
        else {
            return false;
        };
        command.dispatched_at = Some(now);
        command.dispatched_session = Some(session);
        pending
            .handed
            .entry(command.hostname.clone())
            .or_default()
            .push(command.clone());
        true
    }

    /// If the command's host has a long poll waiting, the command goes to it: it is marked as
    /// delivered to the poll's agent run.
    fn hand_to_poll(&self, command: &mut CommandRecord, now: Timestamp) {
        let Some(poll) = self.app.polls.take(&command.hostname) else {
            return;
        };
        command.dispatched_at = Some(now);
        command.dispatched_session = Some(poll.session.clone());
        let mut pending = self.pending.lock().expect("pending writes lock");
        pending.polled.push((command.clone(), poll));
    }

    /// Queues a step's change; [`Self::flush`] writes the queue in one transaction.
    fn write(
        &self,
        step: &StepRecord,
        finished_phase: Option<PhaseRecord>,
        started_phase: Option<PhaseRecord>,
        command: Option<CommandRecord>,
    ) -> anyhow::Result<()> {
        let mut pending = self.pending.lock().expect("pending writes lock");
        if let Some(command) = &command
            && command.dispatched_session.is_none()
        {
            pending.wake.push(step.target.clone());
        }
        pending.batch.steps.push(StepWrite {
            step: step.clone(),
            finished_phase,
            started_phase,
            command,
        });
        Ok(())
    }

    /// Writes the queued changes in one transaction, then answers the reports taken and wakes
    /// the agents that have a new command to poll for: nothing reaches an agent before it is
    /// on disk.
    async fn flush(&self, strategy: &StrategyRecord) -> anyhow::Result<()> {
        let Pending {
            mut batch,
            wake,
            offers,
            mut handed,
            polled,
            // Each was taken by its carried command's record in the same pass.
            carried: _,
        } = std::mem::take(&mut *self.pending.lock().expect("pending writes lock"));
        batch.subclouds = self.kind.subcloud_writes();
        // Awaited before they exist, so no report of them can miss the inbox.
        self.app.inbox.also_await(
            batch
                .steps
                .iter()
                .filter_map(|w| w.command.as_ref().map(|c| c.id.clone())),
        );
        let writing = std::time::Instant::now();
        self.app.store.write_steps(&strategy.id, &batch).await?;
        debug!(
            steps = batch.steps.len(),
            subclouds = batch.subclouds.len(),
            reports = offers.len(),
            polls = polled.len(),
            micros = writing.elapsed().as_micros(),
            "tick written"
        );
        for offer in offers {
            let next = handed.remove(&offer.hostname).unwrap_or_default();
            let _ = offer.reply.send(next);
        }
        // A poll that went away meanwhile never got its command: take the delivery mark back,
        // so that the agent's next poll gets it at once.
        let mut undelivered = Vec::new();
        for (command, poll) in polled {
            if poll.reply.send(vec![command.clone()]).is_err() {
                undelivered.push(command);
            }
        }
        if !undelivered.is_empty() {
            let ids: Vec<String> = undelivered.iter().map(|c| c.id.clone()).collect();
            self.app.store.undeliver(&ids).await?;
        }
        for host in wake.iter().chain(undelivered.iter().map(|c| &c.hostname)) {
            self.app.wakeups.wake_host(host);
        }
        Ok(())
    }
}

fn carried_id(first: &str) -> anyhow::Result<String> {
    crate::ids::carried_command_id(first)
        .with_context(|| format!("command id {first:?} is not a UUID"))
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

/// "pre-flight" as the start of a sentence: "Pre-flight".
fn capitalised(phase: &str) -> String {
    let mut chars = phase.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use clap::Parser;
    use convoy_bundle::TrustedKeys;
    use convoy_core::host::{HostFacts, Personality};
    use convoy_core::strategy::planner::Scope;
    use convoy_store::{EnrolAuthority, HostEnrolment, SqliteStore, Store};
    use jiff::SignedDuration;

    use super::*;
    use crate::config::{Args, Settings};

    /// A controller's state on a fresh store in `dir`, with one enrolled host.
    async fn controller(dir: &std::path::Path) -> AppState {
        let data = dir.to_str().unwrap();
        let settings =
            Settings::resolve(&Args::parse_from(["convoyd", "--data-dir", data])).unwrap();
        let store = SqliteStore::open(&settings.database_url).await.unwrap();
        store
            .enrol_host(&HostEnrolment {
                authority: EnrolAuthority::SiteToken,
                hostname: "worker-1".into(),
                personality: Personality::Worker,
                zone: None,
                pod: None,
                cluster: None,
                credential_hash: "x".into(),
                facts: HostFacts {
                    capacity_cpus: 4,
                    capacity_memory_mib: 4096,
                    load_cpus: 0.0,
                    load_memory_mib: 0,
                    boot_id: "boot".into(),
                    os: "linux".into(),
                    agent_version: "0".into(),
                    state_fs_free_bytes: 1 << 30,
                    maintenance: false,
                    software: Default::default(),
                    instances: Vec::new(),
                },
                now: Timestamp::UNIX_EPOCH,
            })
            .await
            .unwrap();
        let store = Arc::new(store);
        AppState::new(
            store.clone(),
            store,
            "token".into(),
            TrustedKeys::new([]),
            &settings,
        )
    }

    /// An applying rolling maintenance of worker-1 whose stage timeout is 60 s.
    async fn applying_strategy(app: &AppState, now: Timestamp) -> StrategyRecord {
        let options = RollingMaintenanceOptions {
            scope: Scope::Hosts(vec!["worker-1".into()]),
            forced: false,
            timeout_seconds: 60,
            payload: None,
            max_parallel_preflight: Some(1),
        };
        let strategy = StrategyRecord {
            id: "s-1".into(),
            kind: StrategyKind::RollingMaintenance,
            state: StrategyState::Applying,
            max_parallel: 1,
            stop_on_failure: false,
            options: serde_json::to_string(&options).unwrap(),
            stop_at_stage: None,
            details: String::new(),
            created_at: now,
            updated_at: now,
        };
        let step = StepRecord::planned("worker-1", 0, 1, now);
        app.store.create_strategy(&strategy, &[step]).await.unwrap();
        strategy
    }

    async fn worker_1(app: &AppState) -> StepRecord {
        app.store.step("s-1", "worker-1").await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn a_phase_without_an_outcome_fails_exactly_at_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let app = controller(dir.path()).await;
        let t0 = Timestamp::from_second(1_000_000).unwrap();
        let strategy = applying_strategy(&app, t0).await;
        let mut loaded = None;

        // The sweep starts: PreFlight's command is written, and the driver waits for its
        // deadline: the stage timeout plus the agent's time to report a kill.
        let wait = tick(&app, &mut loaded, t0).await.unwrap();
        let step = worker_1(&app).await;
        assert_eq!(step.state, "pre-flight");
        assert!(step.command_id.is_some());
        let timeout =
            SignedDuration::from_secs(60) + app.ping_interval * 2 + SignedDuration::from_secs(10);
        assert_eq!(wait, Some(Duration::try_from(timeout).unwrap()));

        // A millisecond before the deadline nothing changes.
        let before = t0 + timeout - SignedDuration::from_millis(1);
        let wait = tick(&app, &mut loaded, before).await.unwrap();
        assert_eq!(wait, Some(Duration::from_millis(1)));
        let step = worker_1(&app).await;
        assert_eq!(step.state, "pre-flight");

        // At the deadline the phase fails, and with it the step and the strategy.
        tick(&app, &mut loaded, t0 + timeout).await.unwrap();
        let step = worker_1(&app).await;
        assert_eq!(step.state, "failed");
        assert_eq!(
            step.details,
            format!(
                "Pre-flight script failed: no outcome from worker-1 within {} s; is its agent running?",
                timeout.as_secs()
            )
        );
        let phases = app
            .store
            .phases(&strategy.id, Some("worker-1"))
            .await
            .unwrap();
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].finished_at, Some(t0 + timeout));
        let strategy = app.store.strategy().await.unwrap().unwrap();
        assert_eq!(strategy.state, StrategyState::Failed);
    }
}

//! `convoy patch-strategy ...` and `convoy sw-deploy-strategy ...`: StarlingX's `sw-manager
//! patch-strategy` and `sw-manager sw-deploy-strategy`, against the controller's
//! `/api/orchestration/sw-patch/strategy` and `/api/orchestration/sw-upgrade/strategy`.

use std::time::Duration;

use clap::{Args, Subcommand};
use convoy_api::Client;
use convoy_core::sw_update::options::{
    AlarmRestrictions, ApplyType, DEFAULT_MAX_PARALLEL_WORKER_HOSTS, InstanceAction,
    SwPatchOptions, SwUpdateKind, SwUpgradeOptions,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// sw-manager's create options both strategies share; the first value each lists is the
/// default.
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs {
    /// serial or ignore (parallel is accepted, and fails the build when a controller needs the
    /// update, as sw-manager's).
    #[arg(long, default_value = "serial", value_parser = parse::<ApplyType>)]
    controller_apply_type: ApplyType,
    /// serial, parallel or ignore.
    #[arg(long, default_value = "serial", value_parser = parse::<ApplyType>)]
    storage_apply_type: ApplyType,
    /// serial, parallel or ignore.
    #[arg(long, default_value = "serial", value_parser = parse::<ApplyType>)]
    worker_apply_type: ApplyType,
    /// Workers updated at once with --worker-apply-type parallel (2..100 for a patch
    /// strategy, 2..10 for a sw-deploy strategy).
    #[arg(long, default_value_t = DEFAULT_MAX_PARALLEL_WORKER_HOSTS)]
    max_parallel_worker_hosts: u32,
    /// stop-start or migrate.
    #[arg(long, default_value = "stop-start", value_parser = parse::<InstanceAction>)]
    instance_action: InstanceAction,
    /// strict (every alarm not on the ignore list blocks) or relaxed (only
    /// management-affecting ones do).
    #[arg(long, default_value = "strict", value_parser = parse::<AlarmRestrictions>)]
    alarm_restrictions: AlarmRestrictions,
}

#[derive(Debug, Subcommand)]
pub enum PatchStrategyCommand {
    /// Build a patch strategy from the site as it is: the build checks, then the stages.
    Create(ApplyArgs),
    #[command(flatten)]
    Verb(StrategyVerb),
}

/// `sw-deploy-strategy create`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DeployCreateArgs {
    /// The release to deploy (`convoy software list`).
    release: String,
    #[command(flatten)]
    apply: ApplyArgs,
    /// Delete the deploy record once the release is deployed (a `sw-deploy-delete` stage).
    #[arg(long)]
    delete: bool,
}

#[derive(Debug, Subcommand)]
pub enum SwDeployStrategyCommand {
    /// Build a sw-deploy strategy for RELEASE from the site as it is: deploy start, the host
    /// stages, then activate and complete.
    Create(DeployCreateArgs),
    #[command(flatten)]
    Verb(StrategyVerb),
}

/// What both strategies do once created.
#[derive(Debug, Subcommand)]
pub enum StrategyVerb {
    /// The strategy: its options, phase and state.
    Show {
        /// Also every stage and step.
        #[arg(long)]
        details: bool,
        /// Only the stage and step running now.
        #[arg(long)]
        active: bool,
        /// The reasons of failed steps.
        #[arg(long)]
        error_details: bool,
    },
    /// Apply every stage, or with --stage-id only the next one.
    Apply {
        /// Apply only this stage (the first, then each next one in turn).
        #[arg(long)]
        stage_id: Option<u32>,
        /// Follow the apply until it ends, with a progress bar.
        #[arg(long)]
        wait: bool,
    },
    /// Stop the apply: the running step finishes, then the abort phase undoes what the
    /// unfinished stage did (hosts are unlocked).
    Abort {
        /// Abort only if this is the stage running.
        #[arg(long)]
        stage_id: Option<u32>,
    },
    /// Delete a strategy that is not applying or aborting.
    Delete,
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| e.to_string())
}

fn bad_option(e: convoy_core::ValidationError) -> Failure {
    Failure::bad_input(format!("--{}: {}", e.field.replace('_', "-"), e.reason))
}

impl PatchStrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let kind = SwUpdateKind::SwPatch;
        let client = connection.authenticated().await?;
        match self {
            PatchStrategyCommand::Create(a) => {
                let options = SwPatchOptions {
                    controller_apply_type: a.controller_apply_type,
                    storage_apply_type: a.storage_apply_type,
                    worker_apply_type: a.worker_apply_type,
                    max_parallel_worker_hosts: a.max_parallel_worker_hosts,
                    default_instance_action: a.instance_action,
                    alarm_restrictions: a.alarm_restrictions,
                    ..SwPatchOptions::default()
                };
                options.validate().map_err(bad_option)?;
                let answer = client.create_sw_update_strategy(kind, &options).await?;
                show(out, &answer["strategy"], false, false, false)
            }
            PatchStrategyCommand::Verb(verb) => verb.run(&client, kind, out).await,
        }
    }
}

impl SwDeployStrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let kind = SwUpdateKind::SwUpgrade;
        let client = connection.authenticated().await?;
        match self {
            SwDeployStrategyCommand::Create(args) => {
                let a = &args.apply;
                let options = SwUpgradeOptions {
                    controller_apply_type: a.controller_apply_type,
                    storage_apply_type: a.storage_apply_type,
                    worker_apply_type: a.worker_apply_type,
                    max_parallel_worker_hosts: a.max_parallel_worker_hosts,
                    default_instance_action: a.instance_action,
                    alarm_restrictions: a.alarm_restrictions,
                    release: vec![args.release.clone()],
                    delete: args.delete,
                    ..SwUpgradeOptions::default()
                };
                options.validate().map_err(bad_option)?;
                let answer = client.create_sw_update_strategy(kind, &options).await?;
                show(out, &answer["strategy"], false, false, false)
            }
            SwDeployStrategyCommand::Verb(verb) => verb.run(&client, kind, out).await,
        }
    }
}

impl StrategyVerb {
    async fn run(self, client: &Client, kind: SwUpdateKind, out: &Output) -> Result<(), Failure> {
        match self {
            StrategyVerb::Show {
                details,
                active,
                error_details,
            } => {
                let answer = client.sw_update_strategy(kind).await?;
                if answer["strategy"].is_null() {
                    out.note("No strategy available");
                    return Ok(());
                }
                show(out, &answer["strategy"], details, active, error_details)
            }
            StrategyVerb::Apply { stage_id, wait } => {
                let action = if stage_id.is_some() {
                    "apply-stage"
                } else {
                    "apply-all"
                };
                let answer = client
                    .sw_update_strategy_action(kind, action, stage_id)
                    .await?;
                if !wait {
                    return show(out, &answer["strategy"], false, false, false);
                }
                let strategy = follow(client, kind, out).await?;
                show(out, &strategy, false, false, true)
            }
            StrategyVerb::Abort { stage_id } => {
                let action = if stage_id.is_some() {
                    "abort-stage"
                } else {
                    "abort"
                };
                let answer = client
                    .sw_update_strategy_action(kind, action, stage_id)
                    .await?;
                show(out, &answer["strategy"], false, false, false)
            }
            StrategyVerb::Delete => {
                client.delete_sw_update_strategy(kind).await?;
                out.note("Strategy deleted");
                Ok(())
            }
        }
    }
}

/// The states a strategy rests in.
fn is_final(state: &str) -> bool {
    matches!(
        state,
        "applied"
            | "apply-failed"
            | "apply-timeout"
            | "aborted"
            | "abort-failed"
            | "abort-timeout"
            | "build-failed"
            | "build-timeout"
            | "ready-to-apply"
    )
}

/// Polls the strategy until it rests, showing the phase's completion and the running step.
async fn follow(client: &Client, kind: SwUpdateKind, out: &Output) -> Result<Value, Failure> {
    let bar = if out.is_table() {
        ProgressBar::new(100)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}%  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let answer = client.sw_update_strategy(kind).await?;
        let strategy = answer["strategy"].clone();
        let state = strategy["state"].as_str().unwrap_or("");
        bar.set_position(
            strategy["current-phase-completion-percentage"]
                .as_u64()
                .unwrap_or(0),
        );
        bar.set_message(format!("{state} {}", active_step(&strategy)));
        if strategy.is_null() || (is_final(state) && state != "ready-to-apply") {
            bar.finish_and_clear();
            return Ok(strategy);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// "stage-name: step-name [hosts]" of the step running now.
fn active_step(strategy: &Value) -> String {
    let phase = strategy["current-phase"].as_str().unwrap_or("apply");
    let stages = strategy[format!("{phase}-phase")]["stages"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    stages
        .iter()
        .filter(|s| s["inprogress"].as_bool() == Some(true))
        .flat_map(|stage| {
            stage["steps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|s| s["result"] == "inprogress")
                .map(move |s| {
                    format!(
                        "{}: {} {}",
                        stage["stage-name"].as_str().unwrap_or(""),
                        s["step-name"].as_str().unwrap_or(""),
                        s["entity-names"]
                    )
                })
        })
        .next()
        .unwrap_or_default()
}

/// sw-manager's `show`: the options and state, then per phase its result and reason, and with
/// `details` every stage and step.
pub fn show(
    out: &Output,
    s: &Value,
    details: bool,
    active: bool,
    error_details: bool,
) -> Result<(), Failure> {
    if !out.is_table() {
        return out.one(s);
    }
    let field = |key: &str| match &s[key] {
        Value::String(v) => v.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let title = match s["name"].as_str() {
        Some("sw-upgrade") => "Strategy Software Deploy Strategy:",
        _ => "Strategy Patch Strategy:",
    };
    let mut lines = vec![title.to_string()];
    let mut line =
        |name: &str, value: String| lines.push(format!("  {:<38}{value}", format!("{name}:")));
    line("strategy-uuid", field("uuid"));
    if s["name"] == "sw-upgrade" {
        line("release-id", field("release"));
    }
    line("controller-apply-type", field("controller-apply-type"));
    line("storage-apply-type", field("storage-apply-type"));
    line("worker-apply-type", field("worker-apply-type"));
    if field("worker-apply-type") == "parallel" {
        line(
            "max-parallel-worker-hosts",
            field("max-parallel-worker-hosts"),
        );
    }
    line("default-instance-action", field("default-instance-action"));
    line("alarm-restrictions", field("alarm-restrictions"));
    line("current-phase", field("current-phase"));
    line(
        "current-phase-completion",
        format!("{}%", field("current-phase-completion-percentage")),
    );
    line("state", field("state"));
    let phase = format!("{}-phase", field("current-phase"));
    if s[&phase]["inprogress"].as_bool() == Some(true) {
        line("inprogress", "true".into());
    }
    for name in ["build", "apply", "abort"] {
        let p = &s[format!("{name}-phase")];
        let result = p["result"].as_str().unwrap_or("initial");
        if result == "initial" || p["inprogress"].as_bool() == Some(true) {
            continue;
        }
        line(&format!("{name}-result"), result.into());
        line(
            &format!("{name}-reason"),
            p["reason"].as_str().unwrap_or("").into(),
        );
    }
    for text in lines {
        crate::output::emit(&text);
    }
    if details || active || error_details {
        for name in ["build", "apply", "abort"] {
            let p = &s[format!("{name}-phase")];
            for stage in p["stages"].as_array().cloned().unwrap_or_default() {
                if active && stage["inprogress"].as_bool() != Some(true) {
                    continue;
                }
                crate::output::emit(&format!(
                    "  {name}-phase stage {}: {} ({})",
                    stage["stage-id"],
                    stage["stage-name"].as_str().unwrap_or(""),
                    stage["result"].as_str().unwrap_or("")
                ));
                for step in stage["steps"].as_array().cloned().unwrap_or_default() {
                    let result = step["result"].as_str().unwrap_or("");
                    let failed = matches!(result, "failed" | "timed-out" | "aborted");
                    if (active && result != "inprogress") || (error_details && !details && !failed)
                    {
                        continue;
                    }
                    let mut text = format!(
                        "    step {}: {} {} timeout {} s: {result}",
                        step["step-id"],
                        step["step-name"].as_str().unwrap_or(""),
                        step["entity-names"],
                        step["timeout"]
                    );
                    if failed {
                        text.push_str(&format!(" ({})", step["reason"].as_str().unwrap_or("")));
                    }
                    crate::output::emit(&text);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_with_the_originals_strings() {
        assert_eq!(parse::<ApplyType>("parallel"), Ok(ApplyType::Parallel));
        assert!(parse::<ApplyType>("sideways").is_err());
    }
}

//! `convoy rolling-maintenance-strategy ...` and the one-shot `convoy rolling-maintenance start`.

use std::time::Duration;

use clap::{Args, Subcommand};
use convoy_api::Client;
use convoy_api::strategies::{ActionName, MaintenanceReport, NewRollingMaintenance};
use convoy_core::strategy::StrategyState;
use indicatif::{ProgressBar, ProgressStyle};

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// What to maintain and how; the options of CloudStack's startRollingMaintenance.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Hosts to maintain (comma-separated).
    #[arg(long, value_delimiter = ',', group = "scope")]
    hosts: Option<Vec<String>>,
    /// Every host of these clusters.
    #[arg(long, value_delimiter = ',', group = "scope")]
    clusters: Option<Vec<String>>,
    /// Every host of these pods.
    #[arg(long, value_delimiter = ',', group = "scope")]
    pods: Option<Vec<String>>,
    /// Every host of these zones.
    #[arg(long, value_delimiter = ',', group = "scope")]
    zones: Option<Vec<String>>,
    /// Skip a host whose stage fails (with the reason) instead of failing the strategy.
    #[arg(long)]
    forced: bool,
    /// Time limit of each stage on each host, in seconds [default: 1800].
    #[arg(long)]
    timeout: Option<u64>,
    /// Words appended to every hook's arguments (split on whitespace; no shell).
    #[arg(long, allow_hyphen_values = true)]
    payload: Option<String>,
    /// Hosts of a cluster maintained at once [default: 1].
    #[arg(long)]
    max_parallel_hosts: Option<u32>,
    /// Hosts whose PreFlight runs at once (it takes no host out of service) [default: 100, or
    /// --max-parallel-hosts if more].
    #[arg(long)]
    max_parallel_preflight: Option<u32>,
    /// Stop at the first failed host: running hosts finish their stage and cleanup, nothing
    /// new starts.
    #[arg(long)]
    stop_on_failure: bool,
}

impl CreateArgs {
    fn request(&self) -> NewRollingMaintenance {
        NewRollingMaintenance {
            hosts: self.hosts.clone(),
            clusters: self.clusters.clone(),
            pods: self.pods.clone(),
            zones: self.zones.clone(),
            forced: self.forced,
            timeout_seconds: self.timeout,
            payload: self.payload.clone(),
            max_parallel_hosts: self.max_parallel_hosts,
            max_parallel_preflight: self.max_parallel_preflight,
            stop_on_failure: self.stop_on_failure,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum StrategyCommand {
    /// Validate and plan a rolling maintenance; nothing runs until `apply`.
    Create(CreateArgs),
    /// Show the strategy, or with --report the hosts updated and skipped.
    Show {
        #[arg(long)]
        report: bool,
    },
    /// Start the strategy.
    Apply,
    /// Stop it: running hosts finish their stage and cleanup, pending hosts are aborted.
    Abort,
    /// Delete a strategy that is not running.
    Delete,
}

impl StrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            StrategyCommand::Create(args) => {
                out.one(&client.create_rolling_maintenance(&args.request()).await?)
            }
            StrategyCommand::Show { report: false } => {
                out.one(&client.rolling_maintenance().await?)
            }
            StrategyCommand::Show { report: true } => {
                show_report(out, &client.rolling_maintenance_report().await?)
            }
            StrategyCommand::Apply => {
                out.one(&client.rolling_maintenance_action(ActionName::Apply).await?)
            }
            StrategyCommand::Abort => {
                out.one(&client.rolling_maintenance_action(ActionName::Abort).await?)
            }
            StrategyCommand::Delete => out.one(&client.delete_rolling_maintenance().await?),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum OneShotCommand {
    /// Create and apply a rolling maintenance; with --wait, follow it to its end.
    Start {
        #[command(flatten)]
        create: CreateArgs,
        /// Follow the strategy with a live progress display and print its report; exit 0
        /// only if it completed.
        #[arg(long)]
        wait: bool,
    },
}

impl OneShotCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let OneShotCommand::Start { create, wait } = self;
        let client = connection.authenticated().await?;
        client.create_rolling_maintenance(&create.request()).await?;
        let strategy = client.rolling_maintenance_action(ActionName::Apply).await?;
        if !wait {
            return out.one(&strategy);
        }
        let report = follow(&client, out).await?;
        show_report(out, &report)?;
        if report.state == StrategyState::Complete {
            Ok(())
        } else {
            Err(Failure::failed(format!(
                "the rolling maintenance ended {}{}",
                report.state,
                if report.details.is_empty() {
                    String::new()
                } else {
                    format!(": {}", report.details)
                }
            )))
        }
    }
}

/// Polls the strategy until it ends, showing a progress bar of finished hosts and what the
/// running ones are doing (on stderr, and only for tables, so scripts get clean output).
pub async fn follow(client: &Client, out: &Output) -> Result<MaintenanceReport, Failure> {
    let bar = if out.is_table() {
        ProgressBar::new(0)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} hosts  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    loop {
        let strategy = client.rolling_maintenance().await?;
        let steps = client.strategy_steps().await?;
        let done = steps.iter().filter(|s| s.state.is_ended()).count();
        let running: Vec<String> = steps
            .iter()
            .filter_map(|s| Some(format!("{}: {}", s.target, s.state.phase()?)))
            .collect();
        bar.set_length(steps.len() as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("{} {}", strategy.state, running.join(", ")));
        if strategy.state.is_terminal() {
            bar.finish_and_clear();
            return Ok(client.rolling_maintenance_report().await?);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The report: a summary and tables of updated, skipped and failed hosts.
pub fn show_report(out: &Output, report: &MaintenanceReport) -> Result<(), Failure> {
    if !out.is_table() {
        return out.one(report);
    }
    out.note(&format!(
        "Rolling maintenance {}: success={} details={}",
        report.state,
        report.success,
        if report.details.is_empty() {
            "-"
        } else {
            &report.details
        }
    ));
    out.note("\nHosts updated:");
    out.list(
        &report.hosts_updated,
        &["hostname", "start", "end", "output"],
    )?;
    out.note("\nHosts skipped:");
    out.list(&report.hosts_skipped, &["hostname", "reason"])?;
    if !report.hosts_failed.is_empty() {
        out.note("\nHosts failed:");
        out.list(&report.hosts_failed, &["hostname", "reason"])?;
    }
    Ok(())
}

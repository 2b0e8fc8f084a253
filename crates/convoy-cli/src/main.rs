//! `convoy`: the command-line client of Convoy.

mod commands;
mod connection;
mod failure;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::OutputArgs;

/// Convoy: rolling software updates across a distributed cloud.
///
/// Talks to a convoyd at --url (or CONVOY_URL) with a token (--token, CONVOY_TOKEN) or a user
/// name and password (--username/--password, CONVOY_USERNAME/CONVOY_PASSWORD).
#[derive(Debug, Parser)]
#[command(name = "convoy", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    connection: ConnectionArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The site's hosts: list, show, lock, unlock, delete, ping, facts.
    #[command(subcommand)]
    Host(commands::host::HostCommand),
    /// Users and their roles (admin only).
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Clusters and their state.
    #[command(subcommand)]
    Cluster(commands::cluster::ClusterCommand),
    /// The site's active alarms: list, show, raise, clear.
    #[command(subcommand)]
    Alarm(commands::alarm::AlarmCommand),
    /// The history of alarms raised and cleared.
    #[command(subcommand)]
    Event(commands::alarm::EventCommand),
    /// Rolling maintenance of hosts with operator hook scripts, as a strategy.
    #[command(subcommand)]
    RollingMaintenanceStrategy(commands::rolling_maintenance::StrategyCommand),
    /// Create, apply and follow a rolling maintenance in one command.
    #[command(subcommand)]
    RollingMaintenance(commands::rolling_maintenance::OneShotCommand),
    /// Roll the site's patches over its hosts in stages (StarlingX's `sw-manager
    /// patch-strategy`).
    #[command(subcommand)]
    PatchStrategy(commands::sw_update_strategy::PatchStrategyCommand),
    /// Deploy a release over the site's hosts in stages (StarlingX's `sw-manager
    /// sw-deploy-strategy`): deploy start, the hosts, activate, complete.
    #[command(subcommand)]
    SwDeployStrategy(commands::sw_update_strategy::SwDeployStrategyCommand),
    /// Releases and the site's software deploy (StarlingX's `software`): the same repository
    /// as the patch verbs, seen as releases.
    #[command(subcommand)]
    Software(commands::software::SoftwareCommand),
    /// The steps of the controller's strategy.
    #[command(subcommand)]
    StrategyStep(commands::strategy_step::StepCommand),
    /// The System Controller: subclouds and subcloud groups (dcmanager's API).
    #[command(subcommand)]
    Dc(commands::dc::DcCommand),
    /// Signing keys for patches (offline).
    #[command(subcommand)]
    Key(commands::key::KeyCommand),
    /// Patches: build, inspect and verify patch files.
    #[command(subcommand)]
    Patch(commands::patch::PatchCommand),
    /// Log in and print a token to use as CONVOY_TOKEN; `token revoke` revokes one.
    Token(commands::token::TokenArgs),
    /// Run a demo site on this machine: a controller and four hosts, maintained and patched.
    ///
    /// Starts one convoyd (the site's controller) on 127.0.0.1 at a free port and four
    /// convoy-agents (controller-0, controller-1, worker-0, worker-1) as real processes, using
    /// the convoyd and convoy-agent built beside this convoy (CONVOY_BIN_DIR overrides; under
    /// `cargo run` they are built first, with cargo's progress). It runs a rolling maintenance
    /// with hook scripts over the hosts, builds a signed reboot-required patch and rolls it over
    /// the site with a patch strategy (controllers one at a time, the active one last after a
    /// swact, then the workers; its waits at a hundredth of StarlingX's), then prints how to
    /// point this CLI at the site.
    ///
    /// Everything is written under a new temporary directory (or --dir): the controller's data
    /// and log, each host's agent state, hooks and root directory, and the patch signing key.
    /// Nothing is written elsewhere. The site keeps running until Ctrl-C, which stops every
    /// process and removes the temporary directory (a --dir is kept); --once stops it at the end.
    ///
    /// With --dc it runs a distributed cloud instead: a System Controller and three subclouds
    /// (each its own convoyd with two agents), registers and manages the subclouds and shows
    /// them online and in sync.
    Demo(commands::demo::DemoArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return failure::usage(e),
    };
    convoy_api::install_crypto_provider();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return Failure::failed(format!("cannot start the async runtime: {e}")).report(),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let out = cli.output.resolve()?;
    match cli.command {
        Command::Host(command) => command.run(&cli.connection, &out).await,
        Command::User(command) => command.run(&cli.connection, &out).await,
        Command::Cluster(command) => command.run(&cli.connection, &out).await,
        Command::Alarm(command) => command.run(&cli.connection, &out).await,
        Command::Event(command) => command.run(&cli.connection, &out).await,
        Command::RollingMaintenanceStrategy(command) => command.run(&cli.connection, &out).await,
        Command::RollingMaintenance(command) => command.run(&cli.connection, &out).await,
        Command::PatchStrategy(command) => command.run(&cli.connection, &out).await,
        Command::SwDeployStrategy(command) => command.run(&cli.connection, &out).await,
        Command::Software(command) => command.run(&cli.connection, &out).await,
        Command::StrategyStep(command) => command.run(&cli.connection, &out).await,
        Command::Dc(command) => command.run(&cli.connection, &out).await,
        Command::Key(command) => command.run(&out),
        Command::Patch(command) => command.run(&cli.connection, &out).await,
        Command::Token(args) => args.run(&cli.connection, &out).await,
        Command::Demo(args) => args.run(&cli.connection).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}

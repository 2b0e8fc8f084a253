//! `convoy dc ...`: the System Controller's commands, over dcmanager's v1.0 API.

pub mod strategy;
pub mod subcloud;
pub mod subcloud_group;

use clap::Subcommand;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum DcCommand {
    /// Subclouds: add, list, show, update, manage, unmanage, delete.
    #[command(subcommand)]
    Subcloud(subcloud::SubcloudCommand),
    /// Subcloud groups: add, list, show, update, delete, list-subclouds.
    #[command(subcommand)]
    SubcloudGroup(subcloud_group::GroupCommand),
    /// Deploy a release on the subclouds, each with its own sw-deploy strategy (dcmanager's
    /// `sw-deploy-strategy`).
    #[command(subcommand)]
    SwDeployStrategy(strategy::DeployStrategyCommand),
    /// Ship a release to the subclouds ahead of its deploy (dcmanager's
    /// `prestage-strategy`).
    #[command(subcommand)]
    PrestageStrategy(strategy::PrestageStrategyCommand),
    /// The steps of the System Controller's strategy, one per subcloud.
    #[command(subcommand)]
    StrategyStep(strategy::StepCommand),
}

impl DcCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self {
            DcCommand::Subcloud(command) => command.run(connection, out).await,
            DcCommand::SubcloudGroup(command) => command.run(connection, out).await,
            DcCommand::SwDeployStrategy(command) => command.run(connection, out).await,
            DcCommand::PrestageStrategy(command) => command.run(connection, out).await,
            DcCommand::StrategyStep(command) => command.run(connection, out).await,
        }
    }
}

/// dcmanager's CLI shows Python's `None` for a missing value.
fn or_none(value: Option<String>) -> String {
    value.unwrap_or_else(|| "None".into())
}

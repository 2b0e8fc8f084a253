//! `convoy cluster list`

use clap::Subcommand;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The clusters the hosts belong to, and whether a strategy has disabled them.
    List,
}

impl ClusterCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            ClusterCommand::List => out.list(
                &client.clusters().await?,
                &["name", "state", "hosts", "disabled_by"],
            ),
        }
    }
}

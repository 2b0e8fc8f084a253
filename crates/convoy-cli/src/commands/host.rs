//! `convoy host ...`

use std::time::Duration;

use clap::Subcommand;
use convoy_core::command::CommandKind;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// Columns of `convoy host list` as a table (every field with --format json or --column).
pub const LIST_COLUMNS: &[&str] = &[
    "hostname",
    "personality",
    "administrative",
    "operational",
    "availability",
    "state",
    "zone",
    "pod",
    "cluster",
];

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// List the site's hosts.
    List,
    /// Show one host with every fact its agent reported.
    Show { hostname: String },
    /// Take a host out of service (administrative state `locked`).
    Lock { hostname: String },
    /// Return a host to service (administrative state `unlocked`).
    Unlock { hostname: String },
    /// Move activity from the active controller to the standby, which must be unlocked and
    /// available (`convoy host show` says which is `active`).
    Swact { hostname: String },
    /// Forget a host. It must be locked or offline.
    Delete { hostname: String },
    /// Send a ping through the agent channel and show the answer.
    Ping {
        hostname: String,
        /// Seconds to wait for the agent's answer.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
        wait: u64,
    },
    /// Ask the host's agent for its facts now.
    Facts {
        hostname: String,
        /// Seconds to wait for the agent's answer.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=60))]
        wait: u64,
    },
    /// Single-use tokens with which a host enrols again (admins only).
    #[command(subcommand)]
    EnrolToken(EnrolTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum EnrolTokenCommand {
    /// Create a token with which HOST may enrol once (a reinstalled host that lost its
    /// credential: `convoy-agent --enrolment-token TOKEN`). It replaces an unused earlier one
    /// and is shown only now. The site's agent token never re-enrols a known host.
    Create {
        hostname: String,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(60..=604_800))]
        ttl: u64,
    },
}

impl HostCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            HostCommand::List => out.list(&client.hosts().await?, LIST_COLUMNS),
            HostCommand::Show { hostname } => out.one(&client.host(&hostname).await?),
            HostCommand::Lock { hostname } => out.one(&client.lock_host(&hostname).await?),
            HostCommand::Unlock { hostname } => out.one(&client.unlock_host(&hostname).await?),
            HostCommand::Swact { hostname } => {
                let host = client.swact_host(&hostname).await?;
                out.note(&format!("{hostname} is now the standby controller"));
                out.one(&host)
            }
            HostCommand::Delete { hostname } => {
                client.delete_host(&hostname).await?;
                out.note(&format!("host {hostname} deleted"));
                Ok(())
            }
            HostCommand::Ping { hostname, wait } => {
                command(&client, out, &hostname, CommandKind::Ping, wait).await
            }
            HostCommand::Facts { hostname, wait } => {
                command(&client, out, &hostname, CommandKind::Facts, wait).await
            }
            HostCommand::EnrolToken(EnrolTokenCommand::Create { hostname, ttl }) => {
                out.one(&client.create_enrol_token(&hostname, ttl).await?)
            }
        }
    }
}

async fn command(
    client: &convoy_api::Client,
    out: &Output,
    hostname: &str,
    kind: CommandKind,
    wait: u64,
) -> Result<(), Failure> {
    let command = client
        .run_command(hostname, kind, Duration::from_secs(wait))
        .await?;
    let Some(outcome) = &command.outcome else {
        return Err(Failure::failed(format!(
            "host {hostname} did not answer {kind} {} within {wait}s (command {} is {:?}); is its agent running?",
            "command", command.id, command.state
        )));
    };
    match kind {
        CommandKind::Facts if outcome.succeeded => out.one(&outcome.output)?,
        _ => out.one(&command)?,
    }
    if outcome.succeeded {
        Ok(())
    } else {
        Err(Failure::failed(format!(
            "{kind} on {hostname} failed: {}",
            outcome.message
        )))
    }
}

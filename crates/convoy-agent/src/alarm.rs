//! `convoy-agent alarm raise|clear`: hook scripts and operators' tools on a host raise and
//! clear alarms about that host, through its controller, as the host (with the credential and
//! the controller certificate pin the agent keeps in its state directory).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use convoy_api::alarms::{ClearAlarm, NewAlarm};
use convoy_api::{Client, ClientError, Trust};
use convoy_core::alarm::{Severity, validate_alarm_id, validate_entity, validate_reason};

use crate::identity;

#[derive(Debug, Args)]
pub struct AlarmArgs {
    #[command(subcommand)]
    action: AlarmAction,
    /// URL of the site's convoyd (the agent's --controller).
    #[arg(long, env = "CONVOY_CONTROLLER", global = true)]
    controller: Option<String>,
    /// The agent's state directory (its --state-dir), which holds the host's credential.
    #[arg(
        long,
        value_name = "DIR",
        env = "CONVOY_AGENT_STATE_DIR",
        global = true
    )]
    state_dir: Option<PathBuf>,
    /// PEM CA certificate to verify the controller with [default: the fingerprint the agent
    /// pinned at enrolment].
    #[arg(long, env = "CONVOY_CA_CERT", global = true)]
    ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AlarmAction {
    /// Raise an alarm about this host (raising it again updates its severity and reason).
    Raise {
        /// The alarm id, three digits, a dot, three digits (100.101).
        #[arg(long = "id", value_name = "ID")]
        alarm_id: String,
        #[arg(long, value_parser = parse_severity)]
        severity: Severity,
        /// What is wrong and what to do.
        #[arg(long)]
        reason: String,
        /// What on this host it is about, below the host: `host=<this host>` by default, or
        /// e.g. `host=worker-1.disk=sda`.
        #[arg(long)]
        entity: Option<String>,
        /// Strategies refuse to run while it is active (unless their alarm restrictions
        /// are relaxed).
        #[arg(long)]
        mgmt_affecting: bool,
    },
    /// Clear an alarm about this host.
    Clear {
        #[arg(long = "id", value_name = "ID")]
        alarm_id: String,
        #[arg(long)]
        entity: Option<String>,
    },
}

fn parse_severity(value: &str) -> Result<Severity, String> {
    value
        .parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

/// Runs the subcommand: exit 0 done, 2 bad input (one line on stderr), 1 it failed.
pub fn main(args: AlarmArgs) -> ExitCode {
    let checked = match &args.action {
        AlarmAction::Raise {
            alarm_id,
            reason,
            entity,
            ..
        } => validate_alarm_id("--id", alarm_id)
            .and_then(|()| validate_reason("--reason", reason))
            .and_then(|()| {
                entity
                    .as_deref()
                    .map_or(Ok(()), |e| validate_entity("--entity", e))
            }),
        AlarmAction::Clear { alarm_id, entity } => {
            validate_alarm_id("--id", alarm_id).and_then(|()| {
                entity
                    .as_deref()
                    .map_or(Ok(()), |e| validate_entity("--entity", e))
            })
        }
    };
    if let Err(e) = checked {
        eprintln!("convoy-agent alarm: {e}");
        return ExitCode::from(2);
    }
    let Some(controller) = args.controller.clone() else {
        eprintln!("convoy-agent alarm: --controller (or CONVOY_CONTROLLER) is required");
        return ExitCode::from(2);
    };
    let Some(state_dir) = args.state_dir.clone() else {
        eprintln!("convoy-agent alarm: --state-dir (or CONVOY_AGENT_STATE_DIR) is required");
        return ExitCode::from(2);
    };
    convoy_api::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("convoy-agent alarm: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(send(&args, &controller, &state_dir)) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(Refused::BadInput(message)) => {
            eprintln!("convoy-agent alarm: {message}");
            ExitCode::from(2)
        }
        Err(Refused::Failed(message)) => {
            eprintln!("convoy-agent alarm: {message}");
            ExitCode::FAILURE
        }
    }
}

enum Refused {
    BadInput(String),
    Failed(String),
}

async fn send(
    args: &AlarmArgs,
    controller: &str,
    state_dir: &std::path::Path,
) -> Result<String, Refused> {
    let failed = |e: &dyn std::fmt::Display| Refused::Failed(e.to_string());
    let saved = identity::load_any(state_dir)
        .map_err(|e| failed(&format!("{e:#}")))?
        .ok_or_else(|| {
            Refused::Failed(format!(
                "{} holds no host identity: the agent has not enrolled yet (or give its \
                 --state-dir)",
                state_dir.display()
            ))
        })?;
    let trust = match (&args.ca_cert, &saved.tls_fingerprint) {
        (Some(ca), _) => Trust::ca_file(ca),
        (None, Some(pin)) => Trust::fingerprint(pin),
        (None, None) => Ok(Trust::System),
    }
    .map_err(|e| failed(&e))?;
    let client = Client::with_trust(controller, &trust)
        .map_err(|e| failed(&e))?
        .with_token(saved.credential.clone());
    let answered = match &args.action {
        AlarmAction::Raise {
            alarm_id,
            severity,
            reason,
            entity,
            mgmt_affecting,
        } => client
            .raise_host_alarm(&NewAlarm {
                alarm_id: alarm_id.clone(),
                entity: entity.clone(),
                severity: *severity,
                reason: reason.clone(),
                mgmt_affecting: *mgmt_affecting,
            })
            .await
            .map(|alarm| {
                format!(
                    "raised {} on {} ({})",
                    alarm.alarm_id, alarm.entity, alarm.uuid
                )
            }),
        AlarmAction::Clear { alarm_id, entity } => client
            .clear_host_alarm(&ClearAlarm {
                alarm_id: alarm_id.clone(),
                entity: entity.clone(),
            })
            .await
            .map(|c| {
                if c.cleared {
                    format!("cleared {alarm_id}")
                } else {
                    format!("{alarm_id} was not active")
                }
            }),
    };
    answered.map_err(|e| match e {
        ClientError::Api {
            status, message, ..
        } if (400..500).contains(&status) => Refused::BadInput(message),
        other => failed(&other),
    })
}

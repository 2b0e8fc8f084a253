//! `convoy alarm ...` and `convoy event list`: the site's active alarms and their history.

use clap::Subcommand;
use convoy_api::alarms::NewAlarm;
use convoy_core::alarm::Severity;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// Columns of `convoy alarm list` (as `fm alarm-list`).
const ALARM_COLUMNS: &[&str] = &[
    "uuid",
    "alarm_id",
    "reason",
    "entity",
    "severity",
    "raised_at",
];
/// Columns of `convoy event list` (as `fm event-list`).
const EVENT_COLUMNS: &[&str] = &[
    "uuid", "at", "state", "alarm_id", "reason", "entity", "severity",
];

#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// The active alarms, oldest first.
    List,
    /// One active alarm, every field.
    Show { uuid: String },
    /// Raise an alarm as an operator (raising an active one again updates it).
    Raise {
        /// Three digits, a dot, three digits (100.101).
        #[arg(long = "id", value_name = "ID")]
        alarm_id: String,
        /// What it is about: host=worker-1, host=worker-1.disk=sda, ...
        #[arg(long)]
        entity: String,
        #[arg(long, value_parser = parse_severity)]
        severity: Severity,
        /// What is wrong and what to do.
        #[arg(long)]
        reason: String,
        /// Strategies refuse to run while it is active.
        #[arg(long)]
        mgmt_affecting: bool,
    },
    /// Clear an active alarm.
    Clear { uuid: String },
}

#[derive(Debug, Subcommand)]
pub enum EventCommand {
    /// Alarms raised and cleared, newest first.
    List {
        /// How many events.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

fn parse_severity(value: &str) -> Result<Severity, String> {
    value
        .parse()
        .map_err(|e: convoy_core::ValidationError| e.reason)
}

impl AlarmCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            AlarmCommand::List => out.list(&client.alarms().await?, ALARM_COLUMNS),
            AlarmCommand::Show { uuid } => out.one(&client.alarm(&uuid).await?),
            AlarmCommand::Raise {
                alarm_id,
                entity,
                severity,
                reason,
                mgmt_affecting,
            } => out.one(
                &client
                    .raise_alarm(&NewAlarm {
                        alarm_id,
                        entity: Some(entity),
                        severity,
                        reason,
                        mgmt_affecting,
                    })
                    .await?,
            ),
            AlarmCommand::Clear { uuid } => {
                client.clear_alarm(&uuid).await?;
                out.note(&format!("alarm {uuid} cleared"));
                Ok(())
            }
        }
    }
}

impl EventCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            EventCommand::List { limit } => out.list(&client.events(limit).await?, EVENT_COLUMNS),
        }
    }
}

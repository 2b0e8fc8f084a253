//! Running the commands the controller sends, each exactly once per id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use convoy_api::agent::CommandDelivery;
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use jiff::Timestamp;
use uuid::Uuid;

use crate::facts::FactSource;
use crate::ledger::Ledger;

/// Runs deliveries: answers repeats from the ledger and never runs one id twice at once.
#[derive(Clone)]
pub struct Runner {
    ledger: Ledger,
    facts: FactSource,
    in_flight: Arc<Mutex<HashSet<Uuid>>>,
}

/// What to do with a delivery.
pub enum Delivery {
    /// Already ran to an end: report this recorded outcome again.
    Recorded(CommandOutcome),
    /// Running now (delivered again while still working): nothing to do.
    AlreadyRunning,
    /// Ran now; the outcome is recorded.
    Ran(CommandOutcome),
}

impl Runner {
    pub fn new(ledger: Ledger, facts: FactSource) -> Self {
        Runner {
            ledger,
            facts,
            in_flight: Arc::default(),
        }
    }

    pub async fn handle(&self, delivery: &CommandDelivery) -> anyhow::Result<Delivery> {
        if let Some(outcome) = self.ledger.outcome(delivery.id)? {
            return Ok(Delivery::Recorded(outcome));
        }
        if !self.in_flight.lock().expect("lock").insert(delivery.id) {
            return Ok(Delivery::AlreadyRunning);
        }
        let outcome = self.execute(delivery.kind).await;
        let recorded = self.ledger.record(delivery.id, &outcome);
        self.in_flight.lock().expect("lock").remove(&delivery.id);
        recorded?;
        Ok(Delivery::Ran(outcome))
    }

    async fn execute(&self, kind: CommandKind) -> CommandOutcome {
        match kind {
            CommandKind::Ping => CommandOutcome {
                succeeded: true,
                message: "pong".into(),
                output: serde_json::json!({ "agent_time": Timestamp::now() }),
            },
            CommandKind::Facts => {
                let facts = self.facts.clone();
                match tokio::task::spawn_blocking(move || facts.collect()).await {
                    Ok(facts) => CommandOutcome {
                        succeeded: true,
                        message: "facts collected".into(),
                        output: serde_json::to_value(facts).unwrap_or_default(),
                    },
                    Err(e) => CommandOutcome {
                        succeeded: false,
                        message: format!("collecting facts failed: {e}"),
                        output: serde_json::Value::Null,
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeated_delivery_is_answered_from_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let runner = Runner::new(
            Ledger::open(dir.path()).unwrap(),
            FactSource {
                state_dir: dir.path().into(),
                capacity_cpus: None,
                capacity_memory_mib: None,
            },
        );
        let delivery = CommandDelivery {
            id: Uuid::new_v4(),
            kind: CommandKind::Ping,
        };
        let Delivery::Ran(first) = runner.handle(&delivery).await.unwrap() else {
            panic!("the first delivery must run");
        };
        // A restarted agent has a new runner over the same state directory.
        let restarted = Runner::new(Ledger::open(dir.path()).unwrap(), runner.facts.clone());
        let Delivery::Recorded(again) = restarted.handle(&delivery).await.unwrap() else {
            panic!("a repeat must be answered from the record");
        };
        // The recorded agent_time proves the command did not run a second time.
        assert_eq!(first, again);
    }
}

//! Running the commands the controller sends, each exactly once per id.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use convoy_api::agent::{CommandDelivery, HookRequest, MaintenanceState, RequiredScriptMissing};
use convoy_api::hosts::CommandOutcome;
use convoy_core::command::CommandKind;
use convoy_core::hook::HookStage;
use jiff::Timestamp;
use uuid::Uuid;

use crate::facts::FactSource;
use crate::hooks::Hooks;
use crate::ledger::Ledger;
use crate::patches::HostPatches;

/// Whether a repeat of the command must be answered from the ledger instead of running again.
/// An install must not run twice. A hook run keeps its own durable record (the hook runner's
/// journal answers a repeat; a hook that did not run for want of its required script may be checked
/// again, since the controller takes only the first answer and sends nothing new before it).
/// The rest change nothing the second time: reading facts, a ping, looking for a script, or
/// setting the maintenance state the host already has — so they skip the ledger's fsyncs.
fn ledgered(kind: CommandKind) -> bool {
    kind == CommandKind::InstallPatches
}

/// Runs deliveries: answers repeats from the ledger and never runs one id twice at once.
#[derive(Clone)]
pub struct Runner {
    ledger: Ledger,
    facts: FactSource,
    hooks: Hooks,
    patches: HostPatches,
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
    pub fn new(ledger: Ledger, facts: FactSource, hooks: Hooks, patches: HostPatches) -> Self {
        Runner {
            ledger,
            facts,
            hooks,
            patches,
            in_flight: Arc::default(),
        }
    }

    /// Called once an outcome has been reported (or reporting gave up): work that must wait
    /// for the controller to have its answer, i.e. the reboot after a reboot-required patch.
    pub async fn after_report(&self) {
        self.patches.reboot_if_requested().await;
    }

    pub async fn handle(&self, delivery: &CommandDelivery) -> anyhow::Result<Delivery> {
        let ledgered = ledgered(delivery.kind);
        if ledgered && let Some(outcome) = self.ledger.outcome(delivery.id)? {
            return Ok(Delivery::Recorded(outcome));
        }
        if !self.in_flight.lock().expect("lock").insert(delivery.id) {
            return Ok(Delivery::AlreadyRunning);
        }
        let outcome = self.execute(delivery).await;
        let recorded = if ledgered {
            self.ledger.record(delivery.id, &outcome).await
        } else {
            Ok(())
        };
        self.in_flight.lock().expect("lock").remove(&delivery.id);
        recorded?;
        Ok(Delivery::Ran(outcome))
    }

    fn required_script_missing(&self, request: &HookRequest) -> bool {
        request
            .requires
            .is_some_and(|stage| self.hooks.script(stage).is_none())
    }

    async fn execute(&self, delivery: &CommandDelivery) -> CommandOutcome {
        match delivery.kind {
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
            CommandKind::RunHook => match payload::<HookRequest>(delivery) {
                Ok(request) if self.required_script_missing(&request) => {
                    let missing = request.requires.unwrap_or(request.stage);
                    CommandOutcome {
                        succeeded: true,
                        message: format!("no {missing} script, so {} did not run", request.stage),
                        output: serde_json::to_value(RequiredScriptMissing {
                            missing_script: missing,
                        })
                        .unwrap_or_default(),
                    }
                }
                Ok(request) => {
                    let run = self.hooks.run(delivery.id, &request).await;
                    if request.stage == HookStage::InstanceAction {
                        // Stopped, started or moved: the list may have changed.
                        self.facts.instances.changed();
                    }
                    CommandOutcome {
                        succeeded: run.error.is_none(),
                        message: match &run.error {
                            Some(error) => error.clone(),
                            None => format!("{} ran", request.stage),
                        },
                        output: serde_json::to_value(&run).unwrap_or_default(),
                    }
                }
                Err(refused) => refused,
            },
            CommandKind::Reboot => self.patches.reboot(delivery.id).await,
            CommandKind::InstallPatches => match payload(delivery) {
                Ok(request) => self.patches.install_patches(request, delivery.id).await,
                Err(refused) => refused,
            },
            CommandKind::EnterMaintenance | CommandKind::ExitMaintenance => {
                let on = delivery.kind == CommandKind::EnterMaintenance;
                match self.facts.maintenance.set(on).await {
                    Ok(()) => CommandOutcome {
                        succeeded: true,
                        message: if on {
                            "in maintenance"
                        } else {
                            "out of maintenance"
                        }
                        .into(),
                        output: serde_json::to_value(MaintenanceState { maintenance: on })
                            .unwrap_or_default(),
                    },
                    Err(e) => CommandOutcome {
                        succeeded: false,
                        message: format!("cannot record the maintenance state: {e:#}"),
                        output: serde_json::Value::Null,
                    },
                }
            }
        }
    }
}

/// The delivery's payload as `T`, or the outcome that refuses it.
fn payload<T: serde::de::DeserializeOwned>(
    delivery: &CommandDelivery,
) -> Result<T, CommandOutcome> {
    serde_json::from_value(delivery.payload.clone()).map_err(|e| CommandOutcome {
        succeeded: false,
        message: format!("bad {} payload: {e}", delivery.kind),
        output: serde_json::Value::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_repeated_install_is_answered_from_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_in(dir.path());
        let delivery = CommandDelivery {
            id: Uuid::new_v4(),
            kind: CommandKind::InstallPatches,
            payload: serde_json::json!({"not": "an install"}),
        };
        let Delivery::Ran(first) = runner.handle(&delivery).await.unwrap() else {
            panic!("the first delivery must run");
        };
        // A restarted agent has a new runner over the same state directory.
        let restarted = runner_in(dir.path());
        let Delivery::Recorded(again) = restarted.handle(&delivery).await.unwrap() else {
            panic!("a repeat must be answered from the record");
        };
        assert_eq!(first, again);
    }

    #[tokio::test]
    async fn a_repeated_ping_simply_runs_again() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_in(dir.path());
        let delivery = CommandDelivery {
            id: Uuid::new_v4(),
            kind: CommandKind::Ping,
            payload: serde_json::Value::Null,
        };
        for _ in 0..2 {
            let Delivery::Ran(outcome) = runner_in(dir.path()).handle(&delivery).await.unwrap()
            else {
                panic!("a ping changes nothing, so a repeat runs");
            };
            assert!(outcome.succeeded);
        }
        assert!(runner.ledger.outcome(delivery.id).unwrap().is_none());
    }

    #[tokio::test]
    async fn maintenance_is_entered_and_left_durably() {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner_in(dir.path());
        for (kind, expected) in [
            (CommandKind::EnterMaintenance, true),
            (CommandKind::ExitMaintenance, false),
        ] {
            let delivery = CommandDelivery {
                id: Uuid::new_v4(),
                kind,
                payload: serde_json::Value::Null,
            };
            let Delivery::Ran(outcome) = runner.handle(&delivery).await.unwrap() else {
                panic!("runs");
            };
            assert!(outcome.succeeded);
            assert_eq!(outcome.output["maintenance"], expected);
            assert_eq!(runner_in(dir.path()).facts.collect().maintenance, expected);
        }
    }

    #[tokio::test]
    async fn a_malformed_payload_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let delivery = CommandDelivery {
            id: Uuid::new_v4(),
            kind: CommandKind::RunHook,
            payload: serde_json::json!({"stage": "Nope"}),
        };
        let Delivery::Ran(outcome) = runner_in(dir.path()).handle(&delivery).await.unwrap() else {
            panic!("runs");
        };
        assert!(!outcome.succeeded);
        assert!(
            outcome.message.starts_with("bad run-hook payload"),
            "{}",
            outcome.message
        );
    }

    pub(crate) fn runner_in(dir: &std::path::Path) -> Runner {
        Runner::new(
            Ledger::open(dir).unwrap(),
            FactSource {
                state_dir: dir.into(),
                capacity_cpus: None,
                capacity_memory_mib: None,
                load_cpus: None,
                load_memory_mib: None,
                maintenance: crate::maintenance::MaintenanceFlag::new(dir),
                release: None,
                instances: Default::default(),
            },
            Hooks {
                hooks_dir: None,
                jobs_dir: dir.join("jobs"),
                agent_binary: std::path::PathBuf::from("convoy-agent"),
                env: Default::default(),
            },
            HostPatches::new(
                crate::patches::Installer::new(
                    dir,
                    &dir.join("root"),
                    convoy_core::host::Personality::Worker,
                    "25.09".parse().unwrap(),
                    Default::default(),
                ),
                None,
                None,
            ),
        )
    }
}

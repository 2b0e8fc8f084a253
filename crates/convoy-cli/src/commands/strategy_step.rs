//! `convoy strategy-step ...`: the steps of whichever strategy the controller runs.

use clap::Subcommand;

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum StepCommand {
    /// Every step: target, stage, state, details, started_at, finished_at.
    List,
    /// One step with each phase's result, exit code, stdout and stderr.
    Show { target: String },
}

impl StepCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            StepCommand::List => out.list(
                &client.strategy_steps().await?,
                &[
                    "target",
                    "stage",
                    "state",
                    "details",
                    "started_at",
                    "finished_at",
                ],
            ),
            StepCommand::Show { target } => {
                let detail = client.strategy_step(&target).await?;
                if !out.is_table() {
                    return out.one(&detail);
                }
                out.one(&detail.step)?;
                out.note("\nPhases:");
                out.list(
                    &detail.phases,
                    &[
                        "phase",
                        "result",
                        "exit_code",
                        "started_at",
                        "finished_at",
                        "details",
                        "stdout",
                        "stderr",
                    ],
                )
            }
        }
    }
}

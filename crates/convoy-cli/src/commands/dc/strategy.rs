//! `convoy dc sw-deploy-strategy ...` and `convoy dc strategy-step ...`: dcmanager's strategy
//! commands and columns, over `/v1.0/sw-update-strategy`.

use std::time::Duration;

use clap::{Args, Subcommand};
use convoy_api::Client;
use serde_json::{Map, Value, json};

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// `sw-deploy-strategy create`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DeployCreateArgs {
    /// The release to deploy; deployed on the System Controller already.
    pub release_id: String,
    /// One subcloud only (it must need the release).
    pub subcloud: Option<String>,
    /// parallel or serial (not with --group).
    #[arg(long)]
    pub subcloud_apply_type: Option<String>,
    /// Subclouds deployed at once (1..5000; not with --group).
    #[arg(long)]
    pub max_parallel_subclouds: Option<u32>,
    /// Stop starting subclouds once one fails.
    #[arg(long)]
    pub stop_on_failure: bool,
    /// The subclouds of this group, with its apply type and max parallel.
    #[arg(long)]
    pub group: Option<String>,
    /// Delete each subcloud's deploy record once deployed.
    #[arg(long)]
    pub delete: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeployStrategyCommand {
    /// Create a sw-deploy strategy: one step per managed, online, out-of-sync subcloud.
    Create(DeployCreateArgs),
    /// The strategy.
    Show,
    /// Apply it; --wait follows it with a live table of steps until it ends.
    Apply {
        #[arg(long)]
        wait: bool,
    },
    /// Abort it: running steps finish, the others are aborted.
    Abort,
    /// Delete it (not while it applies or aborts).
    Delete,
}

#[derive(Debug, Subcommand)]
pub enum StepCommand {
    /// Every step: cloud, stage, state, details, started_at, finished_at.
    List,
    /// One subcloud's step.
    Show { cloud: String },
}

const KIND: &str = "sw-deploy";

/// dcmanager's ShowOne rows of a sw-deploy strategy.
fn strategy_rows(s: &Value) -> Map<String, Value> {
    let extra = &s["extra-args"];
    let shown = |v: &Value| match v {
        Value::Null => json!(""),
        Value::Bool(b) => json!(if *b { "True" } else { "False" }),
        other => other.clone(),
    };
    let mut rows = Map::new();
    rows.insert("strategy type".into(), shown(&s["type"]));
    rows.insert(
        "subcloud apply type".into(),
        shown(&s["subcloud-apply-type"]),
    );
    rows.insert(
        "max parallel subclouds".into(),
        shown(&s["max-parallel-subclouds"]),
    );
    rows.insert("stop on failure".into(), shown(&s["stop-on-failure"]));
    rows.insert("release_id".into(), shown(&extra["release_id"]));
    rows.insert("snapshot".into(), shown(&extra["snapshot"]));
    rows.insert("rollback".into(), shown(&extra["rollback"]));
    let delete = if extra["delete"] == true {
        json!("delete")
    } else {
        json!("None")
    };
    rows.insert("delete_option".into(), delete);
    rows.insert("with_prestage".into(), json!("None"));
    rows.insert("kube_upgrade".into(), shown(&extra["kube_upgrade"]));
    rows.insert("state".into(), shown(&s["state"]));
    rows.insert("created_at".into(), shown(&s["created-at"]));
    rows.insert("updated_at".into(), shown(&s["updated-at"]));
    rows
}

fn step_rows(step: &Value, detail: bool) -> Map<String, Value> {
    let mut rows = Map::new();
    for (key, field) in [
        ("cloud", "cloud"),
        ("stage", "stage"),
        ("state", "state"),
        ("details", "details"),
        ("started_at", "started-at"),
        ("finished_at", "finished-at"),
    ] {
        rows.insert(key.into(), step[field].clone());
    }
    if detail {
        rows.insert("created_at".into(), step["created-at"].clone());
        rows.insert("updated_at".into(), step["updated-at"].clone());
    }
    rows
}

impl DeployStrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        let strategy = match self {
            DeployStrategyCommand::Create(a) => {
                let mut body = json!({ "type": KIND, "release_id": a.release_id });
                let fields = [
                    ("cloud_name", a.subcloud.map(Value::from)),
                    (
                        "subcloud-apply-type",
                        a.subcloud_apply_type.map(Value::from),
                    ),
                    (
                        "max-parallel-subclouds",
                        a.max_parallel_subclouds.map(Value::from),
                    ),
                    ("subcloud_group", a.group.map(Value::from)),
                    // dcmanager's client sends these as strings, and only when set.
                    ("stop-on-failure", a.stop_on_failure.then(|| json!("true"))),
                    ("delete", a.delete.then(|| json!("true"))),
                ];
                for (key, value) in fields {
                    if let Some(value) = value {
                        body[key] = value;
                    }
                }
                client.dc_create_strategy(&body).await?
            }
            DeployStrategyCommand::Show => client.dc_strategy(KIND).await?,
            DeployStrategyCommand::Apply { wait } => {
                let applied = client.dc_strategy_action(KIND, "apply").await?;
                if wait {
                    return follow(&client, out).await;
                }
                applied
            }
            DeployStrategyCommand::Abort => client.dc_strategy_action(KIND, "abort").await?,
            DeployStrategyCommand::Delete => client.dc_delete_strategy(KIND).await?,
        };
        out.one(&strategy_rows(&strategy))
    }
}

impl StepCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        match self {
            StepCommand::List => {
                let rows: Vec<Map<String, Value>> = client
                    .dc_strategy_steps()
                    .await?
                    .iter()
                    .map(|s| step_rows(s, false))
                    .collect();
                out.list(
                    &rows,
                    &[
                        "cloud",
                        "stage",
                        "state",
                        "details",
                        "started_at",
                        "finished_at",
                    ],
                )
            }
            StepCommand::Show { cloud } => {
                out.one(&step_rows(&client.dc_strategy_step(&cloud).await?, true))
            }
        }
    }
}

/// The strategy states it rests in.
fn is_final(state: &str) -> bool {
    matches!(state, "complete" | "failed" | "aborted")
}

/// Redraws the step table every second until the strategy ends, then shows it.
async fn follow(client: &Client, out: &Output) -> Result<(), Failure> {
    loop {
        let strategy = client.dc_strategy(KIND).await?;
        let steps: Vec<Map<String, Value>> = client
            .dc_strategy_steps()
            .await?
            .iter()
            .map(|s| step_rows(s, false))
            .collect();
        let state = strategy["state"].as_str().unwrap_or("").to_string();
        if out.is_table() {
            // Clear the screen and draw the table again: a live view of the steps.
            crate::output::emit("\x1b[2J\x1b[H");
            crate::output::emit(&format!("sw-deploy strategy: {state}\n"));
            out.list(
                &steps,
                &[
                    "cloud",
                    "stage",
                    "state",
                    "details",
                    "started_at",
                    "finished_at",
                ],
            )?;
        }
        if is_final(&state) {
            return out.one(&strategy_rows(&strategy));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

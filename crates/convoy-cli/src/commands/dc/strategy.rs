//! `convoy dc sw-deploy-strategy ...`, `convoy dc prestage-strategy ...` and `convoy dc
//! strategy-step ...`: dcmanager's strategy commands and columns, over
//! `/v1.0/sw-update-strategy`.

use std::time::Duration;

use base64::Engine;
use clap::{Args, Subcommand};
use convoy_api::Client;
use serde_json::{Map, Value, json};

use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

/// How a strategy takes its subclouds, for every type.
#[derive(Debug, Clone, Args)]
pub struct ScopeArgs {
    /// parallel or serial (not with --group).
    #[arg(long)]
    pub subcloud_apply_type: Option<String>,
    /// Subclouds at once (sw-deploy 1..5000, prestage 1..250; not with --group).
    #[arg(long)]
    pub max_parallel_subclouds: Option<u32>,
    /// Stop starting subclouds once one fails.
    #[arg(long)]
    pub stop_on_failure: bool,
    /// The subclouds of this group, with its apply type and max parallel.
    #[arg(long)]
    pub group: Option<String>,
}

/// `sw-deploy-strategy create`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DeployCreateArgs {
    /// The release to deploy; deployed on the System Controller already.
    pub release_id: String,
    /// One subcloud only (it must need the release).
    pub subcloud: Option<String>,
    #[command(flatten)]
    pub scope: ScopeArgs,
    /// Delete each subcloud's deploy record once deployed.
    #[arg(long)]
    pub delete: bool,
    /// Prestage the release on each subcloud first (the chunked transfer of a prestage
    /// strategy), so it need not be there already.
    #[arg(long)]
    pub with_prestage: bool,
    /// With --with-prestage: the subclouds' sysadmin (admin) password, checked by each
    /// subcloud; asked twice (not echoed) when not given.
    #[arg(long, env = "CONVOY_SYSADMIN_PASSWORD", hide_env_values = true)]
    pub sysadmin_password: Option<String>,
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

/// `prestage-strategy create`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct PrestageCreateArgs {
    /// One subcloud only.
    pub subcloud: Option<String>,
    /// Prestage for a later install: the release's bundles go to each subcloud's prestage
    /// store, by software version (the default).
    #[arg(long, conflicts_with = "for_sw_deploy")]
    pub for_install: bool,
    /// Prestage for a software deploy: the release's bundles go to each subcloud's
    /// repository, available to deploy.
    #[arg(long)]
    pub for_sw_deploy: bool,
    /// The software version to prestage, MM.mm [default: the System Controller's].
    #[arg(long)]
    pub release: Option<String>,
    /// The subclouds' sysadmin (admin) password, checked by each subcloud; asked twice
    /// (not echoed) when not given.
    #[arg(long, env = "CONVOY_SYSADMIN_PASSWORD", hide_env_values = true)]
    pub sysadmin_password: Option<String>,
    /// Prestage even with management-affecting alarms on a subcloud.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub scope: ScopeArgs,
}

#[derive(Debug, Subcommand)]
pub enum PrestageStrategyCommand {
    /// Create a prestage strategy: one step per managed, online subcloud that may be
    /// prestaged.
    Create(PrestageCreateArgs),
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

const SW_DEPLOY: &str = "sw-deploy";
const PRESTAGE: &str = "prestage";

/// dcmanager's ShowOne rows of a strategy: a sw-deploy's options, or a prestage's software
/// version, before its state.
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
    if s["type"] == PRESTAGE {
        if !extra["prestage-software-version"].is_null() {
            rows.insert(
                "prestage software version".into(),
                shown(&extra["prestage-software-version"]),
            );
        }
        rows.insert("state".into(), shown(&s["state"]));
        rows.insert("created_at".into(), shown(&s["created-at"]));
        rows.insert("updated_at".into(), shown(&s["updated-at"]));
        return rows;
    }
    rows.insert("release_id".into(), shown(&extra["release_id"]));
    rows.insert("snapshot".into(), shown(&extra["snapshot"]));
    rows.insert("rollback".into(), shown(&extra["rollback"]));
    let delete = if extra["delete"] == true {
        json!("delete")
    } else {
        json!("None")
    };
    rows.insert("delete_option".into(), delete);
    let with_prestage = if extra["with_prestage"] == true {
        json!("with_prestage")
    } else {
        json!("None")
    };
    rows.insert("with_prestage".into(), with_prestage);
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

/// Sets each field that has a value.
fn set_fields(body: &mut Value, fields: Vec<(&str, Option<Value>)>) {
    for (key, value) in fields {
        if let Some(value) = value {
            body[key] = value;
        }
    }
}

/// The fields of the scope and pace every create takes.
fn scope_fields(subcloud: Option<String>, scope: ScopeArgs) -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("cloud_name", subcloud.map(Value::from)),
        (
            "subcloud-apply-type",
            scope.subcloud_apply_type.map(Value::from),
        ),
        (
            "max-parallel-subclouds",
            scope.max_parallel_subclouds.map(Value::from),
        ),
        ("subcloud_group", scope.group.map(Value::from)),
        // dcmanager's client sends these as strings, and only when set.
        (
            "stop-on-failure",
            scope.stop_on_failure.then(|| json!("true")),
        ),
    ]
}

/// The password given, or asked twice on the terminal without echo (dcmanager's prompt).
pub fn sysadmin_password(given: Option<String>) -> Result<String, Failure> {
    if let Some(password) = given {
        return Ok(password);
    }
    let refused = |e: std::io::Error| {
        Failure::bad_input(format!(
            "--sysadmin-password: not given, and no terminal to ask on ({e}); give it or set \
             CONVOY_SYSADMIN_PASSWORD"
        ))
    };
    loop {
        let password = rpassword::prompt_password("Enter the sysadmin password for the subcloud: ")
            .map_err(refused)?;
        if password.is_empty() {
            eprintln!("Password cannot be empty");
            continue;
        }
        let confirm = rpassword::prompt_password("Re-enter sysadmin password to confirm: ")
            .map_err(refused)?;
        if password == confirm {
            return Ok(password);
        }
        eprintln!("Passwords did not match");
    }
}

/// The strategy actions every kind shares.
async fn act(
    client: &Client,
    kind: &str,
    action: SharedAction,
    out: &Output,
) -> Result<Option<Value>, Failure> {
    Ok(Some(match action {
        SharedAction::Show => client.dc_strategy(kind).await?,
        SharedAction::Apply { wait } => {
            let applied = client.dc_strategy_action(kind, "apply").await?;
            if wait {
                follow(client, kind, out).await?;
                return Ok(None);
            }
            applied
        }
        SharedAction::Abort => client.dc_strategy_action(kind, "abort").await?,
        SharedAction::Delete => client.dc_delete_strategy(kind).await?,
    }))
}

enum SharedAction {
    Show,
    Apply { wait: bool },
    Abort,
    Delete,
}

impl PrestageStrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let action = match self {
            PrestageStrategyCommand::Create(a) => {
                let password = sysadmin_password(a.sysadmin_password)?;
                let client = connection.authenticated().await?;
                let mut body = json!({
                    "type": PRESTAGE,
                    "sysadmin_password": base64::engine::general_purpose::STANDARD.encode(password),
                });
                let mut fields = scope_fields(a.subcloud, a.scope);
                fields.push(("release", a.release.map(Value::from)));
                fields.push(("force", a.force.then(|| json!("true"))));
                // As dcmanager's client: for_install unless for_sw_deploy.
                if a.for_sw_deploy {
                    fields.push(("for_sw_deploy", Some(json!("true"))));
                } else {
                    fields.push(("for_install", Some(json!("true"))));
                }
                set_fields(&mut body, fields);
                let created = client.dc_create_strategy(&body).await?;
                return out.one(&strategy_rows(&created));
            }
            PrestageStrategyCommand::Show => SharedAction::Show,
            PrestageStrategyCommand::Apply { wait } => SharedAction::Apply { wait },
            PrestageStrategyCommand::Abort => SharedAction::Abort,
            PrestageStrategyCommand::Delete => SharedAction::Delete,
        };
        let client = connection.authenticated().await?;
        match act(&client, PRESTAGE, action, out).await? {
            Some(strategy) => out.one(&strategy_rows(&strategy)),
            None => Ok(()),
        }
    }
}

impl DeployStrategyCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        let client = connection.authenticated().await?;
        let action = match self {
            DeployStrategyCommand::Create(a) => {
                let mut body = json!({ "type": SW_DEPLOY, "release_id": a.release_id });
                let mut fields = scope_fields(a.subcloud, a.scope);
                fields.push(("delete", a.delete.then(|| json!("true"))));
                if a.with_prestage {
                    let password = sysadmin_password(a.sysadmin_password)?;
                    fields.push(("with_prestage", Some(json!("true"))));
                    fields.push((
                        "sysadmin_password",
                        Some(json!(
                            base64::engine::general_purpose::STANDARD.encode(password)
                        )),
                    ));
                }
                set_fields(&mut body, fields);
                let created = client.dc_create_strategy(&body).await?;
                return out.one(&strategy_rows(&created));
            }
            DeployStrategyCommand::Show => SharedAction::Show,
            DeployStrategyCommand::Apply { wait } => SharedAction::Apply { wait },
            DeployStrategyCommand::Abort => SharedAction::Abort,
            DeployStrategyCommand::Delete => SharedAction::Delete,
        };
        match act(&client, SW_DEPLOY, action, out).await? {
            Some(strategy) => out.one(&strategy_rows(&strategy)),
            None => Ok(()),
        }
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
async fn follow(client: &Client, kind: &str, out: &Output) -> Result<(), Failure> {
    loop {
        let strategy = client.dc_strategy(kind).await?;
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
            crate::output::emit(&format!("{kind} strategy: {state}\n"));
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

//! `convoy dc subcloud ...`, with dcmanager's columns.

use std::path::PathBuf;

use base64::Engine;
use clap::Subcommand;
use convoy_api::dc::{Form, Subcloud};
use serde_json::{Map, Value, json};

use super::or_none;
use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum SubcloudCommand {
    /// Attach an existing site controller (a convoyd) as a subcloud. The sysadmin (admin)
    /// password is used once, to create the System Controller's service account there; it is
    /// not kept. The subcloud starts unmanaged.
    Add {
        /// The subcloud's name (or `name` in --bootstrap-values).
        #[arg(long)]
        name: Option<String>,
        /// URL of the subcloud's convoyd, e.g. https://10.10.10.2:7400 (a bare address means
        /// https on port 7400).
        #[arg(long)]
        bootstrap_address: String,
        /// The subcloud's admin password.
        #[arg(long, env = "CONVOY_SYSADMIN_PASSWORD", hide_env_values = true)]
        sysadmin_password: String,
        /// Group name or id [default: Default].
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        location: Option<String>,
        /// YAML file of bootstrap values (dcmanager's); kept as given.
        #[arg(long)]
        bootstrap_values: Option<PathBuf>,
    },
    /// List subclouds.
    List {
        /// Show every field of `subcloud show`.
        #[arg(long)]
        detail: bool,
    },
    /// Show a subcloud, by name or id.
    Show {
        subcloud: String,
        /// Add the OAM address, deploy config sync status and region name.
        #[arg(long)]
        detail: bool,
    },
    /// Change a subcloud's description, location or group.
    Update {
        subcloud: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        location: Option<String>,
        /// Group name or id.
        #[arg(long)]
        group: Option<String>,
    },
    /// Manage a subcloud: audit its sync status and orchestrate it. It must be online unless
    /// --force.
    Manage {
        subcloud: String,
        #[arg(long)]
        force: bool,
    },
    /// Stop managing a subcloud.
    Unmanage { subcloud: String },
    /// Forget an unmanaged subcloud.
    Delete { subcloud: String },
    /// Prestage one subcloud, outside a strategy: the release's bundles travel to it in the
    /// background (see `subcloud show` for its prestage status). Refused while a strategy
    /// that prestages applies.
    Prestage {
        subcloud: String,
        /// Into the subcloud's prestage store, by software version (the default).
        #[arg(long, conflicts_with = "for_sw_deploy")]
        for_install: bool,
        /// Into the subcloud's repository, available to deploy.
        #[arg(long)]
        for_sw_deploy: bool,
        /// The software version to prestage, MM.mm [default: the System Controller's].
        #[arg(long)]
        release: Option<String>,
        /// The subcloud's sysadmin (admin) password, checked by the subcloud; asked twice
        /// (not echoed) when not given.
        #[arg(long, env = "CONVOY_SYSADMIN_PASSWORD", hide_env_values = true)]
        sysadmin_password: Option<String>,
        /// Prestage even with management-affecting alarms on the subcloud.
        #[arg(long)]
        force: bool,
    },
}

impl SubcloudCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self {
            SubcloudCommand::Add {
                name,
                bootstrap_address,
                sysadmin_password,
                group,
                description,
                location,
                bootstrap_values,
            } => {
                let mut form = Form::new()
                    .text("bootstrap-address", bootstrap_address)
                    .text(
                        "sysadmin_password",
                        base64::engine::general_purpose::STANDARD.encode(sysadmin_password),
                    );
                if let Some(path) = bootstrap_values {
                    let yaml = std::fs::read_to_string(&path).map_err(|e| {
                        Failure::bad_input(format!(
                            "--bootstrap-values: cannot read {}: {e}",
                            path.display()
                        ))
                    })?;
                    form = form.file("bootstrap_values", "bootstrap_values.yaml", yaml);
                } else if name.is_none() {
                    return Err(Failure::bad_input(
                        "--name: required (or a name in --bootstrap-values)",
                    ));
                }
                for (field, value) in [
                    ("name", name),
                    ("group_id", group),
                    ("description", description),
                    ("location", location),
                ] {
                    if let Some(value) = value {
                        form = form.text(field, value);
                    }
                }
                let client = connection.authenticated().await?;
                out.one(&show_row(client.dc_add_subcloud(&form).await?, false))
            }
            SubcloudCommand::List { detail } => {
                let client = connection.authenticated().await?;
                let subclouds = client.dc_subclouds().await?;
                if detail {
                    let rows: Vec<_> = subclouds.into_iter().map(detail_row).collect();
                    let columns = columns(rows.first());
                    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
                    out.list(&rows, &columns)
                } else {
                    print_list(out, subclouds)
                }
            }
            SubcloudCommand::Show { subcloud, detail } => {
                let client = connection.authenticated().await?;
                out.one(&show_row(
                    client.dc_subcloud(&subcloud, detail).await?,
                    detail,
                ))
            }
            SubcloudCommand::Update {
                subcloud,
                description,
                location,
                group,
            } => {
                let mut form = Form::new();
                let mut any = false;
                for (field, value) in [
                    ("description", description),
                    ("location", location),
                    ("group_id", group),
                ] {
                    if let Some(value) = value {
                        form = form.text(field, value);
                        any = true;
                    }
                }
                if !any {
                    return Err(Failure::bad_input(
                        "nothing to update: give --description, --location or --group",
                    ));
                }
                let client = connection.authenticated().await?;
                out.one(&show_row(
                    client.dc_update_subcloud(&subcloud, &form).await?,
                    false,
                ))
            }
            SubcloudCommand::Manage { subcloud, force } => {
                let mut form = Form::new().text("management-state", "managed");
                if force {
                    form = form.text("force", "true");
                }
                let client = connection.authenticated().await?;
                out.one(&show_row(
                    client.dc_update_subcloud(&subcloud, &form).await?,
                    false,
                ))
            }
            SubcloudCommand::Unmanage { subcloud } => {
                let form = Form::new().text("management-state", "unmanaged");
                let client = connection.authenticated().await?;
                out.one(&show_row(
                    client.dc_update_subcloud(&subcloud, &form).await?,
                    false,
                ))
            }
            SubcloudCommand::Prestage {
                subcloud,
                for_install: _,
                for_sw_deploy,
                release,
                sysadmin_password,
                force,
            } => {
                let password = super::strategy::sysadmin_password(sysadmin_password)?;
                let mut body = json!({
                    "sysadmin_password": base64::engine::general_purpose::STANDARD.encode(password),
                    "force": if force { "true" } else { "false" },
                });
                // As dcmanager's client: for_install unless for_sw_deploy.
                if for_sw_deploy {
                    body["for_sw_deploy"] = json!("true");
                } else {
                    body["for_install"] = json!("true");
                }
                if let Some(release) = release {
                    body["release"] = json!(release);
                }
                let client = connection.authenticated().await?;
                out.one(&show_row(
                    client.dc_prestage_subcloud(&subcloud, &body).await?,
                    false,
                ))
            }
            SubcloudCommand::Delete { subcloud } => {
                let client = connection.authenticated().await?;
                client.dc_delete_subcloud(&subcloud).await?;
                out.note(&format!("subcloud {subcloud} deleted"));
                Ok(())
            }
        }
    }
}

/// `subcloud list` as a table (the demo prints it).
pub fn print_list(out: &Output, subclouds: Vec<Subcloud>) -> Result<(), Failure> {
    let rows: Vec<_> = subclouds.into_iter().map(list_row).collect();
    out.list(&rows, &["id", "name", "management", "availability", "sync"])
}

/// `subcloud show` (the demo prints it).
pub fn print_show(out: &Output, subcloud: Subcloud) -> Result<(), Failure> {
    out.one(&show_row(subcloud, false))
}

/// The columns of a row (every key, in order).
fn columns(row: Option<&Map<String, Value>>) -> Vec<String> {
    row.map(|r| r.keys().cloned().collect()).unwrap_or_default()
}

/// `subcloud list`: the columns of seed 000.
fn list_row(s: Subcloud) -> Map<String, Value> {
    let sync = s.sync_status.clone().unwrap_or_else(|| "unknown".into());
    let mut row = Map::new();
    row.insert("id".into(), json!(s.id));
    row.insert("name".into(), json!(s.name));
    row.insert("management".into(), json!(s.management_state));
    row.insert("availability".into(), json!(s.availability_status));
    row.insert("sync".into(), json!(sync));
    row
}

/// `subcloud list --detail`: the show columns, with `sync` after `deploy_status`.
fn detail_row(s: Subcloud) -> Map<String, Value> {
    let sync = s.sync_status.clone().unwrap_or_else(|| "unknown".into());
    let mut row = Map::new();
    for (key, value) in show_row(s, false) {
        let after_deploy = key == "deploy_status";
        row.insert(key, value);
        if after_deploy {
            row.insert("sync".into(), json!(sync));
        }
    }
    row
}

/// `subcloud show`: the fields of seed 000, then one `<endpoint>_sync_status` per audited
/// endpoint, and with --detail the OAM address, deploy config sync status and region name.
fn show_row(s: Subcloud, detail: bool) -> Map<String, Value> {
    let mut row = Map::new();
    let mut put = |key: &str, value: Value| {
        row.insert(key.into(), value);
    };
    put("id", json!(s.id));
    put("name", json!(s.name));
    put("description", json!(or_none(s.description)));
    put("location", json!(or_none(s.location)));
    put("software_version", json!(or_none(s.software_version)));
    put("management", json!(s.management_state));
    put("availability", json!(s.availability_status));
    put("deploy_status", json!(s.deploy_status));
    put("management_subnet", json!(or_none(s.management_subnet)));
    put("management_start_ip", json!(or_none(s.management_start_ip)));
    put("management_end_ip", json!(or_none(s.management_end_ip)));
    put(
        "management_gateway_ip",
        json!(or_none(s.management_gateway_ip)),
    );
    put(
        "systemcontroller_gateway_ip",
        json!(or_none(s.systemcontroller_gateway_ip)),
    );
    put("group_id", json!(s.group_id));
    put("created_at", json!(s.created_at));
    put("updated_at", json!(or_none(s.updated_at)));
    // As dcmanager's master client, once a prestage ran (seed 000's table has neither).
    if s.prestage_status.is_some() {
        put("prestage_status", json!(or_none(s.prestage_status)));
        put("prestage_versions", json!(or_none(s.prestage_versions)));
    }
    if let Some(version) = s.prestage_software_version {
        put("prestage_software_version", json!(version));
    }
    for endpoint in &s.endpoint_sync_status {
        put(
            &format!("{}_sync_status", endpoint.endpoint_type),
            json!(endpoint.sync_status),
        );
    }
    if detail {
        put("oam_floating_ip", json!(or_none(s.oam_floating_ip)));
        put(
            "deploy_config_sync_status",
            json!(or_none(s.deploy_config_sync_status)),
        );
        put("region_name", json!(or_none(s.region_name)));
    }
    row
}

//! `convoy dc subcloud-group ...`, with dcmanager's columns.

use clap::Subcommand;
use convoy_api::dc::{SubcloudGroup, SubcloudGroupFields};
use serde_json::{Map, Value, json};

use super::or_none;
use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add a subcloud group.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "No description provided")]
        description: String,
        /// parallel or serial.
        #[arg(long, default_value = "parallel")]
        update_apply_type: String,
        /// 1 to 5000.
        #[arg(long, default_value_t = 2)]
        max_parallel_subclouds: i64,
    },
    /// List subcloud groups.
    List,
    /// Show a subcloud group, by name or id.
    Show { group: String },
    /// Change a subcloud group (the Default group cannot be renamed).
    Update {
        group: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// parallel or serial.
        #[arg(long)]
        update_apply_type: Option<String>,
        #[arg(long)]
        max_parallel_subclouds: Option<i64>,
    },
    /// Delete an empty subcloud group (not the Default group).
    Delete { group: String },
    /// List the subclouds of a group.
    ListSubclouds { group: String },
}

impl GroupCommand {
    pub async fn run(self, connection: &ConnectionArgs, out: &Output) -> Result<(), Failure> {
        match self {
            GroupCommand::Add {
                name,
                description,
                update_apply_type,
                max_parallel_subclouds,
            } => {
                let client = connection.authenticated().await?;
                let group = client
                    .dc_add_group(&SubcloudGroupFields {
                        name: Some(name),
                        description: Some(description),
                        update_apply_type: Some(update_apply_type),
                        max_parallel_subclouds: Some(max_parallel_subclouds),
                    })
                    .await?;
                out.one(&show_row(group))
            }
            GroupCommand::List => {
                let client = connection.authenticated().await?;
                let rows: Vec<_> = client
                    .dc_groups()
                    .await?
                    .into_iter()
                    .map(show_row)
                    .collect();
                out.list(&rows, &["id", "name", "description"])
            }
            GroupCommand::Show { group } => {
                let client = connection.authenticated().await?;
                out.one(&show_row(client.dc_group(&group).await?))
            }
            GroupCommand::Update {
                group,
                name,
                description,
                update_apply_type,
                max_parallel_subclouds,
            } => {
                let fields = SubcloudGroupFields {
                    name,
                    description,
                    update_apply_type,
                    max_parallel_subclouds,
                };
                if fields == SubcloudGroupFields::default() {
                    return Err(Failure::bad_input(
                        "nothing to update: give --name, --description, --update-apply-type or \
                         --max-parallel-subclouds",
                    ));
                }
                let client = connection.authenticated().await?;
                out.one(&show_row(client.dc_update_group(&group, &fields).await?))
            }
            GroupCommand::Delete { group } => {
                let client = connection.authenticated().await?;
                client.dc_delete_group(&group).await?;
                out.note(&format!("subcloud group {group} deleted"));
                Ok(())
            }
            GroupCommand::ListSubclouds { group } => {
                let client = connection.authenticated().await?;
                let rows: Vec<Map<String, Value>> = client
                    .dc_group_subclouds(&group)
                    .await?
                    .into_iter()
                    .map(|s| {
                        let mut row = Map::new();
                        row.insert("id".into(), json!(s.id));
                        row.insert("name".into(), json!(s.name));
                        row.insert("management".into(), json!(s.management_state));
                        row.insert("availability".into(), json!(s.availability_status));
                        row.insert("deploy status".into(), json!(s.deploy_status));
                        row
                    })
                    .collect();
                out.list(
                    &rows,
                    &["id", "name", "management", "availability", "deploy status"],
                )
            }
        }
    }
}

/// dcmanager's group fields: id, name, description, update apply type, max parallel
/// subclouds, created_at, updated_at.
fn show_row(g: SubcloudGroup) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("id".into(), json!(g.id));
    row.insert("name".into(), json!(g.name));
    row.insert("description".into(), json!(g.description));
    row.insert("update apply type".into(), json!(g.update_apply_type));
    row.insert(
        "max parallel subclouds".into(),
        json!(g.max_parallel_subclouds),
    );
    row.insert("created_at".into(), json!(or_none(g.created_at)));
    row.insert("updated_at".into(), json!(or_none(g.updated_at)));
    row
}

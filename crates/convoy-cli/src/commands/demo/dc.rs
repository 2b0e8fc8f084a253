//! `convoy demo --dc`: a System Controller and three subclouds (each its own convoyd with two
//! agents) on this machine, the subclouds registered, managed and audited until they are
//! online and in sync.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use convoy_api::Client;
use convoy_api::dc::Form;
use convoy_core::host::{Availability, Personality};
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until,
};

use super::steps::{Output, Steps, seconds};
use crate::failure::Failure;
use crate::output::{Format, OutputArgs, emit};

const SUBCLOUDS: [&str; 3] = ["subcloud-1", "subcloud-2", "subcloud-3"];
const HOSTS: [(&str, Personality); 2] = [
    ("controller-0", Personality::Controller),
    ("worker-0", Personality::Worker),
];

fn failed(e: impl std::fmt::Display) -> Failure {
    Failure::failed(e.to_string())
}

async fn start_controller(
    binaries: &Binaries,
    dir: &Path,
    extra_args: Vec<String>,
) -> Result<(ControllerProcess, Client), Failure> {
    let controller = ControllerProcess::start(
        binaries,
        ControllerOptions {
            data_dir: dir.to_path_buf(),
            port: free_port().map_err(failed)?,
            ping_interval: 2,
            tls: true,
            extra_args,
        },
    )
    .await
    .map_err(failed)?;
    let client = controller.client().map_err(failed)?;
    let token = client
        .login("admin", &controller.admin_password().map_err(failed)?)
        .await?;
    Ok((controller, client.with_token(token)))
}

/// Runs the distributed-cloud demo under `root`.
pub async fn run(
    binaries: &Binaries,
    root: &Path,
    steps: &Steps,
    once: bool,
) -> Result<(), Failure> {
    let table = OutputArgs {
        format: Format::Table,
        columns: vec![],
    }
    .resolve()?;

    let step = steps.begin(
        "Starting the System Controller (convoyd, auditing its subclouds every 2 s)",
        Output::Quiet,
    );
    let (system_controller, sc_client) = start_controller(
        binaries,
        &root.join("system-controller"),
        vec!["--audit-interval".into(), "2".into()],
    )
    .await?;
    step.done();

    let step = steps.begin(
        "Starting three subclouds, each its own convoyd with two agents (controller-0, worker-0)",
        Output::Quiet,
    );
    let mut subclouds = Vec::new();
    let mut agents = Vec::new();
    for name in SUBCLOUDS {
        let dir = root.join(name);
        let (controller, client) =
            start_controller(binaries, &dir.join("controller"), vec![]).await?;
        for (hostname, personality) in HOSTS {
            let mut options = AgentOptions::new(hostname, personality, &dir.join("hosts"));
            options.extra_args = vec![
                "--load-cpus".into(),
                "1".into(),
                "--load-memory-mib".into(),
                "2048".into(),
            ];
            agents.push(AgentProcess::start(binaries, &controller, options).map_err(failed)?);
        }
        subclouds.push((name, controller, client));
    }
    for (name, _, client) in &subclouds {
        wait_until(
            Deadline::after(Duration::from_secs(60)),
            &format!("the hosts of {name} to become available"),
            || async {
                let hosts = client.hosts().await.ok()?;
                (hosts.len() == HOSTS.len()
                    && hosts
                        .iter()
                        .all(|h| h.availability == Availability::Available))
                .then_some(())
            },
        )
        .await
        .map_err(failed)?;
    }
    step.done();

    println!();
    let step = steps.begin(
        "Registering the subclouds on the System Controller",
        Output::Own,
    );
    for (name, controller, _) in &subclouds {
        println!(
            "$ convoy dc subcloud add --name {name} --bootstrap-address {} --sysadmin-password ****",
            controller.url()
        );
        let password = controller.admin_password().map_err(failed)?;
        let form = Form::new()
            .text("name", *name)
            .text("bootstrap-address", controller.url())
            .text(
                "sysadmin_password",
                base64::engine::general_purpose::STANDARD.encode(password),
            )
            .text("description", format!("Demo site {name}"));
        sc_client.dc_add_subcloud(&form).await?;
    }
    println!("\n$ convoy dc subcloud list");
    list(&sc_client, &table).await?;
    for (name, _, _) in &subclouds {
        println!("$ convoy dc subcloud manage {name}");
        let form = Form::new().text("management-state", "managed");
        // A subcloud is online from its first audit, a moment after the add.
        wait_until(
            Deadline::after(Duration::from_secs(30)),
            &format!("{name} to be online"),
            || async {
                let shown = sc_client.dc_subcloud(name, false).await.ok()?;
                (shown.availability_status == "online").then_some(())
            },
        )
        .await
        .map_err(failed)?;
        sc_client.dc_update_subcloud(name, &form).await?;
    }
    step.done();

    println!();
    let step = steps.begin(
        "Waiting for the audit: every subcloud online and in sync (software and identity)",
        Output::Own,
    );
    wait_until(
        Deadline::after(Duration::from_secs(60)),
        "every subcloud online and in sync",
        || async {
            let listed = sc_client.dc_subclouds().await.ok()?;
            listed
                .iter()
                .all(|s| {
                    s.availability_status == "online" && s.sync_status.as_deref() == Some("in-sync")
                })
                .then_some(())
        },
    )
    .await
    .map_err(failed)?;
    println!("$ convoy dc subcloud list");
    list(&sc_client, &table).await?;
    println!("\n$ convoy dc subcloud show subcloud-1");
    crate::commands::dc::subcloud::print_show(
        &table,
        sc_client.dc_subcloud("subcloud-1", false).await?,
    )?;
    step.done();

    let bin_dir = binaries
        .convoy
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    println!(
        "\nThe distributed cloud is running (ready in {ready}). In another shell:\n\
         \n  export PATH={bin_dir}:$PATH\
         \n  export CONVOY_URL={url} CONVOY_CA_CERT={ca_cert} CONVOY_USERNAME=admin CONVOY_PASSWORD={password}\
         \n  convoy dc subcloud list\
         \n  convoy dc subcloud show subcloud-2 --detail\
         \n  convoy dc subcloud unmanage subcloud-3 && convoy dc subcloud list\
         \n  convoy dc subcloud-group list\
         \n\nThe System Controller's admin password now works on every subcloud (identity sync).\
         \nLogs: {root}/system-controller/convoyd.log and {root}/<subcloud>/controller/convoyd.log",
        ready = seconds(steps.elapsed()),
        url = system_controller.url(),
        ca_cert = system_controller
            .ca_cert()
            .map(|c| c.display().to_string())
            .unwrap_or_default(),
        password = system_controller.admin_password().map_err(failed)?,
        root = root.display(),
    );
    if once {
        println!("\nDemo done (--once): stopping the distributed cloud.");
    } else {
        println!("\nPress Ctrl-C to stop the distributed cloud and remove its files.");
        let _ = tokio::signal::ctrl_c().await;
        println!("\nStopping the distributed cloud.");
    }
    for agent in &mut agents {
        agent.stop();
    }
    drop(subclouds);
    drop(system_controller);
    emit("");
    Ok(())
}

async fn list(client: &Client, table: &crate::output::Output) -> Result<(), Failure> {
    crate::commands::dc::subcloud::print_list(table, client.dc_subclouds().await?)
}

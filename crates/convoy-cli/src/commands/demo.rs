//! `convoy demo`: a controller and three agents on this machine, in a temporary directory.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use convoy_api::Client;
use convoy_core::host::{Availability, Personality};
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until,
};

use convoy_api::strategies::{ActionName, NewRollingMaintenance};

use crate::commands::host::LIST_COLUMNS;
use crate::commands::rolling_maintenance::{follow, show_report};
use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::{Format, OutputArgs};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files here instead of a temporary directory that is removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop as soon as the hosts are shown, instead of running until Ctrl-C.
    #[arg(long)]
    once: bool,
}

/// The demo's site: one controller host and two workers in one cluster.
const HOSTS: [(&str, Personality); 3] = [
    ("controller-0", Personality::Controller),
    ("worker-0", Personality::Worker),
    ("worker-1", Personality::Worker),
];

impl DemoArgs {
    pub async fn run(self, _connection: &ConnectionArgs) -> Result<(), Failure> {
        let failed = |e: convoy_launch::LaunchError| Failure::failed(e.to_string());
        Binaries::build_with_cargo_if_available().map_err(failed)?;
        let binaries = Binaries::locate().map_err(failed)?;
        let temp;
        let root = match &self.dir {
            Some(dir) => dir.clone(),
            None => {
                temp = tempfile::Builder::new()
                    .prefix("convoy-demo-")
                    .tempdir()
                    .map_err(|e| {
                        Failure::failed(format!("cannot create a temporary directory: {e}"))
                    })?;
                temp.path().to_path_buf()
            }
        };

        println!(
            "Starting convoyd and {} agents in {}",
            HOSTS.len(),
            root.display()
        );
        let port = free_port().map_err(|e| Failure::failed(e.to_string()))?;
        let controller = ControllerProcess::start(
            &binaries,
            ControllerOptions {
                data_dir: root.join("controller"),
                port,
                ping_interval: 2,
                extra_args: vec![],
            },
        )
        .await
        .map_err(failed)?;
        let password = controller.admin_password().map_err(failed)?;

        let mut agents = Vec::new();
        for (hostname, personality) in HOSTS {
            let hooks = root.join("hooks").join(hostname);
            write_demo_hooks(&hooks, hostname)
                .map_err(|e| Failure::failed(format!("cannot write the demo's hooks: {e}")))?;
            let mut options = AgentOptions::new(hostname, personality, &root.join("hosts"));
            options.extra_args = vec!["--hooks-dir".into(), hooks.display().to_string()];
            options.zone = Some("zone-a".into());
            options.pod = Some("pod-1".into());
            options.cluster = Some("cluster-1".into());
            options.capacity_cpus = Some(8);
            options.capacity_memory_mib = Some(16384);
            agents.push(AgentProcess::start(&binaries, &controller, options).map_err(failed)?);
        }

        let client = Client::new(&controller.url())?;
        let token = client.login("admin", &password).await?;
        let client = client.with_token(token);
        wait_until(
            Deadline::after(Duration::from_secs(30)),
            "the demo's hosts to become available",
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

        println!("\n$ convoy host list");
        let table = OutputArgs {
            format: Format::Table,
            columns: vec![],
        }
        .resolve()?;
        table.list(&client.hosts().await?, LIST_COLUMNS)?;

        println!("\n$ convoy rolling-maintenance start --clusters cluster-1 --wait");
        client
            .create_rolling_maintenance(&NewRollingMaintenance {
                clusters: Some(vec!["cluster-1".into()]),
                timeout_seconds: Some(60),
                ..Default::default()
            })
            .await?;
        client.rolling_maintenance_action(ActionName::Apply).await?;
        let report = follow(&client, &table).await?;
        show_report(&table, &report)?;

        let bin_dir = binaries
            .convoy
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        println!(
            "\nThe site is running. In another shell:\n\
             \n  export PATH={bin_dir}:$PATH\
             \n  export CONVOY_URL={url} CONVOY_USERNAME=admin CONVOY_PASSWORD={password}\
             \n  convoy host list\
             \n  convoy host show worker-0\
             \n  convoy host ping worker-1\
             \n  convoy strategy-step list\
             \n  convoy strategy-step show worker-0\
             \n  convoy rolling-maintenance-strategy delete\
             \n  convoy rolling-maintenance start --hosts worker-1 --payload \"--dry-run\" --wait\
             \n  convoy host lock worker-1 && convoy host list\
             \n  convoy user add alice --role operator\
             \n\nHooks: {root}/hooks/<host>/; logs: {root}/controller/convoyd.log and {root}/hosts/<host>/agent.log",
            url = controller.url(),
            root = root.display(),
        );
        if self.once {
            println!("\nDemo done (--once): stopping the site.");
        } else {
            println!("\nPress Ctrl-C to stop the site and remove its files.");
            let _ = tokio::signal::ctrl_c().await;
            println!("\nStopping the site.");
        }
        for agent in &mut agents {
            agent.stop();
        }
        drop(controller);
        Ok(())
    }
}

/// The demo's hook scripts: each says what it would do, takes a moment, and succeeds.
fn write_demo_hooks(dir: &std::path::Path, hostname: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let hooks = [
        ("PreFlight.sh", "echo \"$(hostname) can be maintained\""),
        (
            "PreMaintenance.sh",
            "echo \"draining workloads from HOST\"; sleep 0.3",
        ),
        (
            "Maintenance.sh",
            "echo \"updating packages on HOST (args: $*)\"; sleep 0.5",
        ),
        ("PostMaintenance.sh", "echo \"HOST is healthy\""),
    ];
    for (name, body) in hooks {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!("#!/bin/sh\n{}\n", body.replace("HOST", hostname)),
        )?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

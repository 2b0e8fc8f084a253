//! `convoy demo`: a controller and four agents on this machine, in a temporary directory.

mod dc;
mod steps;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use convoy_api::Client;
use convoy_core::host::{Availability, Personality};
use convoy_core::sw_update::options::{ApplyType, SwPatchOptions, SwUpdateKind};
use convoy_launch::{
    AgentOptions, AgentProcess, Binaries, ControllerOptions, ControllerProcess, Deadline,
    free_port, wait_until,
};

use convoy_api::strategies::{ActionName, NewRollingMaintenance};

use crate::commands::host::LIST_COLUMNS;
use crate::commands::rolling_maintenance::{follow, show_report};
use crate::connection::ConnectionArgs;
use crate::failure::Failure;
use crate::output::{Format, OutputArgs, emit};
use steps::{Output, Steps, seconds};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the demo's files here instead of a temporary directory that is removed at the end.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop the site (and remove its temporary directory) once the demo has run, instead of
    /// keeping it running until Ctrl-C.
    #[arg(long)]
    once: bool,
    /// Run a distributed cloud instead: a System Controller and three subclouds (each its own
    /// convoyd with two agents), registered, managed and audited until they are online and in
    /// sync; then a signed release deployed on the System Controller, prestaged to every
    /// subcloud by a prestage strategy, and deployed there by a sw-deploy strategy two
    /// subclouds at a time, each with a live table of its steps, until every subcloud is in
    /// sync again.
    #[arg(long)]
    dc: bool,
}

/// The demo's site: two controllers and two workers in one cluster.
const HOSTS: [(&str, Personality); 4] = [
    ("controller-0", Personality::Controller),
    ("controller-1", Personality::Controller),
    ("worker-0", Personality::Worker),
    ("worker-1", Personality::Worker),
];

/// The patch strategy's waits and timeouts, as a fraction of StarlingX's: a 15 s
/// system-stabilize takes 0.15 s.
pub(super) const STEP_TIME_SCALE: &str = "0.01";

impl DemoArgs {
    pub async fn run(self, _connection: &ConnectionArgs) -> Result<(), Failure> {
        let failed = |e: convoy_launch::LaunchError| Failure::failed(e.to_string());
        let steps = Steps::start();
        if self.dc {
            emit("Convoy demo: a System Controller and three subclouds on this machine.\n");
        } else {
            emit("Convoy demo: a controller and four hosts on this machine.\n");
        }
        if std::env::var_os("CARGO").is_some() {
            let step = steps.begin("Building convoyd and convoy-agent with cargo", Output::Own);
            Binaries::build_with_cargo_if_available().map_err(failed)?;
            step.done();
        }
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

        if self.dc {
            return dc::run(&binaries, &root, &steps, self.once).await;
        }
        let port = free_port().map_err(|e| Failure::failed(e.to_string()))?;
        let step = steps.begin(
            &format!(
                "Starting the controller (convoyd) on 127.0.0.1:{port}, files in {}",
                root.display()
            ),
            Output::Quiet,
        );
        let key = patch_key(&root.join("keys"))?;
        let controller = ControllerProcess::start(
            &binaries,
            ControllerOptions {
                data_dir: root.join("controller"),
                port,
                ping_interval: 2,
                tls: true,
                extra_args: vec![
                    "--trusted-key".into(),
                    key.public.display().to_string(),
                    "--step-time-scale".into(),
                    STEP_TIME_SCALE.into(),
                ],
            },
        )
        .await
        .map_err(failed)?;
        let password = controller.admin_password().map_err(failed)?;
        let client = controller.client().map_err(failed)?;
        let token = client.login("admin", &password).await?;
        let client = client.with_token(token);
        step.done();

        let step = steps.begin(
            &format!(
                "Enrolling {} agents ({}) and waiting for their hosts to be available",
                HOSTS.len(),
                HOSTS.map(|(name, _)| name).join(", ")
            ),
            Output::Quiet,
        );
        let mut agents = Vec::new();
        for (hostname, personality) in HOSTS {
            agents.push(start_agent(
                &binaries,
                &controller,
                &root,
                &key,
                hostname,
                personality,
            )?);
        }
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
        step.done();

        println!("\n$ convoy host list");
        let table = OutputArgs {
            format: Format::Table,
            columns: vec![],
        }
        .resolve()?;
        table.list(&client.hosts().await?, LIST_COLUMNS)?;

        println!();
        let step = steps.begin(
            "Running a rolling maintenance strategy over cluster-1 (hook scripts on every host)",
            Output::Own,
        );
        println!("$ convoy rolling-maintenance start --clusters cluster-1 --wait");
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
        // A site runs one strategy at a time: the patch strategy comes next.
        println!("\n$ convoy rolling-maintenance-strategy delete");
        client.delete_rolling_maintenance().await?;
        step.done();

        println!();
        let step = steps.begin(
            "Building a signed reboot-required patch and rolling it over the site with a patch strategy",
            Output::Own,
        );
        demo_patch(&client, &table, &root, &key).await?;
        step.done();

        let bin_dir = binaries
            .convoy
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        println!(
            "\nThe site is running (ready in {ready}). In another shell:\n\
             \n  export PATH={bin_dir}:$PATH\
             \n  export CONVOY_URL={url} CONVOY_CA_CERT={ca_cert} CONVOY_USERNAME=admin CONVOY_PASSWORD={password}\
             \n  convoy host list\
             \n  convoy host show worker-0\
             \n  convoy host ping worker-1\
             \n  convoy patch-strategy show --details\
             \n  convoy strategy-step list\
             \n  convoy strategy-step show worker-0\
             \n  convoy patch query && convoy patch query-hosts\
             \n  convoy patch-strategy delete\
             \n  convoy rolling-maintenance start --hosts worker-1 --payload \"--dry-run\" --wait\
             \n  convoy host lock worker-1 && convoy host list\
             \n  convoy user add alice --role operator\
             \n\nHooks: {root}/hooks/<host>/; each host's root: {root}/roots/<host>/; patch keys: {root}/keys/; logs: {root}/controller/convoyd.log and {root}/hosts/<host>/agent.log",
            ready = seconds(steps.elapsed()),
            url = controller.url(),
            ca_cert = controller
                .ca_cert()
                .map(|c| c.display().to_string())
                .unwrap_or_default(),
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

/// Starts one of the demo's agents with its hooks, its own root and fixed capacity figures.
pub(super) fn start_agent(
    binaries: &Binaries,
    controller: &ControllerProcess,
    root: &Path,
    key: &DemoKey,
    hostname: &str,
    personality: Personality,
) -> Result<AgentProcess, Failure> {
    let hooks = root.join("hooks").join(hostname);
    write_demo_hooks(&hooks, hostname)
        .map_err(|e| Failure::failed(format!("cannot write the demo's hooks: {e}")))?;
    let mut options = AgentOptions::new(hostname, personality, &root.join("hosts"));
    let host_root = root.join("roots").join(hostname);
    std::fs::create_dir_all(&host_root)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", host_root.display())))?;
    options.extra_args = vec![
        "--hooks-dir".into(),
        hooks.display().to_string(),
        "--root".into(),
        host_root.display().to_string(),
        "--trusted-key".into(),
        key.public.display().to_string(),
        "--reboot-command".into(),
        "restart-agent".into(),
        // The simulated hosts share this machine: its load average says nothing of what
        // they would move in maintenance, and a busy machine would fail the capacity check.
        "--load-cpus".into(),
        "1".into(),
        "--load-memory-mib".into(),
        "2048".into(),
    ];
    options.zone = Some("zone-a".into());
    options.pod = Some("pod-1".into());
    options.cluster = Some("cluster-1".into());
    options.capacity_cpus = Some(8);
    options.capacity_memory_mib = Some(16384);
    AgentProcess::start(binaries, controller, options).map_err(|e| Failure::failed(e.to_string()))
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

pub(super) struct DemoKey {
    signing: std::path::PathBuf,
    pub(super) public: std::path::PathBuf,
}

/// A patch signing key for the demo's site.
pub(super) fn patch_key(dir: &std::path::Path) -> Result<DemoKey, Failure> {
    let failed = |e: &dyn std::fmt::Display| {
        Failure::failed(format!("cannot make the demo's patch key: {e}"))
    };
    std::fs::create_dir_all(dir).map_err(|e| failed(&e))?;
    let key = convoy_bundle::SigningKey::generate().map_err(|e| failed(&e))?;
    let signing = dir.join("patch-signing.pem");
    let public = dir.join("patch-signing.pub.pem");
    if !signing.exists() {
        key.write(&signing).map_err(|e| failed(&e))?;
        key.public_key().write(&public).map_err(|e| failed(&e))?;
    }
    Ok(DemoKey { signing, public })
}

/// Builds the signed, reboot-required bundle `id` that puts a message of the day on every
/// host, under `root/patch-sources`.
pub(super) fn build_motd_bundle(
    root: &Path,
    key: &DemoKey,
    id: &str,
    summary: &str,
) -> Result<std::path::PathBuf, Failure> {
    use convoy_bundle::{BuildSpec, PayloadFile, Section};
    let failed = |e: &dyn std::fmt::Display| Failure::failed(format!("demo bundle {id}: {e}"));
    let sources = root.join("patch-sources");
    std::fs::create_dir_all(&sources).map_err(|e| failed(&e))?;
    let motd = sources.join(format!("{id}.motd"));
    std::fs::write(&motd, format!("Patched by Convoy: {id}\n")).map_err(|e| failed(&e))?;
    let mut spec = BuildSpec::new(
        id.parse().map_err(|e| failed(&e))?,
        "25.09".parse().map_err(|e| failed(&e))?,
    );
    spec.summary = summary.into();
    spec.status = convoy_core::patch::PatchStatus::Released;
    spec.reboot_required = true;
    spec.payload = PayloadFile::from_arg(Section::All, &format!("{}=etc/motd", motd.display()))
        .map_err(|e| failed(&e))?;
    let signing = convoy_bundle::SigningKey::read(&key.signing).map_err(|e| failed(&e))?;
    convoy_bundle::build(&spec, &signing, &sources).map_err(|e| failed(&e))
}

/// Builds, uploads and applies a reboot-required patch, rolls it over every host with a patch
/// strategy (showing each step as it starts), and shows the result.
async fn demo_patch(
    client: &Client,
    out: &crate::output::Output,
    root: &std::path::Path,
    key: &DemoKey,
) -> Result<(), Failure> {
    let failed = |e: &dyn std::fmt::Display| Failure::failed(format!("demo patch: {e}"));
    let file = build_motd_bundle(
        root,
        key,
        "DEMO_0001",
        "The demo's patch: a message of the day on every host",
    )?;

    println!("\n$ convoy patch upload {}", file.display());
    crate::commands::patch_repo::print_outcome(out, &client.upload_patch(&file).await?)?;
    println!("\n$ convoy patch apply DEMO_0001");
    let apply = crate::commands::patch_repo::operation(vec!["DEMO_0001".into()]);
    crate::commands::patch_repo::print_outcome(
        out,
        &client.patch_operation("apply", &apply).await?,
    )?;
    println!("\n$ convoy patch-strategy create --worker-apply-type parallel");
    let created = client
        .create_sw_update_strategy(
            SwUpdateKind::SwPatch,
            &SwPatchOptions {
                worker_apply_type: ApplyType::Parallel,
                ..SwPatchOptions::default()
            },
        )
        .await?;
    crate::commands::sw_update_strategy::show(out, &created["strategy"], true, false, false)?;
    println!("\n$ convoy patch-strategy apply --wait");
    client
        .sw_update_strategy_action(SwUpdateKind::SwPatch, "apply-all", None)
        .await?;
    let strategy = watch_strategy(client).await?;
    crate::commands::sw_update_strategy::show(out, &strategy, false, false, true)?;
    if strategy["state"] != "applied" {
        return Err(failed(&format!(
            "the patch strategy ended {}",
            strategy["state"]
        )));
    }
    println!("\n$ convoy patch query");
    crate::commands::patch_repo::query(client, out, crate::commands::patch_repo::Show::All).await?;
    println!("\n$ convoy patch query-hosts");
    crate::commands::patch_repo::query_hosts(client, out).await?;
    println!("\n$ cat {}/roots/worker-0/etc/motd", root.display());
    let installed =
        std::fs::read_to_string(root.join("roots/worker-0/etc/motd")).unwrap_or_default();
    print!("{installed}");
    Ok(())
}

/// Follows the patch strategy until it rests, printing each step as a host starts it.
async fn watch_strategy(client: &Client) -> Result<serde_json::Value, Failure> {
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let strategy = client.sw_update_strategy(SwUpdateKind::SwPatch).await?["strategy"].clone();
        for stage in strategy["apply-phase"]["stages"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for step in stage["steps"].as_array().into_iter().flatten() {
                if step["result"] == "initial" {
                    continue;
                }
                let line = format!(
                    "  stage {} {}: {} {}",
                    stage["stage-id"],
                    stage["stage-name"].as_str().unwrap_or(""),
                    step["step-name"].as_str().unwrap_or(""),
                    step["entity-names"]
                );
                if seen.insert(line.clone()) {
                    println!("{line}");
                }
            }
        }
        let state = strategy["state"].as_str().unwrap_or("");
        if !matches!(state, "applying" | "aborting") {
            return Ok(strategy);
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::failed(
                "the patch strategy did not end within 5 minutes",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

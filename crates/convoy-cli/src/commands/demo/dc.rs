//! `convoy demo --dc`: a System Controller and three subclouds (each its own convoyd with two
//! agents) on this machine, the subclouds registered, managed and audited until they are
//! online and in sync; then a release deployed on the System Controller, prestaged to the
//! subclouds by a prestage strategy and rolled out by a sw-deploy strategy, two at a time,
//! each with a live table of its steps.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use convoy_api::Client;
use convoy_api::dc::Form;
use convoy_core::host::{Availability, Personality};
use convoy_launch::{
    Binaries, ControllerOptions, ControllerProcess, Deadline, free_port, wait_until,
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
    let key = super::patch_key(&root.join("keys"))?;
    let trusted = key.public.display().to_string();
    let (system_controller, sc_client) = start_controller(
        binaries,
        &root.join("system-controller"),
        vec![
            "--audit-interval".into(),
            "2".into(),
            "--subcloud-poll-interval".into(),
            "0.5".into(),
            "--trusted-key".into(),
            trusted.clone(),
        ],
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
        let (controller, client) = start_controller(
            binaries,
            &dir.join("controller"),
            vec![
                "--trusted-key".into(),
                trusted.clone(),
                "--step-time-scale".into(),
                super::STEP_TIME_SCALE.into(),
            ],
        )
        .await?;
        for (hostname, personality) in HOSTS {
            agents.push(super::start_agent(
                binaries,
                &controller,
                &dir,
                &key,
                hostname,
                personality,
            )?);
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

    // After identity sync, the System Controller's admin password is every subcloud's.
    let sc_password = system_controller.admin_password().map_err(failed)?;
    deploy_release(&sc_client, &sc_password, root, &key, steps, &table).await?;

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
         \n  convoy dc strategy-step list\
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

/// The release's story: built and deployed on the System Controller, prestaged to every
/// subcloud by a prestage strategy, then deployed there by a sw-deploy strategy, two
/// subclouds at a time.
async fn deploy_release(
    sc: &Client,
    sysadmin_password: &str,
    root: &Path,
    key: &super::DemoKey,
    steps: &Steps,
    table: &crate::output::Output,
) -> Result<(), Failure> {
    const RELEASE: &str = "DEMO_REL_1";
    println!();
    let step = steps.begin(
        "Building a signed release and deploying it on the System Controller",
        Output::Own,
    );
    let file = super::build_motd_bundle(
        root,
        key,
        RELEASE,
        "The demo's release: a message of the day on every host",
    )?;
    println!("$ convoy software upload {}", file.display());
    sc.upload_patch(&file).await?;
    println!("$ convoy patch apply {RELEASE}");
    let apply = crate::commands::patch_repo::operation(vec![RELEASE.into()]);
    sc.patch_operation("apply", &apply).await?;
    println!("$ convoy software list");
    table.list(&sc.releases(None).await?, &["release", "rr", "state"])?;
    wait_until(
        Deadline::after(Duration::from_secs(60)),
        "every subcloud out of sync",
        || async {
            let listed = sc.dc_subclouds().await.ok()?;
            listed
                .iter()
                .all(|s| s.sync_status.as_deref() == Some("out-of-sync"))
                .then_some(())
        },
    )
    .await
    .map_err(failed)?;
    println!("\n$ convoy dc subcloud list");
    list(sc, table).await?;
    step.done();

    println!();
    let step = steps.begin(
        "Prestaging it: its bundles travel to every subcloud as verified chunks, ahead of the deploy",
        Output::Own,
    );
    println!(
        "$ convoy dc prestage-strategy create --for-sw-deploy --release 25.09 \\\n    \
         --max-parallel-subclouds 3 --sysadmin-password ****"
    );
    sc.dc_create_strategy(&serde_json::json!({
        "type": "prestage",
        "for_sw_deploy": "true",
        "release": "25.09",
        "max-parallel-subclouds": 3,
        "sysadmin_password": base64::engine::general_purpose::STANDARD.encode(sysadmin_password),
    }))
    .await?;
    println!("$ convoy dc prestage-strategy apply --wait");
    sc.dc_strategy_action("prestage", "apply").await?;
    follow(sc, "prestage").await?;
    println!("$ convoy dc prestage-strategy delete");
    sc.dc_delete_strategy("prestage").await?;
    println!("$ convoy dc subcloud show subcloud-1");
    crate::commands::dc::subcloud::print_show(table, sc.dc_subcloud("subcloud-1", false).await?)?;
    step.done();

    println!();
    let step = steps.begin(
        "Deploying it on the subclouds: a sw-deploy strategy, two subclouds at a time",
        Output::Own,
    );
    println!(
        "$ convoy dc sw-deploy-strategy create {RELEASE} --subcloud-apply-type parallel \\\n    \
         --max-parallel-subclouds 2 --delete"
    );
    sc.dc_create_strategy(&serde_json::json!({
        "type": "sw-deploy",
        "release_id": RELEASE,
        "subcloud-apply-type": "parallel",
        "max-parallel-subclouds": 2,
        "delete": "true",
    }))
    .await?;
    println!("$ convoy dc sw-deploy-strategy apply --wait");
    sc.dc_strategy_action("sw-deploy", "apply").await?;
    follow(sc, "sw-deploy").await?;
    wait_until(
        Deadline::after(Duration::from_secs(60)),
        "every subcloud in sync again",
        || async {
            let listed = sc.dc_subclouds().await.ok()?;
            listed
                .iter()
                .all(|s| s.sync_status.as_deref() == Some("in-sync"))
                .then_some(())
        },
    )
    .await
    .map_err(failed)?;
    println!("$ convoy dc subcloud list");
    list(sc, table).await?;
    step.done();
    Ok(())
}

/// Prints the strategy's steps each time they change, until it ends; fails unless it
/// completes within five minutes.
async fn follow(sc: &Client, kind: &str) -> Result<(), Failure> {
    let mut last = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let state = loop {
        let strategy = sc.dc_strategy(kind).await?;
        let rows: Vec<String> = sc
            .dc_strategy_steps()
            .await?
            .iter()
            .map(|s| {
                format!(
                    "  {:<11} {:<30} {}",
                    s["cloud"].as_str().unwrap_or(""),
                    s["state"].as_str().unwrap_or(""),
                    s["details"].as_str().unwrap_or("")
                )
            })
            .collect();
        let now = rows.join("\n");
        if now != last {
            println!("{now}\n");
            last = now;
        }
        let state = strategy["state"].as_str().unwrap_or("").to_string();
        if matches!(state.as_str(), "complete" | "failed" | "aborted") {
            break state;
        }
        if std::time::Instant::now() > deadline {
            return Err(failed(format!(
                "the {kind} strategy did not end within 5 minutes"
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if state != "complete" {
        return Err(failed(format!("the {kind} strategy ended {state}")));
    }
    Ok(())
}

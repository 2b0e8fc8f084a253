//! The System Controller's sw-deploy strategy (`convoy dc sw-deploy-strategy`,
//! `/v1.0/sw-update-strategy`): real subclouds, each a convoyd with agents, deploy a release
//! through their own sw-deploy strategies, in dcmanager's step states, and end in sync.

use std::time::Duration;

use convoy_e2e::Site;
use convoy_e2e::convoy_launch::{Deadline, wait_until_every};
use convoy_e2e::dc::{
    LONG, create_raw, register, release_everywhere, ship, show_subcloud, subcloud,
    system_controller, wait_field, wait_strategy,
};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn a_release_is_deployed_on_every_subcloud_that_needs_it() {
    let (sc, keys) = system_controller().await;
    let subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];

    // A worker release, deployed on the System Controller.
    let source = sc.source("dc.source", "dc\n");
    let release = sc
        .build_patch(
            &keys,
            "DC_REL_1",
            &[
                "--status",
                "REL",
                "--reboot-required",
                "N",
                "--worker",
                &format!("{}=etc/dc.conf", source.display()),
            ],
        )
        .await;
    let file = release.display().to_string();

    // Not yet on the System Controller: refused with the original's message.
    let early = sc
        .convoy(&["dc", "sw-deploy-strategy", "create", "DC_REL_1"])
        .await;
    assert!(
        early
            .fails(2)
            .contains("Release ID: DC_REL_1 not found or not deployed in the SystemController"),
        "{early:?}"
    );
    sc.convoy(&["software", "upload", &file]).await.ok();
    sc.convoy(&["patch", "apply", "DC_REL_1"]).await.ok();

    register(&sc, &subs).await;
    // The release reaches subcloud-1 and subcloud-2 ahead of time; subcloud-3 lacks it.
    for sub in &subs[..2] {
        sub.convoy(&["software", "upload", &file]).await.ok();
    }
    for name in ["subcloud-1", "subcloud-2", "subcloud-3"] {
        wait_field(&sc, name, "software_sync_status", "out-of-sync").await;
    }

    let created = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "sw-deploy-strategy",
            "create",
            "DC_REL_1",
            "--subcloud-apply-type",
            "parallel",
            "--max-parallel-subclouds",
            "2",
            "--delete",
        ])
        .await
        .json();
    assert_eq!(created["strategy type"], "sw-deploy", "{created:#}");
    assert_eq!(created["state"], "initial");
    assert_eq!(created["release_id"], "DC_REL_1");
    let again = sc
        .convoy(&["dc", "sw-deploy-strategy", "create", "DC_REL_1"])
        .await;
    assert!(
        again
            .fails(2)
            .contains("Strategy of type: 'sw-deploy' already exists"),
        "{again:?}"
    );
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let clouds: Vec<&str> = steps.iter().map(|s| s["cloud"].as_str().unwrap()).collect();
    assert_eq!(clouds, ["subcloud-1", "subcloud-2", "subcloud-3"]);
    assert!(
        steps
            .iter()
            .all(|s| s["state"] == "initial" && s["stage"] == "Create")
    );

    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    // subcloud-3 fails its pre-check: the strategy ends failed, the others deployed.
    let ended = wait_strategy(&sc, "sw-deploy", "failed").await;
    assert_eq!(ended["type"], "sw-deploy");
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let by = |cloud: &str| steps.iter().find(|s| s["cloud"] == cloud).unwrap().clone();
    for cloud in ["subcloud-1", "subcloud-2"] {
        let step = by(cloud);
        assert_eq!(step["state"], "complete", "{step:#}");
        assert_eq!(step["stage"], "Complete", "{step:#}");
    }
    let failed = by("subcloud-3");
    assert_eq!(failed["state"], "failed");
    assert_eq!(
        failed["details"],
        "sw-deploy pre-check: Release DC_REL_1 is not prestaged."
    );
    // The deployed subclouds: the release deployed on their worker, their own strategy and
    // deploy record gone, the deploy status complete, and in sync at the next audit.
    for (i, sub) in subs[..2].iter().enumerate() {
        let name = format!("subcloud-{}", i + 1);
        let rows = sub.admin().releases(None).await.unwrap();
        assert_eq!(rows[0].state, "deployed", "{name}");
        assert!(sub.admin().deploy().await.unwrap().is_empty(), "{name}");
        assert_eq!(
            std::fs::read_to_string(sub.root("worker-0").join("etc/dc.conf")).unwrap(),
            "dc\n"
        );
        let shown = wait_field(&sc, &name, "software_sync_status", "in-sync").await;
        assert_eq!(shown["deploy_status"], "complete", "{shown:#}");
        assert_eq!(shown["software_version"], "25.09", "{shown:#}");
    }
    let listed = sc.convoy(&["dc", "strategy-step", "list"]).await;
    assert!(listed.ok().contains("not prestaged"), "{listed:?}");

    // Deleted once it has ended; a type that is not there is 404 with the original's text.
    let other = sc.admin().dc_strategy("prestage").await.unwrap_err();
    assert_eq!(other.status(), Some(404));
    sc.convoy(&["dc", "sw-deploy-strategy", "delete"])
        .await
        .ok();
    let gone = sc.convoy(&["dc", "sw-deploy-strategy", "show"]).await;
    assert!(
        gone.fails(2)
            .contains("Strategy of type 'sw-deploy' not found"),
        "{gone:?}"
    );
}

/// When each subcloud's own convoyd created and deleted its sw-upgrade strategy, from its
/// log: `(created, deleted)` as RFC 3339 timestamps' instants.
fn vim_interval(sub: &Site) -> (jiff::Timestamp, jiff::Timestamp) {
    let log = std::fs::read_to_string(sub.controller.log()).unwrap();
    let at = |what: &str| {
        // The latest such line.
        log.lines()
            .rev()
            .filter(|l| l.contains(what) && l.contains("sw-upgrade"))
            .filter_map(|l| {
                // The line starts with the time, in colour codes (`ESC[...m`) if any.
                let mut plain = String::new();
                let mut chars = l.chars();
                while let Some(c) = chars.next() {
                    if c == '\u{1b}' {
                        chars.by_ref().find(|c| *c == 'm');
                    } else {
                        plain.push(c);
                    }
                }
                plain
                    .split_whitespace()
                    .next()?
                    .parse::<jiff::Timestamp>()
                    .ok()
            })
            .next()
            .unwrap_or_else(|| panic!("no {what:?} in {log}"))
    };
    (
        at("software-update strategy created"),
        at("software-update strategy deleted"),
    )
}

/// The most subclouds whose strategies overlapped at one moment.
fn most_at_once(intervals: &[(jiff::Timestamp, jiff::Timestamp)]) -> usize {
    intervals
        .iter()
        .map(|(start, _)| {
            intervals
                .iter()
                .filter(|(s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn serial_goes_one_subcloud_at_a_time_and_parallel_within_its_maximum() {
    let (sc, keys) = system_controller().await;
    let subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];
    register(&sc, &subs).await;

    for (id, args, most) in [
        ("DC_SER_1", vec!["--subcloud-apply-type", "serial"], 1),
        (
            "DC_PAR_1",
            vec![
                "--subcloud-apply-type",
                "parallel",
                "--max-parallel-subclouds",
                "2",
            ],
            2,
        ),
    ] {
        release_everywhere(&sc, &keys, &subs, id).await;
        for name in ["subcloud-1", "subcloud-2", "subcloud-3"] {
            wait_field(&sc, name, "software_sync_status", "out-of-sync").await;
        }
        // --delete: a subcloud's completed deploy would stand in the way of the next one.
        let mut create = vec!["dc", "sw-deploy-strategy", "create", id, "--delete"];
        create.extend(args);
        sc.convoy(&create).await.ok();
        sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
        wait_strategy(&sc, "sw-deploy", "complete").await;
        let intervals: Vec<_> = subs.iter().map(vim_interval).collect();
        assert_eq!(most_at_once(&intervals), most, "{id}: {intervals:?}");
        sc.convoy(&["dc", "sw-deploy-strategy", "delete"])
            .await
            .ok();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_abort_lets_the_running_subcloud_finish_and_a_killed_system_controller_resumes() {
    let (mut sc, keys) = system_controller().await;
    let subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];
    register(&sc, &subs).await;
    // Each install logs its subcloud and waits for the test's gate.
    let gate = sc.dir.path().join("gate");
    let log = sc.dir.path().join("installs.log");
    let line = "echo \"$CONVOY_CONTROLLER\"";
    let bundle = sc
        .build_gated_worker_patch(&keys, "DC_GATE_1", false, line, &log, &gate)
        .await;
    ship(&sc, &subs, &bundle, "DC_GATE_1").await;
    sc.convoy(&[
        "dc",
        "sw-deploy-strategy",
        "create",
        "DC_GATE_1",
        "--subcloud-apply-type",
        "serial",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(100),
        "subcloud-1's install to start",
        || async { log.exists().then_some(()) },
    )
    .await
    .unwrap();

    // Abort while subcloud-1 installs, then kill the System Controller outright.
    let aborted = sc
        .convoy(&["-f", "json", "dc", "sw-deploy-strategy", "abort"])
        .await
        .json();
    assert_eq!(aborted["state"], "abort requested", "{aborted:#}");
    sc.controller.kill();
    std::fs::write(&gate, "").unwrap();
    sc.controller.restart().await.unwrap();

    // It resumes: subcloud-1 finishes, the others were aborted before they started.
    wait_strategy(&sc, "sw-deploy", "aborted").await;
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let states: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s["cloud"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("subcloud-1", "complete"),
            ("subcloud-2", "aborted"),
            ("subcloud-3", "aborted")
        ]
    );
    // subcloud-1 installed once and deployed the release once.
    let installs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(installs.lines().count(), 1, "{installs}");
    assert!(installs.contains(&subs[0].url()), "{installs}");
    let sub_log = std::fs::read_to_string(subs[0].controller.log()).unwrap();
    assert_eq!(sub_log.matches("software deploy started").count(), 1);
    assert_eq!(
        subs[0].admin().releases(None).await.unwrap()[0].state,
        "deployed"
    );
    assert_eq!(
        subs[1].admin().releases(None).await.unwrap()[0].state,
        "available"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn creates_are_refused_with_the_originals_status_and_message_and_store_nothing() {
    let (sc, keys) = system_controller().await;
    // subcloud-1 will have the release deployed (in sync); subcloud-2 lacks it.
    let subs = [subcloud(&keys).await, subcloud(&keys).await];
    register(&sc, &subs).await;
    let in_sync = &subs[0];
    release_everywhere(&sc, &keys, std::slice::from_ref(in_sync), "DC_MSG_1").await;
    in_sync.convoy(&["patch", "apply", "DC_MSG_1"]).await.ok();
    wait_field(&sc, "subcloud-1", "software_sync_status", "in-sync").await;
    wait_field(&sc, "subcloud-2", "software_sync_status", "out-of-sync").await;

    let admin = sc.admin_token();
    let unable = |msg: &str| {
        format!("Unable to create strategy of type 'sw-deploy': Bad strategy request: {msg}")
    };
    let cases: Vec<(&str, u16, String)> = vec![
        ("{}", 400, "Body required".into()),
        ("[1]", 400, "Request body is malformed.".into()),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "force": "yes"}"#, 400,
         "Invalid value 'yes' for force - must be True/False or 'true'/'false'".into()),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "subcloud_group": "Default", "max-parallel-subclouds": 3}"#, 400,
         "subcloud-apply-type and max-parallel-subclouds are not allowed when subcloud_group is provided".into()),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "max-parallel-subclouds": 0}"#, 400,
         "Invalid max-parallel-subclouds value: 0. For sw-deploy strategy, the value must be between 1 and 5000.".into()),
        (r#"{"type": "kube-upgrade"}"#, 400, "type invalid".into()),
        (r#"{"type": "sw-deploy"}"#, 400, "Release ID is required for strategy type: sw-deploy.".into()),
        (r#"{"type": "sw-deploy", "release_id": "NOPE_1"}"#, 400,
         "Release ID: NOPE_1 not found or not deployed in the SystemController".into()),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "stop-on-failure": true}"#, 400,
         "stop-on-failure invalid".into()),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "cloud_name": "nope"}"#, 422,
         unable("Subcloud nope does not exist")),
        (r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "cloud_name": "subcloud-1"}"#, 422,
         unable("Subcloud subcloud-1 does not require software update")),
    ];
    for (body, status, message) in cases {
        let (got, error) = create_raw(&sc, admin, body).await;
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(error["description"], message, "{body}");
    }
    // A reader may look but not create.
    let reader = sc
        .add_user("watcher", convoy_core::role::Role::Reader)
        .await;
    let reader_token = sc
        .convoy_as(&reader, &["token"])
        .await
        .ok()
        .trim()
        .to_string();
    let (got, _) = create_raw(
        &sc,
        &reader_token,
        r#"{"type": "sw-deploy", "release_id": "DC_MSG_1"}"#,
    )
    .await;
    assert_eq!(got, 403);
    // Nothing was stored by any of them.
    assert!(sc.admin().dc_strategy_steps().await.unwrap().is_empty());
    assert_eq!(
        sc.admin()
            .dc_strategy("sw-deploy")
            .await
            .unwrap_err()
            .status(),
        Some(404)
    );

    // A single subcloud that is unmanaged (or offline) is no step: nothing to apply.
    sc.convoy(&["dc", "subcloud", "unmanage", "subcloud-2"])
        .await
        .ok();
    let (got, error) = create_raw(
        &sc,
        admin,
        r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "cloud_name": "subcloud-2"}"#,
    )
    .await;
    assert_eq!(got, 422, "{error}");
    assert_eq!(
        error["description"],
        unable("Strategy has no steps to apply")
    );
    sc.convoy(&["dc", "subcloud", "manage", "subcloud-2"])
        .await
        .ok();
    wait_field(&sc, "subcloud-2", "software_sync_status", "out-of-sync").await;

    // A group takes its own apply type and maximum; only the out-of-sync subcloud is a step.
    let (got, created) = create_raw(
        &sc,
        admin,
        r#"{"type": "sw-deploy", "release_id": "DC_MSG_1", "subcloud_group": "Default"}"#,
    )
    .await;
    assert_eq!(got, 200, "{created}");
    assert_eq!(created["subcloud-apply-type"], "parallel");
    let clouds: Vec<Value> = sc
        .admin()
        .dc_strategy_steps()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s["cloud"].clone())
        .collect();
    assert_eq!(clouds, ["subcloud-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subcloud_killed_mid_step_fails_within_its_timeout_and_the_others_go_on() {
    // The System Controller's step timeouts at a thousandth: applying may take 24 s.
    let (mut sc, keys) = system_controller().await;
    sc.controller
        .options
        .extra_args
        .extend(["--step-time-scale".to_string(), "0.001".to_string()]);
    sc.controller.restart().await.expect("restarts");
    let mut subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];
    register(&sc, &subs).await;
    // subcloud-2's install waits for the test's gate; the others' go straight through.
    let gate = sc.dir.path().join("gate");
    let started = sc.dir.path().join("started");
    let held = format!(
        "case \"$CONVOY_CONTROLLER\" in *{port}*) touch {started}; \
         while [ ! -e {gate} ]; do sleep 0.05; done ;; esac",
        port = subs[1].url().rsplit(':').next().unwrap(),
        started = started.display(),
        gate = gate.display()
    );
    let bundle = sc
        .build_worker_patch_with_pre_install(&keys, "DC_KILL_1", false, &held)
        .await;
    ship(&sc, &subs, &bundle, "DC_KILL_1").await;
    sc.convoy(&[
        "dc",
        "sw-deploy-strategy",
        "create",
        "DC_KILL_1",
        "--max-parallel-subclouds",
        "3",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(100),
        "subcloud-2's install to start",
        || async { started.exists().then_some(()) },
    )
    .await
    .unwrap();
    subs[1].controller.kill();
    std::fs::write(&gate, "").unwrap();

    let began = std::time::Instant::now();
    wait_strategy(&sc, "sw-deploy", "failed").await;
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let state = |cloud: &str| {
        let step = steps.iter().find(|s| s["cloud"] == cloud).unwrap();
        (step["state"].clone(), step["details"].clone())
    };
    assert_eq!(state("subcloud-1").0, "complete");
    assert_eq!(state("subcloud-3").0, "complete");
    let (failed, details) = state("subcloud-2");
    assert_eq!(failed, "failed");
    assert_eq!(
        details,
        "apply VIM sw-deploy strategy: Timeout applying VIM strategy on subcloud subcloud-2."
    );
    // Within its timeout (24 s from when the phase began, before the kill).
    assert!(
        began.elapsed() < Duration::from_secs(30),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_on_failure_stops_at_a_subcloud_whose_install_fails() {
    let (sc, keys) = system_controller().await;
    let subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];
    register(&sc, &subs).await;
    // The release's install fails on a host with `fail` in its root: subcloud-1's worker.
    let bundle = sc
        .build_worker_patch_failing_on_flag(&keys, "DC_FAIL_1", false)
        .await;
    std::fs::write(subs[0].root("worker-0").join("fail"), "").unwrap();
    ship(&sc, &subs, &bundle, "DC_FAIL_1").await;
    sc.convoy(&[
        "dc",
        "sw-deploy-strategy",
        "create",
        "DC_FAIL_1",
        "--subcloud-apply-type",
        "serial",
        "--stop-on-failure",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    let ended = wait_strategy(&sc, "sw-deploy", "failed").await;
    assert_eq!(ended["stop-on-failure"], true);
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let states: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s["cloud"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    // The others never started.
    assert_eq!(
        states,
        [
            ("subcloud-1", "failed"),
            ("subcloud-2", "initial"),
            ("subcloud-3", "initial")
        ]
    );
    let details = steps[0]["details"].as_str().unwrap();
    assert!(
        details.starts_with("apply VIM sw-deploy strategy: Failed for subcloud subcloud-1:"),
        "{details}"
    );
    assert!(details.contains("injected failure"), "{details}");
    let shown = show_subcloud(&sc, "subcloud-1").await;
    assert_eq!(shown["deploy_status"], "sw-deploy-apply-strategy-failed");
    // Its error description is the step's failure, as the original's; the others have none.
    let described = wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(100),
        "subcloud-1's error description",
        || async {
            let s = sc.admin().dc_subcloud("subcloud-1", false).await.ok()?;
            (s.error_description != "No errors present").then_some(s.error_description)
        },
    )
    .await
    .unwrap();
    assert_eq!(described, details);
    let other = sc.admin().dc_subcloud("subcloud-2", false).await.unwrap();
    assert_eq!(other.error_description, "No errors present");
    // Nothing happened on the others.
    assert_eq!(
        subs[1].admin().releases(None).await.unwrap()[0].state,
        "available"
    );
}

/// A subcloud that holds a strategy of another type fails its pre-check (seen through its
/// `current-strategy`), with the reason as its error description, and keeps that strategy;
/// the other subcloud deploys.
#[tokio::test(flavor = "multi_thread")]
async fn a_subcloud_holding_another_strategy_fails_its_pre_check_and_keeps_it() {
    let (sc, keys) = system_controller().await;
    let subs = [subcloud(&keys).await, subcloud(&keys).await];
    register(&sc, &subs).await;
    release_everywhere(&sc, &keys, &subs, "DC_OTHER_1").await;
    for name in ["subcloud-1", "subcloud-2"] {
        wait_field(&sc, name, "software_sync_status", "out-of-sync").await;
    }
    // A patch strategy stays on subcloud-2 until deleted, built or not.
    subs[1].convoy(&["patch-strategy", "create"]).await.ok();
    let held = || async {
        subs[1]
            .admin()
            .sw_update_strategy(convoy_core::sw_update::options::SwUpdateKind::SwPatch)
            .await
            .unwrap()["strategy"]["uuid"]
            .clone()
    };
    let before = held().await;
    assert!(before.is_string(), "{before}");

    sc.convoy(&["dc", "sw-deploy-strategy", "create", "DC_OTHER_1"])
        .await
        .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "sw-deploy", "failed").await;
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    let states: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s["cloud"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [("subcloud-1", "complete"), ("subcloud-2", "failed")]
    );
    let details = steps[1]["details"].as_str().unwrap();
    assert_eq!(
        details,
        "sw-deploy pre-check: Subcloud has a sw-patch strategy; delete it first"
    );
    let described = sc.admin().dc_subcloud("subcloud-2", false).await.unwrap();
    assert_eq!(described.error_description, details);
    assert_eq!(held().await, before);
    assert_eq!(
        subs[1].admin().releases(None).await.unwrap()[0].state,
        "available"
    );
}

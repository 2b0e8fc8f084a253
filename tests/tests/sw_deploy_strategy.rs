//! The sw-deploy strategy (`convoy sw-deploy-strategy`, `/api/orchestration/sw-upgrade/strategy`)
//! and the release views (`convoy software ...`): a release deployed over real agents, with the
//! release and deploy states of USM at every stage.

use std::time::Duration;

use convoy_core::sw_update::options::SwUpdateKind;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{FAST_STEPS, PatchKeys, Site, duplex_site};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);
async fn strategy(site: &Site) -> Value {
    site.sw_update_strategy(SwUpdateKind::SwUpgrade).await
}

/// Builds and uploads a reboot-required release `id` for controllers and workers, whose
/// pre-install script fails on a host that has `fail` in its root.
async fn release(site: &Site, keys: &PatchKeys, id: &str) {
    let source = site.source(&format!("{id}.source"), "deployed\n");
    let controller = format!("{}=etc/release.conf", source.display());
    let worker = format!("{}=etc/release-worker.conf", source.display());
    let pre = site.source(
        &format!("{id}-pre.sh"),
        "#!/bin/sh\nif [ -e \"$CONVOY_ROOT/fail\" ]; then echo injected failure; exit 1; fi\n",
    );
    let bundle = site
        .build_patch(
            keys,
            id,
            &[
                "--status",
                "REL",
                "--reboot-required",
                "Y",
                "--controller",
                &controller,
                "--worker",
                &worker,
                "--pre-install",
                &pre.display().to_string(),
            ],
        )
        .await;
    site.convoy(&["software", "upload", &bundle.display().to_string()])
        .await
        .ok();
}

/// The release's state as `convoy software list` shows it.
async fn release_state(site: &Site, id: &str) -> String {
    let rows = site.admin().releases(None).await.unwrap();
    rows.into_iter()
        .find(|r| r.release == id)
        .map(|r| r.state)
        .unwrap_or_default()
}

/// The deploy's state, or "" with none.
async fn deploy_state(site: &Site) -> String {
    let deploy = site.admin().deploy().await.unwrap();
    deploy.first().map(|d| d.state.clone()).unwrap_or_default()
}

/// Each host's deploy state, `hostname=state`, sorted.
async fn host_states(site: &Site) -> Vec<String> {
    let mut rows: Vec<String> = site
        .admin()
        .deploy_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| format!("{}={}", h.hostname, h.host_state))
        .collect();
    rows.sort();
    rows
}

async fn apply_stage(site: &Site, stage: usize) -> Value {
    site.convoy(&[
        "sw-deploy-strategy",
        "apply",
        "--stage-id",
        &stage.to_string(),
    ])
    .await
    .ok();
    let waited = wait_until(
        Deadline::after(LONG),
        &format!("stage {stage} to end"),
        || async {
            let s = strategy(site).await;
            (s["apply-phase"]["stages"][stage]["result"] == "success"
                && s["apply-phase"]["inprogress"] == false)
                .then_some(s)
        },
    )
    .await;
    match waited {
        Ok(s) => s,
        Err(e) => panic!("{e:?}; the strategy is {:#}", strategy(site).await),
    }
}

async fn wait_state(site: &Site, wanted: &str) -> Value {
    site.wait_sw_update_state(SwUpdateKind::SwUpgrade, wanted)
        .await
}

async fn deploy_alarm(site: &Site) -> bool {
    site.admin()
        .alarms()
        .await
        .unwrap()
        .iter()
        .any(|a| a.alarm_id == "900.005")
}

#[tokio::test]
async fn a_release_deploys_stage_by_stage_through_the_usm_states() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    release(&site, &keys, "REL_2509_1").await;
    assert_eq!(release_state(&site, "REL_2509_1").await, "available");
    // The patch view of the same repository agrees.
    let patch = site.admin().patch("REL_2509_1").await.unwrap();
    assert_eq!(patch.repo_state, "Available");
    assert_eq!(deploy_state(&site).await, "");

    let created = site
        .convoy(&["sw-deploy-strategy", "create", "REL_2509_1", "--delete"])
        .await;
    assert!(created.ok().contains("ready-to-apply"), "{created:?}");
    let s = strategy(&site).await;
    let stages: Vec<&str> = s["apply-phase"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|st| st["stage-name"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "sw-upgrade-start",
            "sw-upgrade-controllers",
            "sw-upgrade-controllers",
            "sw-upgrade-worker-hosts",
            "sw-upgrade-worker-hosts",
            "sw-upgrade-complete",
            "sw-deploy-delete",
        ],
        "{s:#}"
    );
    assert_eq!(s["name"], "sw-upgrade");
    assert_eq!(s["release"], "REL_2509_1");
    // The standby controller first, the active one (after a swact) last.
    assert_eq!(
        s["apply-phase"]["stages"][1]["steps"][1]["entity-names"][0], "controller-1",
        "{s:#}"
    );

    // Start: the release is deploying, the deploy start-done, every host pending.
    apply_stage(&site, 0).await;
    assert_eq!(release_state(&site, "REL_2509_1").await, "deploying");
    assert_eq!(deploy_state(&site).await, "start-done");
    assert_eq!(
        host_states(&site).await,
        [
            "controller-0=pending",
            "controller-1=pending",
            "worker-0=pending",
            "worker-1=pending"
        ]
    );
    assert_eq!(
        site.admin().patch("REL_2509_1").await.unwrap().patch_state,
        "Partial-Apply"
    );
    wait_until(Deadline::after(LONG), "the deploy alarm", || async {
        deploy_alarm(&site).await.then_some(())
    })
    .await
    .unwrap();

    // The hosts, one stage each: the deploy is `host`, each host deployed in turn.
    apply_stage(&site, 1).await;
    assert_eq!(deploy_state(&site).await, "host");
    assert_eq!(
        host_states(&site).await,
        [
            "controller-0=pending",
            "controller-1=deployed",
            "worker-0=pending",
            "worker-1=pending"
        ]
    );
    for stage in 2..=4 {
        apply_stage(&site, stage).await;
    }
    assert_eq!(deploy_state(&site).await, "host");
    assert_eq!(release_state(&site, "REL_2509_1").await, "deploying");
    assert!(
        host_states(&site)
            .await
            .iter()
            .all(|h| h.ends_with("=deployed")),
        "{:?}",
        host_states(&site).await
    );
    for (host, file) in [
        ("controller-0", "etc/release.conf"),
        ("controller-1", "etc/release.conf"),
        ("worker-0", "etc/release-worker.conf"),
        ("worker-1", "etc/release-worker.conf"),
    ] {
        assert_eq!(
            std::fs::read_to_string(site.root(host).join(file)).unwrap(),
            "deployed\n"
        );
    }

    // Activate and complete: the release is deployed, the deploy completed, the alarm gone.
    apply_stage(&site, 5).await;
    assert_eq!(deploy_state(&site).await, "completed");
    assert_eq!(release_state(&site, "REL_2509_1").await, "deployed");
    assert_eq!(
        site.admin().patch("REL_2509_1").await.unwrap().patch_state,
        "Applied"
    );
    wait_until(
        Deadline::after(LONG),
        "the deploy alarm to clear",
        || async { (!deploy_alarm(&site).await).then_some(()) },
    )
    .await
    .unwrap();

    // --delete: the deploy record goes; the release stays deployed.
    apply_stage(&site, 6).await;
    wait_state(&site, "applied").await;
    assert_eq!(deploy_state(&site).await, "");
    let shown = site.convoy(&["software", "deploy", "show"]).await;
    assert!(shown.ok().contains("No deploy in progress"), "{shown:?}");
    assert_eq!(release_state(&site, "REL_2509_1").await, "deployed");

    // Deployed: a second strategy has nothing to do, with the original's reason.
    site.convoy(&["sw-deploy-strategy", "delete"]).await.ok();
    let again = site
        .convoy(&["sw-deploy-strategy", "create", "REL_2509_1"])
        .await;
    assert!(
        again
            .ok()
            .contains("Software release is already deployed or committed."),
        "{again:?}"
    );
    site.convoy(&["sw-deploy-strategy", "delete"]).await.ok();

    // Committed through the patch verbs: the release view follows.
    site.convoy(&["patch", "commit", "REL_2509_1"]).await.ok();
    assert_eq!(release_state(&site, "REL_2509_1").await, "committed");
    let listed = site
        .convoy(&["software", "list", "--state", "committed"])
        .await;
    assert!(listed.ok().contains("REL_2509_1"), "{listed:?}");
}

#[tokio::test]
async fn a_failed_host_fails_the_deploy_and_unlocks_the_host() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    release(&site, &keys, "REL_2509_2").await;

    // Refusals: an unknown release builds to the original's reason; bad options store
    // nothing and exit 2 naming the option.
    let unknown = site
        .convoy(&["sw-deploy-strategy", "create", "NO_SUCH_1"])
        .await;
    assert!(
        unknown
            .ok()
            .contains("Software release does not exist or is unavailable"),
        "{unknown:?}"
    );
    site.convoy(&["sw-deploy-strategy", "delete"]).await.ok();
    let bad = site
        .convoy(&[
            "sw-deploy-strategy",
            "create",
            "REL_2509_2",
            "--max-parallel-worker-hosts",
            "11",
        ])
        .await;
    assert!(
        bad.fails(2).contains("max-parallel-worker-hosts"),
        "{bad:?}"
    );
    let shown = site.convoy(&["sw-deploy-strategy", "show"]).await;
    assert!(shown.ok().contains("No strategy available"), "{shown:?}");
    // A patch strategy cannot exist beside it.
    site.convoy(&[
        "sw-deploy-strategy",
        "create",
        "REL_2509_2",
        "--worker-apply-type",
        "parallel",
    ])
    .await
    .ok();
    let beside = site.convoy(&["patch-strategy", "create"]).await;
    assert!(
        beside
            .fails(2)
            .contains("strategy already exists of type:sw-upgrade"),
        "{beside:?}"
    );

    // worker-1's install fails: the apply fails, the deploy is host-failed, and the abort
    // phase unlocks the host.
    std::fs::write(site.root("worker-1").join("fail"), "").unwrap();
    site.convoy(&["sw-deploy-strategy", "apply"]).await.ok();
    let s = wait_state(&site, "aborted").await;
    assert_eq!(s["apply-phase"]["result"], "failed", "{s:#}");
    assert_eq!(deploy_state(&site).await, "host-failed");
    assert!(
        host_states(&site)
            .await
            .contains(&"worker-1=failed".to_string()),
        "{:?}",
        host_states(&site).await
    );
    for host in site.admin().hosts().await.unwrap() {
        assert_eq!(
            host.administrative.as_str(),
            "unlocked",
            "{} left locked",
            host.hostname
        );
    }
    assert_eq!(release_state(&site, "REL_2509_2").await, "deploying");

    // The cause mended, a new strategy resumes the deploy where it stopped: no start stage.
    std::fs::remove_file(site.root("worker-1").join("fail")).unwrap();
    site.convoy(&["sw-deploy-strategy", "delete"]).await.ok();
    let created = site
        .convoy(&["sw-deploy-strategy", "create", "REL_2509_2"])
        .await;
    assert!(created.ok().contains("ready-to-apply"), "{created:?}");
    let s = strategy(&site).await;
    assert_ne!(
        s["apply-phase"]["stages"][0]["stage-name"], "sw-upgrade-start",
        "{s:#}"
    );
    site.convoy(&["sw-deploy-strategy", "apply"]).await.ok();
    wait_state(&site, "applied").await;
    assert_eq!(deploy_state(&site).await, "completed");
    assert_eq!(release_state(&site, "REL_2509_2").await, "deployed");
}

#[tokio::test]
async fn a_controller_killed_mid_deploy_resumes_and_deploys_the_release_once() {
    let (mut site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    // Each install's pre-install script logs its host, and the first waits for the test.
    let gate = site.dir.path().join("gate");
    let log = site.dir.path().join("installs.log");
    let line = "basename \"$CONVOY_ROOT\"";
    let bundle = site
        .build_gated_worker_patch(&keys, "REL_2509_3", true, line, &log, &gate)
        .await;
    site.convoy(&["software", "upload", &bundle.display().to_string()])
        .await
        .ok();
    site.convoy(&["sw-deploy-strategy", "create", "REL_2509_3", "--delete"])
        .await
        .ok();
    site.convoy(&["sw-deploy-strategy", "apply"]).await.ok();
    wait_until(
        Deadline::after(LONG),
        "the first install to start",
        || async { log.exists().then_some(()) },
    )
    .await
    .unwrap();
    assert_eq!(deploy_state(&site).await, "host");

    site.controller.kill();
    std::fs::write(&gate, "").unwrap();
    site.controller.restart().await.unwrap();
    let s = wait_state(&site, "applied").await;
    assert_eq!(s["apply-phase"]["result"], "success", "{s:#}");
    let installs = std::fs::read_to_string(&log).unwrap();
    let mut hosts: Vec<&str> = installs.lines().collect();
    hosts.sort();
    assert_eq!(hosts, ["worker-0", "worker-1"], "each worker installs once");
    // Started once, completed, deleted: the release is deployed and no deploy is left.
    assert_eq!(deploy_state(&site).await, "");
    assert_eq!(release_state(&site, "REL_2509_3").await, "deployed");
}

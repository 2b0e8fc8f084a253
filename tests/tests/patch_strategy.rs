//! The patch strategy (`convoy patch-strategy`, `/api/orchestration/sw-patch/strategy`): the
//! build's checks with the original's reasons, and applies that roll a patch over real agents
//! in stages.

use std::time::Duration;

use convoy_core::host::Personality;
use convoy_core::sw_update::options::SwUpdateKind;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{FAST_STEPS, HostSpec, PatchKeys, Site, duplex_site};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);
async fn strategy(site: &Site) -> Value {
    site.sw_update_strategy(SwUpdateKind::SwPatch).await
}

/// Uploads and applies an in-service worker patch `id` (workers must install it).
async fn worker_patch(site: &Site, keys: &PatchKeys, id: &str) {
    let file = site
        .build_worker_patch(keys, id, "etc/strategy.conf", "rolled\n", &[])
        .await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", id]).await.ok();
    hosts_reported(site).await;
}

/// Uploads and applies a reboot-required patch `id` that puts `contents` at `dest` on workers.
async fn rr_worker_patch(site: &Site, keys: &PatchKeys, id: &str, dest: &str, contents: &str) {
    let source = site.source(&format!("{id}.source"), contents);
    let file = format!("{}={dest}", source.display());
    let patch = site
        .build_patch(
            keys,
            id,
            &[
                "--status",
                "REL",
                "--reboot-required",
                "Y",
                "--worker",
                &file,
            ],
        )
        .await;
    site.convoy(&["patch", "upload", &patch.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", id]).await.ok();
    hosts_reported(site).await;
}

/// `convoy patch-strategy create --alarm-restrictions relaxed`.
async fn create_relaxed(site: &Site) -> convoy_e2e::CliRun {
    site.convoy(&[
        "patch-strategy",
        "create",
        "--alarm-restrictions",
        "relaxed",
    ])
    .await
}

/// Waits until no host is installing: the build refuses while one is, as the original's.
async fn hosts_reported(site: &Site) {
    wait_until(Deadline::after(LONG), "every host to report", || async {
        let rows = site.admin().patch_hosts().await.ok()?;
        rows.iter().all(|h| h.state == "idle").then_some(())
    })
    .await
    .unwrap();
}

async fn wait_state(site: &Site, wanted: &str) -> Value {
    site.wait_sw_update_state(SwUpdateKind::SwPatch, wanted)
        .await
}

#[tokio::test]
async fn the_build_refuses_with_the_originals_reasons() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;

    // No patches at all.
    let created = site.convoy(&["patch-strategy", "create"]).await;
    let out = created.ok();
    assert!(out.contains("build-failed"), "{out}");
    assert!(out.contains("no software patches found"), "{out}");
    // A failed build is kept until deleted, and blocks any other strategy meanwhile.
    let again = site.convoy(&["patch-strategy", "create"]).await;
    assert!(
        again
            .fails(2)
            .contains("strategy already exists of type:sw-patch"),
        "{again:?}"
    );
    site.convoy(&["patch-strategy", "delete"]).await.ok();

    // An alarm that does not affect management blocks a strict build, not a relaxed one.
    worker_patch(&site, &keys, "STRAT_0001").await;
    site.convoy(&[
        "alarm",
        "raise",
        "--id",
        "100.101",
        "--entity",
        "host=worker-0",
        "--severity",
        "minor",
        "--reason",
        "fan slow",
    ])
    .await
    .ok();
    let strict = site.convoy(&["patch-strategy", "create"]).await;
    assert!(strict.ok().contains("active alarms present"), "{strict:?}");
    site.convoy(&["patch-strategy", "delete"]).await.ok();
    let relaxed = create_relaxed(&site).await;
    assert!(relaxed.ok().contains("ready-to-apply"), "{relaxed:?}");

    site.convoy(&["patch-strategy", "delete"]).await.ok();

    // Every controller must be unlocked, enabled and available.
    site.convoy(&["host", "lock", "controller-1"]).await.ok();
    let locked = create_relaxed(&site).await;
    assert!(
        locked
            .ok()
            .contains("all controller hosts must be unlocked-enabled-available"),
        "{locked:?}"
    );
    site.convoy(&["patch-strategy", "delete"]).await.ok();
    site.convoy(&["host", "unlock", "controller-1"]).await.ok();
    let relaxed = create_relaxed(&site).await;
    assert!(relaxed.ok().contains("ready-to-apply"), "{relaxed:?}");

    // Bad options are refused before anything is built (exit 2, naming the option).
    let bad = site
        .convoy(&[
            "patch-strategy",
            "create",
            "--max-parallel-worker-hosts",
            "1",
        ])
        .await;
    assert!(
        bad.fails(2).contains("max-parallel-worker-hosts"),
        "{bad:?}"
    );
    let bad = site
        .convoy(&[
            "patch-strategy",
            "create",
            "--worker-apply-type",
            "sideways",
        ])
        .await;
    assert!(bad.fails(2).contains("worker-apply-type"), "{bad:?}");

    // A rolling maintenance cannot exist beside it.
    let rm = site
        .convoy(&[
            "rolling-maintenance-strategy",
            "create",
            "--hosts",
            "worker-0",
        ])
        .await;
    assert!(rm.fails(2).contains("already exists"), "{rm:?}");
}

#[tokio::test]
async fn an_in_service_patch_rolls_over_the_workers_in_parallel() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    worker_patch(&site, &keys, "STRAT_0002").await;

    let created = site
        .admin()
        .create_sw_update_strategy(
            SwUpdateKind::SwPatch,
            &convoy_core::sw_update::options::SwPatchOptions {
                worker_apply_type: convoy_core::sw_update::options::ApplyType::Parallel,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let s = &created["strategy"];
    assert_eq!(s["state"], "ready-to-apply", "{s:#}");
    // Controllers have nothing to install; one worker stage with both, in service.
    let stages = s["apply-phase"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 1, "{s:#}");
    assert_eq!(stages[0]["stage-name"], "sw-patch-worker-hosts");
    let steps: Vec<&str> = stages[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step-name"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["query-alarms", "sw-patch-hosts", "system-stabilize"]
    );
    assert_eq!(
        stages[0]["steps"][1]["entity-names"],
        serde_json::json!(["worker-0", "worker-1"])
    );

    let applied = site.convoy(&["patch-strategy", "apply", "--wait"]).await;
    let out = applied.ok();
    assert!(out.contains("applied"), "{out}");
    let s = strategy(&site).await;
    assert_eq!(s["state"], "applied", "{s:#}");
    assert_eq!(s["apply-phase"]["result"], "success");
    assert_eq!(s["apply-phase"]["completion-percentage"], 100);
    // Both workers have the patch in their roots, and no host was ever locked.
    for worker in ["worker-0", "worker-1"] {
        let installed = site.root(worker).join("etc/strategy.conf");
        assert_eq!(std::fs::read_to_string(&installed).unwrap(), "rolled\n");
    }
    let events = site
        .convoy(&["--format", "json", "event", "list"])
        .await
        .json();
    assert!(
        !events.to_string().contains("200.001"),
        "an in-service patch locked a host: {events}"
    );
    // The strategy alarmed while it applied (900.101), and not any more.
    let set_and_cleared: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["alarm_id"] == "900.101" && e["entity"] == "orchestration=sw-patch")
        .filter_map(|e| e["state"].as_str())
        .collect();
    assert_eq!(set_and_cleared, ["clear", "set"], "{events:#}");
    // Only a strategy that is not running can be deleted.
    site.convoy(&["patch-strategy", "delete"]).await.ok();
    assert!(strategy(&site).await.is_null());
}

#[tokio::test]
async fn a_reboot_required_patch_locks_each_worker_and_brings_it_back() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    rr_worker_patch(&site, &keys, "STRAT_0003", "etc/rr.conf", "rebooted\n").await;

    let created = site.convoy(&["patch-strategy", "create"]).await;
    assert!(created.ok().contains("ready-to-apply"), "{created:?}");
    let s = strategy(&site).await;
    // Serial: one stage per worker, each locking, installing and unlocking its host.
    let stages = s["apply-phase"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{s:#}");
    let names: Vec<&str> = stages[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step-name"].as_str().unwrap())
        .collect();
    assert!(
        names.starts_with(&["query-alarms", "lock-hosts", "sw-patch-hosts"]),
        "{names:?}"
    );
    assert!(names.contains(&"unlock-hosts"), "{names:?}");

    let mut boots = std::collections::BTreeMap::new();
    for worker in ["worker-0", "worker-1"] {
        boots.insert(worker, site.admin().host(worker).await.unwrap().boot_id);
    }
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    let s = wait_state(&site, "applied").await;
    assert_eq!(s["apply-phase"]["result"], "success", "{s:#}");
    for worker in ["worker-0", "worker-1"] {
        let host = site.admin().host(worker).await.unwrap();
        assert_eq!(host.administrative.as_str(), "unlocked", "{worker}");
        let installed = site.root(worker).join("etc/rr.conf");
        assert_eq!(std::fs::read_to_string(&installed).unwrap(), "rebooted\n");
        // Its unlock rebooted it, once, through the agent's reboot command.
        assert_ne!(host.boot_id, boots[worker], "{worker} was not rebooted");
        let agent = site.agents.iter().find(|a| a.hostname() == worker).unwrap();
        let log = std::fs::read_to_string(agent.log()).unwrap();
        assert_eq!(
            log.matches("rebooting the host (asked by command").count(),
            1,
            "{log}"
        );
    }
    // Each worker was locked and unlocked in turn: never both at once.
    assert_eq!(most_locked_at_once(&site).await, 1);
}

#[tokio::test]
async fn a_failed_install_aborts_and_unlocks_the_host() {
    let (mut site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    rr_worker_patch(&site, &keys, "STRAT_0004", "etc/fail.conf", "x\n").await;
    site.convoy(&["patch-strategy", "create"]).await.ok();
    // worker-0's agent is gone: its install never reports, the step times out.
    site.agent("worker-0").kill();
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    let s = wait_state(&site, "aborted").await;
    assert_eq!(s["apply-phase"]["result"], "timed-out", "{s:#}");
    let abort_steps = s["abort-phase"]["stages"][0]["steps"].clone();
    assert_eq!(abort_steps[0]["step-name"], "unlock-hosts", "{s:#}");
    let host = site.admin().host("worker-0").await.unwrap();
    assert_eq!(host.administrative.as_str(), "unlocked");
    // worker-1 was never touched.
    assert!(!site.root("worker-1").join("etc/fail.conf").exists());
    // The failure is alarmed until the strategy is deleted.
    let failed = || async {
        site.admin()
            .alarms()
            .await
            .unwrap()
            .into_iter()
            .any(|a| a.alarm_id == "900.103")
    };
    wait_until(
        Deadline::after(LONG),
        "the failed strategy's alarm",
        || async { failed().await.then_some(()) },
    )
    .await
    .unwrap();
    site.convoy(&["patch-strategy", "delete"]).await.ok();
    wait_until(Deadline::after(LONG), "the alarm to clear", || async {
        (!failed().await).then_some(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_controller_killed_mid_install_resumes_and_no_host_installs_twice() {
    let (mut site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    // Each install's pre-install script logs a line, and the first waits for the test.
    let gate = site.dir.path().join("gate");
    let log = site.dir.path().join("installs.log");
    let patch = site
        .build_gated_worker_patch(&keys, "STRAT_0005", true, "echo install", &log, &gate)
        .await;
    site.convoy(&["patch", "upload", &patch.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "STRAT_0005"]).await.ok();
    hosts_reported(&site).await;
    site.convoy(&["patch-strategy", "create"]).await.ok();
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    wait_until(
        Deadline::after(LONG),
        "the first install to start",
        || async { log.exists().then_some(()) },
    )
    .await
    .unwrap();

    site.controller.kill();
    std::fs::write(&gate, "").unwrap();
    site.controller.restart().await.unwrap();
    let s = wait_state(&site, "applied").await;
    assert_eq!(s["apply-phase"]["result"], "success", "{s:#}");
    let installs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        installs.lines().count(),
        2,
        "each worker installs once: {installs}"
    );
    for worker in ["worker-0", "worker-1"] {
        assert_eq!(
            std::fs::read_to_string(site.root(worker).join("etc/STRAT_0005.conf")).unwrap(),
            "k\n"
        );
    }
}

/// A reboot-required patch for the controllers; its pre-install script logs its start and waits
/// for `gate`, and its post-install script runs `post_install`.
async fn controller_patch(
    site: &Site,
    keys: &PatchKeys,
    id: &str,
    gate: &std::path::Path,
    post_install: &str,
) {
    let pre = site.source(
        &format!("{id}-pre.sh"),
        &format!(
            "#!/bin/sh\necho started >> {gate}.log\nwhile [ ! -e {gate} ]; do sleep 0.05; done\n",
            gate = gate.display()
        ),
    );
    let post = site.source(
        &format!("{id}-post.sh"),
        &format!("#!/bin/sh\n{post_install}\n"),
    );
    let source = site.source(&format!("{id}.source"), "c\n");
    let patch = site
        .build_patch(
            keys,
            id,
            &[
                "--status",
                "REL",
                "--reboot-required",
                "Y",
                "--controller",
                &format!("{}=etc/c.conf", source.display()),
                "--pre-install",
                &pre.display().to_string(),
                "--post-install",
                &post.display().to_string(),
            ],
        )
        .await;
    site.convoy(&["patch", "upload", &patch.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", id]).await.ok();
    hosts_reported(site).await;
}

/// The phase a host's step is in, and for how long it has been in it.
async fn phase_of(site: &Site, host: &str) -> (String, Duration) {
    let detail = site.admin().strategy_step(host).await.unwrap();
    let age = detail
        .phases
        .last()
        .map(|p| jiff::Timestamp::now().duration_since(p.started_at))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default();
    (detail.step.state.to_string(), age)
}

#[tokio::test]
async fn controllers_go_one_at_a_time_the_active_last_and_wait_for_alarms_to_clear() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    let gate = site.dir.path().join("gate");
    // The patch's own script raises a management-affecting alarm on its host.
    controller_patch(
        &site,
        &keys,
        "STRAT_0006",
        &gate,
        "\"$CONVOY_AGENT\" alarm raise --id 100.105 --severity major --reason \"disk check\" --mgmt-affecting",
    )
    .await;
    std::fs::write(&gate, "").unwrap();
    let created = site
        .convoy(&["--format", "json", "patch-strategy", "create"])
        .await
        .json();
    let stages = created["apply-phase"]["stages"].as_array().unwrap().clone();
    // Controllers one per stage, the standby first; the active one swacts away first.
    let hosts: Vec<&str> = stages
        .iter()
        .map(|s| s["steps"][1]["entity-names"][0].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["controller-1", "controller-0"], "{created:#}");
    assert_eq!(stages[1]["steps"][1]["step-name"], "swact-hosts");
    site.convoy(&["patch-strategy", "apply"]).await.ok();

    // controller-1's post-install alarm holds its wait-alarms-clear past its first look.
    wait_until(
        Deadline::after(LONG),
        "controller-1 to wait for alarms",
        || async {
            let (phase, age) = phase_of(&site, "controller-1").await;
            (phase == "wait-alarms-clear" && age > Duration::from_secs(2)).then_some(())
        },
    )
    .await
    .unwrap();
    assert_eq!(strategy(&site).await["state"], "applying");
    assert_eq!(phase_of(&site, "controller-0").await.0, "initial");
    let alarm = site
        .admin()
        .alarms()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.alarm_id == "100.105")
        .expect("the script's alarm");
    assert_eq!(alarm.entity, "host=controller-1");
    site.convoy(&["alarm", "clear", &alarm.uuid]).await.ok();

    // Then controller-0 goes (raising its own alarm, cleared the same way), after a swact.
    let alarm = wait_until(
        Deadline::after(LONG),
        "controller-0 to wait for alarms",
        || async {
            let alarms = site.admin().alarms().await.ok()?;
            alarms
                .into_iter()
                .find(|a| a.alarm_id == "100.105" && a.entity == "host=controller-0")
        },
    )
    .await
    .unwrap();
    site.convoy(&["alarm", "clear", &alarm.uuid]).await.ok();
    let s = wait_state(&site, "applied").await;
    assert_eq!(s["apply-phase"]["result"], "success", "{s:#}");
    let active = site.admin().host("controller-1").await.unwrap();
    assert_eq!(active.controller.as_deref(), Some("active"));
    // Never were both controllers locked at once, and each installed once.
    assert_eq!(most_locked_at_once(&site).await, 1);
    let starts = std::fs::read_to_string(format!("{}.log", gate.display())).unwrap();
    assert_eq!(starts.lines().count(), 2);
}

/// The most hosts locked at the same time, from the history of `200.001` (host locked).
async fn most_locked_at_once(site: &Site) -> i32 {
    let events = site
        .convoy(&["--format", "json", "event", "list", "--limit", "1000"])
        .await
        .json();
    let (mut locked, mut most) = (0, 0);
    // Newest first: read them oldest first.
    for event in events.as_array().unwrap().iter().rev() {
        if event["alarm_id"] != "200.001" {
            continue;
        }
        locked += if event["state"] == "set" { 1 } else { -1 };
        most = most.max(locked);
    }
    most
}

#[tokio::test]
async fn an_abort_mid_stage_lets_the_install_finish_and_unlocks_the_host() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    let gate = site.dir.path().join("gate");
    controller_patch(&site, &keys, "STRAT_0007", &gate, "true").await;
    site.convoy(&["patch-strategy", "create"]).await.ok();
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    let log = std::path::PathBuf::from(format!("{}.log", gate.display()));
    wait_until(
        Deadline::after(LONG),
        "the first install to start",
        || async { log.exists().then_some(()) },
    )
    .await
    .unwrap();
    let aborted = site.convoy(&["patch-strategy", "abort"]).await;
    assert!(aborted.ok().contains("aborting"), "{aborted:?}");
    std::fs::write(&gate, "").unwrap();
    let s = wait_state(&site, "aborted").await;
    // The install ran to its end; the host it locked is unlocked again; the other controller
    // was never touched.
    assert_eq!(
        s["abort-phase"]["stages"][0]["steps"][0]["step-name"], "unlock-hosts",
        "{s:#}"
    );
    assert_eq!(
        site.admin()
            .host("controller-1")
            .await
            .unwrap()
            .administrative
            .as_str(),
        "unlocked"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    let again = site.convoy(&["patch-strategy", "abort"]).await;
    assert!(again.fails(2).contains("apply not inprogress"), "{again:?}");
}

#[tokio::test]
async fn applied_stage_by_stage_with_the_originals_rules() {
    let (site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    rr_worker_patch(&site, &keys, "STRAT_0008", "etc/s.conf", "staged\n").await;
    site.convoy(&["patch-strategy", "create"]).await.ok();

    let refused = |run: convoy_e2e::CliRun| run.fails(2).trim().to_string();
    assert_eq!(
        refused(
            site.convoy(&["patch-strategy", "apply", "--stage-id", "1"])
                .await
        ),
        "error: invalid stage id 1 for the apply, total-stages are 2"
    );
    site.convoy(&["patch-strategy", "apply", "--stage-id", "0"])
        .await
        .ok();
    // Stage 0 runs alone; the strategy then rests, applying, before stage 1.
    wait_until(Deadline::after(LONG), "stage 0 to end", || async {
        let s = strategy(&site).await;
        (s["apply-phase"]["stages"][0]["result"] == "success"
            && s["apply-phase"]["inprogress"] == false)
            .then_some(s)
    })
    .await
    .unwrap();
    let s = strategy(&site).await;
    assert_eq!(s["state"], "applying", "{s:#}");
    assert_eq!(s["apply-phase"]["stages"][1]["result"], "initial", "{s:#}");
    assert!(!site.root("worker-1").join("etc/s.conf").exists());
    assert_eq!(
        refused(
            site.convoy(&["patch-strategy", "apply", "--stage-id", "0"])
                .await
        ),
        "error: apply already complete for stage id 0"
    );
    assert_eq!(
        refused(
            site.convoy(&["patch-strategy", "apply", "--stage-id", "3"])
                .await
        ),
        "error: invalid stage id 3 for the apply, total-stages are 2"
    );
    site.convoy(&["patch-strategy", "apply", "--stage-id", "1"])
        .await
        .ok();
    wait_state(&site, "applied").await;
    assert_eq!(
        std::fs::read_to_string(site.root("worker-1").join("etc/s.conf")).unwrap(),
        "staged\n"
    );
    assert_eq!(
        refused(site.convoy(&["patch-strategy", "apply"]).await),
        "error: apply already completed"
    );
}

/// worker-0's InstanceAction hook: it lists vm-a and vm-b and logs every other run.
const INSTANCE_HOOK: &str = "case \"$1\" in\n  list) echo vm-a; echo vm-b ;;\n  *) echo \"{host} InstanceAction $*\" >> {log} ;;\nesac";

#[tokio::test]
async fn instances_are_stopped_before_the_lock_and_started_again_even_on_abort() {
    let (mut site, keys) = Site::with_patch_key_and(&duplex_site(), FAST_STEPS).await;
    site.write_hook("worker-0", "InstanceAction", INSTANCE_HOOK);
    // The agent lists its instances when it starts.
    site.agent("worker-0").kill();
    site.agent("worker-0").restart().unwrap();
    wait_until(Deadline::after(LONG), "worker-0's instances", || async {
        let host = site.admin().host("worker-0").await.ok()?;
        (host.instances == ["vm-a", "vm-b"]).then_some(())
    })
    .await
    .unwrap();

    // A reboot-required patch whose install fails on a host with `fail` in its root.
    let patch = site
        .build_worker_patch_failing_on_flag(&keys, "STRAT_0009", true)
        .await;
    site.convoy(&["patch", "upload", &patch.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "STRAT_0009"]).await.ok();
    hosts_reported(&site).await;

    // The install fails after the stop: the abort phase starts the instances again.
    std::fs::write(site.root("worker-0").join("fail"), "").unwrap();
    site.convoy(&["patch-strategy", "create"]).await.ok();
    let s = strategy(&site).await;
    // Workers without instances go first: worker-0's stage is the second.
    let steps = s["apply-phase"]["stages"][1]["steps"].clone();
    assert_eq!(steps[1]["step-name"], "stop-instances", "{s:#}");
    assert_eq!(
        steps[1]["entity-names"],
        serde_json::json!(["vm-a", "vm-b"])
    );
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    let s = wait_state(&site, "aborted").await;
    assert_eq!(s["apply-phase"]["result"], "failed", "{s:#}");
    let ran: Vec<String> = site
        .hook_lines()
        .into_iter()
        .map(|words| words.join(" "))
        .collect();
    assert_eq!(
        ran,
        [
            "worker-0 InstanceAction stop vm-a vm-b",
            "worker-0 InstanceAction start vm-a vm-b"
        ]
    );
    let phases: Vec<String> = site
        .admin()
        .strategy_step("worker-0")
        .await
        .unwrap()
        .phases
        .into_iter()
        .map(|p| p.phase)
        .collect();
    assert_eq!(
        phases,
        [
            "query-alarms",
            "stop-instances",
            "lock-hosts",
            "sw-patch-hosts",
            "unlock-hosts#abort",
            "start-instances#abort"
        ]
    );
    let host = site.admin().host("worker-0").await.unwrap();
    assert_eq!(host.administrative.as_str(), "unlocked");

    // Mended, a new strategy stops them before the lock and starts them after the unlock.
    std::fs::remove_file(site.root("worker-0").join("fail")).unwrap();
    std::fs::remove_file(site.hook_log()).unwrap();
    site.convoy(&["patch-strategy", "delete"]).await.ok();
    site.convoy(&["patch-strategy", "create"]).await.ok();
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    wait_state(&site, "applied").await;
    let phases: Vec<String> = site
        .admin()
        .strategy_step("worker-0")
        .await
        .unwrap()
        .phases
        .into_iter()
        .map(|p| p.phase)
        .collect();
    let at = |name: &str| phases.iter().position(|p| p == name).unwrap();
    assert!(at("stop-instances") < at("lock-hosts"), "{phases:?}");
    assert!(at("unlock-hosts") < at("start-instances"), "{phases:?}");
    let ran: Vec<String> = site
        .hook_lines()
        .into_iter()
        .map(|words| words.join(" "))
        .collect();
    assert_eq!(
        ran,
        [
            "worker-0 InstanceAction stop vm-a vm-b",
            "worker-0 InstanceAction start vm-a vm-b"
        ]
    );
    // worker-1 has no instances: no instance step ran a hook there.
    assert!(ran.iter().all(|l| l.starts_with("worker-0")));
}

/// Each host's install interval `(start, end)` in nanoseconds, from the lines its patch
/// scripts appended: `<host> start|end <ns>`.
fn install_intervals(log: &std::path::Path) -> std::collections::BTreeMap<String, (u128, u128)> {
    let mut intervals = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap().lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [host, what, at] = words[..] else {
            panic!("bad line {line:?}");
        };
        let at: u128 = at.parse().unwrap();
        let entry = intervals.entry(host.to_string()).or_insert((0, 0));
        match what {
            "start" => entry.0 = at,
            _ => entry.1 = at,
        }
    }
    intervals
}

/// The most intervals of `hosts` that overlap at one moment.
fn most_at_once(
    intervals: &std::collections::BTreeMap<String, (u128, u128)>,
    hosts: &[&str],
) -> usize {
    hosts
        .iter()
        .map(|h| intervals[*h].0)
        .map(|t| {
            hosts
                .iter()
                .filter(|h| intervals[**h].0 <= t && t < intervals[**h].1)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_full_site_goes_controllers_one_at_a_time_then_storage_then_workers_within_bounds() {
    let mut hosts = vec![
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("controller-1", Personality::Controller),
        HostSpec::new("storage-0", Personality::Storage),
        HostSpec::new("storage-1", Personality::Storage),
    ];
    for name in ["worker-0", "worker-1", "worker-2", "worker-3", "worker-4"] {
        hosts.push(HostSpec::new(name, Personality::Worker));
    }
    let (site, keys) = Site::with_patch_key_and(&hosts, FAST_STEPS).await;
    // The agents' patch scripts log when each install starts and ends.
    let log = site.dir.path().join("installs.log");
    let stamp = |what: &str| {
        format!(
            "#!/bin/sh\necho \"$(basename \"$CONVOY_ROOT\") {what} $(date +%s%N)\" >> {}\n{}",
            log.display(),
            if what == "start" { "sleep 0.5\n" } else { "" }
        )
    };
    let pre = site.source("full-pre.sh", &stamp("start"));
    let post = site.source("full-post.sh", &stamp("end"));
    let source = site.source("full.source", "full\n");
    let file = |dest: &str| format!("{}={dest}", source.display());
    let (c, s, w) = (file("etc/c.conf"), file("etc/s.conf"), file("etc/w.conf"));
    let patch = site
        .build_patch(
            &keys,
            "STRAT_0010",
            &[
                "--status",
                "REL",
                "--reboot-required",
                "Y",
                "--controller",
                &c,
                "--storage",
                &s,
                "--worker",
                &w,
                "--pre-install",
                &pre.display().to_string(),
                "--post-install",
                &post.display().to_string(),
            ],
        )
        .await;
    site.convoy(&["patch", "upload", &patch.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "STRAT_0010"]).await.ok();
    hosts_reported(&site).await;
    let active = site.admin().host("controller-0").await.unwrap();
    assert_eq!(active.controller.as_deref(), Some("active"));

    let created = site
        .convoy(&[
            "patch-strategy",
            "create",
            "--worker-apply-type",
            "parallel",
            "--max-parallel-worker-hosts",
            "2",
        ])
        .await;
    assert!(created.ok().contains("ready-to-apply"), "{created:?}");
    site.convoy(&["patch-strategy", "apply"]).await.ok();
    let s = wait_state(&site, "applied").await;
    assert_eq!(s["apply-phase"]["result"], "success", "{s:#}");

    let intervals = install_intervals(&log);
    assert_eq!(intervals.len(), 9, "{intervals:?}");
    // Controllers strictly one at a time, the standby first and the active one last after
    // a swact: controller-1 is active at the end.
    let (c0, c1) = (intervals["controller-0"], intervals["controller-1"]);
    assert!(
        c1.1 < c0.0,
        "controller-1 {c1:?} before controller-0 {c0:?}"
    );
    let now_active = site.admin().host("controller-1").await.unwrap();
    assert_eq!(now_active.controller.as_deref(), Some("active"));
    // Then storage, serially; then workers, never more than 2 at once.
    let (s0, s1) = (intervals["storage-0"], intervals["storage-1"]);
    assert!(c0.1 < s0.0.min(s1.0), "storage after the controllers");
    assert!(s0.1 < s1.0 || s1.1 < s0.0, "storage serial: {s0:?} {s1:?}");
    let workers = ["worker-0", "worker-1", "worker-2", "worker-3", "worker-4"];
    assert!(workers.iter().all(|w| intervals[*w].0 > s0.1.max(s1.1)));
    assert_eq!(most_at_once(&intervals, &workers), 2, "{intervals:?}");
    assert!(most_locked_at_once(&site).await <= 2);
    for host in hosts.iter().map(|h| h.hostname) {
        let h = site.admin().host(host).await.unwrap();
        assert_eq!(h.administrative.as_str(), "unlocked", "{host}");
    }
}

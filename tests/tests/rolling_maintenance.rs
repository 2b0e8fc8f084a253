//! Rolling maintenance end to end: a real convoyd, real agents, real hook scripts that log
//! to a file.

use std::time::Duration;

use convoy_api::ClientError;
use convoy_api::strategies::{ActionName, NewRollingMaintenance};
use convoy_core::strategy::StrategyState;
use convoy_e2e::{HostSpec, Site, workers};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(60);

/// The stage lines each host logged, in order (lines of blocking hooks' "start" excluded).
fn stages_of(site: &Site, host: &str) -> Vec<String> {
    site.hook_lines()
        .into_iter()
        .filter(|l| l[0] == host && l.get(2).map(String::as_str) != Some("start"))
        .map(|l| l[1].clone())
        .collect()
}

const ALL_STAGES: [&str; 4] = [
    "PreFlight",
    "PreMaintenance",
    "Maintenance",
    "PostMaintenance",
];

/// A hook that logs "start", waits for `{dir}/release-{host}`, then logs its normal line.
const BLOCKING_HOOK: &str = "echo \"{host} {stage} start\" >> {log}\nwhile [ ! -e {dir}/release-{host} ]; do sleep 0.05; done\necho \"{host} {stage} $*\" >> {log}\necho \"{stage} done on {host}\"";

/// Waits until a hook logged `line`.
async fn wait_for_hook_line(site: &Site, line: &str, within: Duration) {
    convoy_e2e::convoy_launch::wait_until(
        convoy_e2e::convoy_launch::Deadline::after(within),
        &format!("the hook log line {line:?}"),
        || async {
            site.hook_lines()
                .iter()
                .any(|l| l.join(" ") == line)
                .then_some(())
        },
    )
    .await
    .unwrap();
}

fn release(site: &Site, host: &str) {
    std::fs::write(site.dir.path().join(format!("release-{host}")), "").unwrap();
}

async fn start_site(hosts: &[HostSpec]) -> Site {
    let site = Site::with_hosts(hosts).await;
    for host in hosts {
        site.write_standard_hooks(host.hostname);
    }
    site
}

#[tokio::test]
async fn hooks_run_in_order_with_pre_flight_on_every_host_first() {
    let site = start_site(&workers(3)).await;
    // A Maintenance hook of some length, reported with entering maintenance (under 1 s).
    site.write_hook(
        "worker-1",
        "Maintenance",
        &format!("sleep 0.3\n{}", convoy_e2e::STANDARD_HOOK),
    );
    let run = site
        .convoy(&[
            "rolling-maintenance",
            "start",
            "--clusters",
            "cluster-1",
            "--payload",
            "alpha beta",
            "--wait",
        ])
        .await;
    let out = run.ok();
    assert!(
        out.contains("Rolling maintenance complete: success=true"),
        "{out}"
    );

    let lines = site.hook_lines();
    let first_other = lines.iter().position(|l| l[1] != "PreFlight").unwrap();
    assert_eq!(first_other, 3, "every PreFlight comes first: {lines:?}");
    for host in ["worker-0", "worker-1", "worker-2"] {
        assert_eq!(stages_of(&site, host), ALL_STAGES, "{host}");
    }
    // Payload words arrive as separate arguments.
    assert!(
        lines.iter().all(|l| l[2..] == ["alpha", "beta"]),
        "{lines:?}"
    );
    // Hosts are maintained one at a time, in name order.
    let maintained: Vec<&str> = lines
        .iter()
        .filter(|l| l[1] == "Maintenance")
        .map(|l| l[0].as_str())
        .collect();
    assert_eq!(maintained, ["worker-0", "worker-1", "worker-2"]);

    let report = site
        .convoy(&[
            "rolling-maintenance-strategy",
            "show",
            "--report",
            "-f",
            "json",
        ])
        .await
        .json();
    assert_eq!(report["success"], true);
    let updated = report["hosts_updated"].as_array().unwrap();
    assert_eq!(updated.len(), 3);
    assert_eq!(updated[0]["hostname"], "worker-0");
    assert_eq!(updated[0]["output"], "Maintenance done on worker-0\n");
    // Compared as instants: RFC 3339 text trims trailing zeros, so "20.5Z" sorts after "20.51Z".
    let instant =
        |field: &str| -> jiff::Timestamp { updated[0][field].as_str().unwrap().parse().unwrap() };
    assert!(instant("start") <= instant("end"));
    assert_eq!(report["hosts_skipped"], Value::Array(vec![]));

    // Every host is back in service and the cluster enabled again.
    for host in site.admin().hosts().await.unwrap() {
        assert_eq!(host.state, "in-service");
    }
    let clusters = site.convoy(&["cluster", "list", "-f", "json"]).await.json();
    assert_eq!(clusters[0]["state"], "enabled");

    // Steps show each phase's output.
    let step = site
        .convoy(&["strategy-step", "show", "worker-1", "-f", "json"])
        .await
        .json();
    assert_eq!(step["state"], "complete");
    let phases: Vec<&str> = step["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "pre-flight",
            "pre-maintenance",
            "capacity-check",
            "enter-maintenance",
            "maintenance",
            "exit-maintenance",
            "post-maintenance"
        ]
    );
    let maintenance = &step["phases"][4];
    assert_eq!(maintenance["exit_code"], 0);
    assert_eq!(maintenance["stdout"], "Maintenance done on worker-1\n");
    // The phase that came with entering maintenance shows the hook's own time, and the
    // phases follow one another.
    let at = |phase: &Value, field: &str| -> jiff::Timestamp {
        phase[field].as_str().unwrap().parse().unwrap()
    };
    let took = at(maintenance, "finished_at").duration_since(at(maintenance, "started_at"));
    assert!(
        took >= jiff::SignedDuration::from_millis(290),
        "{maintenance}"
    );
    for pair in step["phases"].as_array().unwrap().windows(2) {
        assert!(
            at(&pair[0], "finished_at") <= at(&pair[1], "started_at"),
            "{pair:?}"
        );
        assert!(
            at(&pair[1], "started_at") <= at(&pair[1], "finished_at"),
            "{pair:?}"
        );
    }
}

#[tokio::test]
async fn exit_70_skips_a_host_in_pre_flight_and_in_pre_maintenance() {
    let site = start_site(&workers(3)).await;
    site.write_hook(
        "worker-0",
        "PreFlight",
        "echo \"{host} {stage}\" >> {log}\nexit 70",
    );
    site.write_hook(
        "worker-1",
        "PreMaintenance",
        "echo \"{host} {stage}\" >> {log}\nexit 70",
    );
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--hosts",
        "worker-0,worker-1,worker-2",
        "--wait",
    ])
    .await
    .ok();

    assert_eq!(stages_of(&site, "worker-0"), ["PreFlight"]);
    assert_eq!(
        stages_of(&site, "worker-1"),
        ["PreFlight", "PreMaintenance"]
    );
    assert_eq!(stages_of(&site, "worker-2"), ALL_STAGES);
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[0].state, "skipped");
    assert_eq!(
        steps[0].details,
        "Pre-flight stage set to avoid maintenance"
    );
    assert_eq!(steps[1].state, "skipped");
    assert_eq!(
        steps[1].details,
        "Pre-maintenance stage set to avoid maintenance"
    );
    assert_eq!(steps[2].state, "complete");
    let report = site.admin().rolling_maintenance_report().await.unwrap();
    assert_eq!(report.hosts_skipped.len(), 2);
    assert_eq!(report.hosts_updated.len(), 1);
}

#[tokio::test]
async fn a_failing_maintenance_fails_the_strategy_and_still_cleans_up() {
    let site = start_site(&workers(3)).await;
    site.write_hook(
        "worker-1",
        "Maintenance",
        "echo \"{host} {stage}\" >> {log}\necho 'disk on fire' >&2\nexit 3",
    );
    let run = site
        .convoy(&[
            "rolling-maintenance",
            "start",
            "--clusters",
            "cluster-1",
            "--wait",
        ])
        .await;
    let line = run.fails(1);
    assert!(line.contains("ended failed"), "{line}");

    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[1].state, "failed");
    assert_eq!(
        steps[1].details,
        "Maintenance script failed: exit code 3: disk on fire"
    );
    // No PostMaintenance on the failed host; it left maintenance; the others went on.
    assert_eq!(
        stages_of(&site, "worker-1"),
        ["PreFlight", "PreMaintenance", "Maintenance"]
    );
    assert_eq!(steps[2].state, "complete");
    assert_eq!(
        site.admin().host("worker-1").await.unwrap().state,
        "in-service"
    );
    assert!(matches!(
        site.admin().strategy_step("worker-9").await,
        Err(ClientError::Api { status: 404, .. })
    ));
    let step = site.admin().strategy_step("worker-1").await.unwrap();
    let exit = step
        .phases
        .iter()
        .find(|p| p.phase == "exit-maintenance")
        .unwrap();
    assert_eq!(exit.result.as_deref(), Some("succeeded"));
    assert_eq!(
        step.phases
            .iter()
            .find(|p| p.phase == "maintenance")
            .unwrap()
            .stderr,
        "disk on fire\n"
    );
    assert_eq!(site.admin().clusters().await.unwrap()[0].state, "enabled");
    let strategy = site.admin().rolling_maintenance().await.unwrap();
    assert_eq!(strategy.state, StrategyState::Failed);
    assert!(
        strategy
            .details
            .starts_with("worker-1: Maintenance script failed"),
        "{}",
        strategy.details
    );
}

#[tokio::test]
async fn forced_skips_the_failing_host_and_completes_the_rest() {
    let site = start_site(&workers(3)).await;
    site.write_hook(
        "worker-1",
        "Maintenance",
        "echo \"{host} {stage}\" >> {log}\nexit 3",
    );
    site.write_hook(
        "worker-2",
        "PreFlight",
        "echo \"{host} {stage}\" >> {log}\nexit 9",
    );
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--clusters",
        "cluster-1",
        "--forced",
        "--wait",
    ])
    .await
    .ok();
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(
        steps.iter().map(|s| s.state.as_str()).collect::<Vec<_>>(),
        ["complete", "skipped", "skipped"]
    );
    assert_eq!(steps[1].details, "Maintenance script failed: exit code 3");
    assert_eq!(steps[2].details, "Pre-flight script failed: exit code 9");
    assert_eq!(
        site.admin().host("worker-1").await.unwrap().state,
        "in-service"
    );
}

#[tokio::test]
async fn a_hook_past_its_timeout_is_killed_with_its_children() {
    let site = start_site(&workers(1)).await;
    site.write_hook(
        "worker-0",
        "Maintenance",
        "sleep 300 &\necho $! > {dir}/child.pid\necho $$ > {dir}/parent.pid\nsleep 300",
    );
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--hosts",
        "worker-0",
        "--timeout",
        "3",
        "--wait",
    ])
    .await
    .fails(1);
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[0].state, "failed");
    assert!(
        steps[0]
            .details
            .starts_with("Maintenance script failed: timed out"),
        "{}",
        steps[0].details
    );
    for file in ["child.pid", "parent.pid"] {
        let pid: i32 = std::fs::read_to_string(site.dir.path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err();
        assert!(gone, "{file} {pid} still running");
    }
    assert_eq!(
        site.admin().host("worker-0").await.unwrap().state,
        "in-service"
    );
}

#[tokio::test]
async fn a_host_without_a_maintenance_script_is_skipped() {
    let site = start_site(&workers(2)).await;
    std::fs::remove_file(site.hooks_dir("worker-0").join("Maintenance")).unwrap();
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--hosts",
        "worker-0,worker-1",
        "--wait",
    ])
    .await
    .ok();
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[0].state, "skipped");
    assert_eq!(
        steps[0].details,
        "There is no maintenance script on the host"
    );
    assert_eq!(stages_of(&site, "worker-0"), ["PreFlight"]);
    assert_eq!(steps[1].state, "complete");
}

#[tokio::test]
async fn a_capacity_check_refuses_a_host_the_cluster_cannot_absorb() {
    // Each host offers 4 CPUs: worker-0's 3 do not fit in worker-1's 2 spare, nor worker-1's
    // 2 in worker-0's 1.
    let mut hosts = workers(2);
    hosts[0].load_cpus = 3.0;
    hosts[1].load_cpus = 2.0;
    let site = start_site(&hosts).await;
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--clusters",
        "cluster-1",
        "--wait",
    ])
    .await
    .fails(1);
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[0].state, "failed");
    assert_eq!(
        steps[0].details,
        "Capacity check failed for worker-0: worker-0 needs 3.0 CPUs and 0 MiB; the other in-service hosts of cluster cluster-1 have 2.0 CPUs and 8192 MiB spare together"
    );
    assert_eq!(steps[1].state, "failed");
    assert!(
        steps[1]
            .details
            .starts_with("Capacity check failed for worker-1: worker-1 needs 2.0 CPUs"),
        "{}",
        steps[1].details
    );
    for host in ["worker-0", "worker-1"] {
        assert_eq!(
            stages_of(&site, host),
            ["PreFlight", "PreMaintenance"],
            "never entered maintenance"
        );
    }
}

#[tokio::test]
async fn abort_lets_the_running_host_finish_and_aborts_the_rest() {
    let site = start_site(&workers(3)).await;
    site.write_hook("worker-0", "Maintenance", BLOCKING_HOOK);
    let admin = site.admin();
    site.convoy(&["rolling-maintenance", "start", "--clusters", "cluster-1"])
        .await
        .ok();
    site.wait_step_state("worker-0", "maintenance", LONG).await;
    // The Maintenance hook came with entering maintenance; the host's state was confirmed
    // with the same report that started the step's maintenance phase.
    assert_eq!(admin.host("worker-0").await.unwrap().state, "maintenance");
    assert_eq!(site.admin().clusters().await.unwrap()[0].state, "disabled");
    let aborted = site
        .convoy(&["rolling-maintenance-strategy", "abort", "-f", "json"])
        .await
        .json();
    assert_eq!(aborted["state"], "abort requested");
    release(&site, "worker-0");
    let strategy = site.wait_strategy_end(LONG).await;
    assert_eq!(strategy.state, StrategyState::Aborted);
    let steps = admin.strategy_steps().await.unwrap();
    assert_eq!(steps[0].state, "aborted");
    assert!(
        steps[0].details.starts_with("Stopped after maintenance"),
        "{}",
        steps[0].details
    );
    assert_eq!(steps[1].state, "aborted");
    assert_eq!(steps[1].details, "Aborted before it started");
    assert_eq!(
        stages_of(&site, "worker-0"),
        ["PreFlight", "PreMaintenance", "Maintenance"]
    );
    assert_eq!(stages_of(&site, "worker-1"), ["PreFlight"]);
    assert_eq!(admin.host("worker-0").await.unwrap().state, "in-service");
    assert_eq!(admin.clusters().await.unwrap()[0].state, "enabled");
    // Aborting again, or applying an ended strategy, is refused; deleting works.
    let again = admin.rolling_maintenance_action(ActionName::Abort).await;
    assert!(
        matches!(again, Err(ClientError::Api { status: 409, .. })),
        "{again:?}"
    );
    site.convoy(&["rolling-maintenance-strategy", "delete"])
        .await
        .ok();
    assert!(admin.strategy_steps().await.unwrap().is_empty());
}

/// PreFlight takes no host out of service, so one host maintained at a time does not mean one
/// PreFlight at a time: every host's runs at once (here each waits for its release).
#[tokio::test]
async fn pre_flight_runs_on_every_host_at_once_whatever_max_parallel_hosts() {
    let site = start_site(&workers(3)).await;
    let hosts = ["worker-0", "worker-1", "worker-2"];
    for host in hosts {
        site.write_hook(host, "PreFlight", BLOCKING_HOOK);
    }
    site.convoy(&["rolling-maintenance", "start", "--clusters", "cluster-1"])
        .await
        .ok();
    // Every host's PreFlight is running (the step's state alone says the command was sent,
    // not that the hook started), and none has been released.
    for host in hosts {
        site.wait_step_state(host, "pre-flight", LONG).await;
        wait_for_hook_line(&site, &format!("{host} PreFlight start"), LONG).await;
    }
    for host in hosts {
        release(&site, host);
    }
    let strategy = site.wait_strategy_end(LONG).await;
    assert_eq!(strategy.state, StrategyState::Complete);
    let lines = site.hook_lines();
    let starts = lines
        .iter()
        .take_while(|l| l.get(2).map(String::as_str) == Some("start"));
    assert_eq!(starts.count(), 3, "{lines:?}");
    // Maintenance itself still goes one host at a time.
    let maintained: Vec<&str> = lines
        .iter()
        .filter(|l| l[1] == "Maintenance")
        .map(|l| l[0].as_str())
        .collect();
    assert_eq!(maintained, hosts);
}

#[tokio::test]
async fn stop_on_failure_with_three_parallel_hosts() {
    let site = start_site(&workers(4)).await;
    for host in ["worker-0", "worker-2"] {
        site.write_hook(host, "Maintenance", BLOCKING_HOOK);
    }
    site.write_hook(
        "worker-1",
        "Maintenance",
        "echo \"{host} {stage}\" >> {log}\nexit 4",
    );
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--clusters",
        "cluster-1",
        "--max-parallel-hosts",
        "3",
        "--stop-on-failure",
    ])
    .await
    .ok();
    site.wait_step_state("worker-1", "failed", LONG).await;
    site.wait_step_state("worker-0", "maintenance", LONG).await;
    site.wait_step_state("worker-2", "maintenance", LONG).await;
    // Stopping, not stopped: the strategy waits for its running hosts.
    assert_eq!(
        site.admin().rolling_maintenance().await.unwrap().state,
        StrategyState::Applying
    );
    release(&site, "worker-0");
    release(&site, "worker-2");
    let strategy = site.wait_strategy_end(LONG).await;
    assert_eq!(strategy.state, StrategyState::Failed);
    let steps = site.admin().strategy_steps().await.unwrap();
    let states: Vec<&str> = steps.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["aborted", "failed", "aborted", "initial"]);
    assert_eq!(steps[0].stage, 1);
    assert_eq!(steps[3].stage, 2);
    for host in ["worker-0", "worker-2"] {
        assert_eq!(
            stages_of(&site, host),
            ["PreFlight", "PreMaintenance", "Maintenance"]
        );
        assert_eq!(site.admin().host(host).await.unwrap().state, "in-service");
    }
    assert_eq!(stages_of(&site, "worker-3"), ["PreFlight"]);
    assert_eq!(site.admin().clusters().await.unwrap()[0].state, "enabled");
}

#[tokio::test]
async fn a_controller_killed_at_several_points_finishes_with_each_hook_once() {
    // Each wait ends within the 30 s after which a command without an outcome is delivered
    // again: no outcome may be lost on the way (the redelivery would hide it, only later).
    const WITHIN: Duration = Duration::from_secs(25);
    let mut site = start_site(&workers(3)).await;
    for host in ["worker-0", "worker-1", "worker-2"] {
        site.write_hook(host, "Maintenance", BLOCKING_HOOK);
    }
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--clusters",
        "cluster-1",
        "--max-parallel-hosts",
        "2",
    ])
    .await
    .ok();

    // 0. As soon as worker-0's Maintenance hook started: it came with entering maintenance,
    // whose report may or may not have arrived yet.
    wait_for_hook_line(&site, "worker-0 Maintenance start", WITHIN).await;
    site.controller.kill();
    site.controller.restart().await.unwrap();
    // 1. While worker-0 and worker-1 are in maintenance.
    site.wait_step_state("worker-1", "maintenance", WITHIN)
        .await;
    site.controller.kill();
    site.controller.restart().await.unwrap();
    release(&site, "worker-0");
    // 2. Right after worker-0 finished its maintenance hook.
    wait_for_hook_line(&site, "worker-0 Maintenance", WITHIN).await;
    site.controller.kill();
    site.controller.restart().await.unwrap();
    release(&site, "worker-1");
    // 3. While worker-2 (stage 2) is in maintenance; the cluster is disabled meanwhile.
    site.wait_step_state("worker-2", "maintenance", WITHIN)
        .await;
    site.controller.kill();
    site.controller.restart().await.unwrap();
    release(&site, "worker-2");

    let strategy = site.wait_strategy_end(WITHIN).await;
    assert_eq!(
        strategy.state,
        StrategyState::Complete,
        "{}",
        strategy.details
    );
    for host in ["worker-0", "worker-1", "worker-2"] {
        assert_eq!(
            stages_of(&site, host),
            ALL_STAGES,
            "each hook once on {host}"
        );
        assert_eq!(site.admin().host(host).await.unwrap().state, "in-service");
    }
    assert_eq!(site.admin().clusters().await.unwrap()[0].state, "enabled");
}

#[tokio::test]
async fn an_agent_killed_during_maintenance_reports_the_real_outcome_once() {
    let mut site = start_site(&workers(1)).await;
    site.write_hook(
        "worker-0",
        "Maintenance",
        &format!("{BLOCKING_HOOK}\nexit 5"),
    );
    site.convoy(&["rolling-maintenance", "start", "--hosts", "worker-0"])
        .await
        .ok();
    site.wait_step_state("worker-0", "maintenance", LONG).await;
    wait_for_hook_line(&site, "worker-0 Maintenance start", LONG).await;
    site.agent("worker-0").kill();
    site.agent("worker-0").restart().unwrap();
    release(&site, "worker-0");
    let strategy = site.wait_strategy_end(LONG).await;
    assert_eq!(strategy.state, StrategyState::Failed);
    let steps = site.admin().strategy_steps().await.unwrap();
    // The hook's real exit code, not a success invented for a hook nobody saw finish.
    assert_eq!(steps[0].details, "Maintenance script failed: exit code 5");
    let starts = site
        .hook_lines()
        .iter()
        .filter(|l| l.join(" ") == "worker-0 Maintenance start")
        .count();
    assert_eq!(starts, 1, "the hook ran once");
    assert_eq!(
        site.admin().host("worker-0").await.unwrap().state,
        "in-service"
    );
}

#[tokio::test]
async fn bad_strategy_input_is_refused_and_creates_nothing() {
    let site = start_site(&workers(2)).await;
    let admin = site.admin();
    let cases: Vec<(NewRollingMaintenance, &str)> = vec![
        (
            NewRollingMaintenance::default(),
            "scope: give exactly one of hosts, clusters, pods or zones",
        ),
        (
            NewRollingMaintenance {
                hosts: Some(vec!["worker-0".into()]),
                zones: Some(vec!["zone-a".into()]),
                ..Default::default()
            },
            "scope: give exactly one",
        ),
        (
            NewRollingMaintenance {
                hosts: Some(vec![]),
                ..Default::default()
            },
            "hosts: must name at least one",
        ),
        (
            NewRollingMaintenance {
                hosts: Some(vec!["worker-9".into(), "worker-0".into()]),
                ..Default::default()
            },
            "hosts: unknown host \"worker-9\"",
        ),
        (
            NewRollingMaintenance {
                clusters: Some(vec!["nope".into()]),
                ..Default::default()
            },
            "clusters: unknown cluster \"nope\"",
        ),
        (
            NewRollingMaintenance {
                pods: Some(vec!["pod-9".into()]),
                ..Default::default()
            },
            "pods: unknown pod \"pod-9\"",
        ),
        (
            NewRollingMaintenance {
                zones: Some(vec!["zone-a".into()]),
                timeout_seconds: Some(1),
                ..Default::default()
            },
            "timeout_seconds: must be greater than the ping interval (1 s)",
        ),
        (
            NewRollingMaintenance {
                zones: Some(vec!["zone-a".into()]),
                max_parallel_hosts: Some(0),
                ..Default::default()
            },
            "max_parallel_hosts: must be at least 1",
        ),
        (
            NewRollingMaintenance {
                zones: Some(vec!["zone-a".into()]),
                max_parallel_preflight: Some(0),
                ..Default::default()
            },
            "max_parallel_preflight: must be at least 1",
        ),
        (
            NewRollingMaintenance {
                zones: Some(vec!["zone-a".into()]),
                payload: Some("x".repeat(5000)),
                ..Default::default()
            },
            "payload: must be at most 4096 bytes",
        ),
    ];
    for (request, expected) in cases {
        match admin.create_rolling_maintenance(&request).await {
            Err(ClientError::Api {
                status: 400,
                message,
                ..
            }) => {
                assert!(
                    message.starts_with(expected),
                    "expected {expected:?}, got {message:?}"
                )
            }
            other => panic!("{expected}: {other:?}"),
        }
    }
    assert!(matches!(
        admin.rolling_maintenance().await,
        Err(ClientError::Api { status: 404, .. })
    ));

    // The CLI says the same in one line, exit 2.
    let cli = site
        .convoy(&[
            "rolling-maintenance-strategy",
            "create",
            "--hosts",
            "worker-0",
            "--zones",
            "zone-a",
        ])
        .await;
    assert!(cli.fails(2).contains("cannot be used with"), "{cli:?}");
    let cli = site
        .convoy(&["rolling-maintenance-strategy", "create", "--hosts", "ghost"])
        .await;
    assert!(cli.fails(2).contains("unknown host \"ghost\""), "{cli:?}");

    // An offline host is refused unless forced.
    let mut site = site;
    site.agent("worker-1").kill();
    site.wait_availability(
        "worker-1",
        convoy_core::host::Availability::Offline,
        Duration::from_secs(10),
    )
    .await;
    let cli = site
        .convoy(&[
            "rolling-maintenance-strategy",
            "create",
            "--clusters",
            "cluster-1",
        ])
        .await;
    assert!(cli.fails(2).contains("worker-1 is offline"), "{cli:?}");
    let created = site
        .convoy(&[
            "rolling-maintenance-strategy",
            "create",
            "--clusters",
            "cluster-1",
            "--forced",
            "-f",
            "json",
        ])
        .await
        .json();
    assert_eq!(created["state"], "initial");
    let steps = site.admin().strategy_steps().await.unwrap();
    assert_eq!(steps[1].state, "skipped");
    assert_eq!(steps[1].details, "Host worker-1 is offline");
}

#[tokio::test]
async fn two_concurrent_creates_yield_exactly_one_strategy() {
    let site = start_site(&workers(2)).await;
    let request = NewRollingMaintenance {
        clusters: Some(vec!["cluster-1".into()]),
        ..Default::default()
    };
    let (first, second) = (site.admin(), site.admin());
    let (a, b) = tokio::join!(
        first.create_rolling_maintenance(&request),
        second.create_rolling_maintenance(&request)
    );
    let (ok, refused) = match (a, b) {
        (Ok(ok), Err(refused)) | (Err(refused), Ok(ok)) => (ok, refused),
        other => panic!("expected one success and one refusal: {other:?}"),
    };
    assert_eq!(ok.state, StrategyState::Initial);
    match refused {
        ClientError::Api {
            status: 409,
            message,
            ..
        } => {
            assert!(
                message.contains("a rolling-maintenance strategy (state initial) already exists"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(site.admin().strategy_steps().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_reader_may_watch_but_not_run_a_strategy() {
    let site = start_site(&workers(1)).await;
    let reader = site.add_user("rita", convoy_core::role::Role::Reader).await;
    let cli = site
        .convoy_as(
            &reader,
            &[
                "rolling-maintenance-strategy",
                "create",
                "--hosts",
                "worker-0",
            ],
        )
        .await;
    assert!(cli.fails(1).contains("needs the operator role"), "{cli:?}");
    site.convoy(&[
        "rolling-maintenance-strategy",
        "create",
        "--hosts",
        "worker-0",
    ])
    .await
    .ok();
    let cli = site
        .convoy_as(&reader, &["rolling-maintenance-strategy", "apply"])
        .await;
    assert!(cli.fails(1).contains("needs the operator role"), "{cli:?}");
    let shown = site
        .convoy_as(&reader, &["strategy-step", "list", "-f", "json"])
        .await
        .json();
    assert_eq!(shown[0]["state"], "initial");
}

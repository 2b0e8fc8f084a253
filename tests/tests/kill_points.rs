//! The kill-point campaign: convoyd, or one agent, SIGKILLed (and started again at once) at
//! moments spread over a rolling maintenance and a patch install and removal cycle. After each
//! restart the run completes, every hook and every patch script ran exactly once per host, no
//! cluster is left disabled, no host in maintenance, no bundle or partial upload orphaned.
//!
//! In the test suite it runs a short form (a few kill points). The whole campaign, at least 50
//! controller kill points and 20 agent ones, with a line per point and the counts at the end:
//!
//! ```sh
//! CONVOY_KILL_POINTS=full cargo test -p convoy-e2e --test kill_points -- --nocapture
//! ```

use std::time::{Duration, Instant};

use convoy_api::Client;
use convoy_api::patches::PatchOperation;
use convoy_api::strategies::{ActionName, NewRollingMaintenance};
use convoy_core::strategy::StrategyState;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{HostSpec, PatchKeys, Site, workers};

const HOSTS: [&str; 3] = ["worker-0", "worker-1", "worker-2"];
const STAGES: [&str; 4] = [
    "PreFlight",
    "PreMaintenance",
    "Maintenance",
    "PostMaintenance",
];
/// Each wait ends well within the 30 s after which a command without an outcome is delivered
/// again: a lost outcome fails the point instead of being healed later.
const WITHIN: Duration = Duration::from_secs(25);

/// What a point kills.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Controller,
    Agent(usize),
}

/// The part of the cycle a point kills in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Maintenance,
    Install,
    Removal,
}

#[derive(Debug, Clone, Copy)]
struct KillPoint {
    victim: Victim,
    phase: Phase,
    /// From the moment the phase's requests were accepted.
    after: Duration,
}

/// `count` points spread evenly over the three phases, each phase's share in proportion to
/// how long it took in a run without kills.
fn spread(count: usize, victim: impl Fn(usize) -> Victim, took: [Duration; 3]) -> Vec<KillPoint> {
    let total: Duration = took.iter().sum();
    (0..count)
        .map(|i| {
            let mut at = total.mul_f64((i as f64 + 0.5) / count as f64);
            let mut phase = 0;
            while phase < 2 && at >= took[phase] {
                at -= took[phase];
                phase += 1;
            }
            KillPoint {
                victim: victim(i),
                phase: [Phase::Maintenance, Phase::Install, Phase::Removal][phase],
                after: at,
            }
        })
        .collect()
}

#[tokio::test]
async fn kills_at_any_moment_repeat_nothing_and_leave_nothing_behind() {
    let full = std::env::var("CONVOY_KILL_POINTS").is_ok_and(|v| v == "full");
    let hosts: Vec<HostSpec> = workers(3);
    let (mut site, keys) = Site::with_patch_key(&hosts).await;
    for host in HOSTS {
        site.write_standard_hooks(host);
    }
    let patch = build_patch(&site, &keys).await;

    // A run without kills: what each phase takes, to spread the points over.
    let took = round(&mut site, &patch, None).await;
    let (controller_points, agent_points) = if full { (50, 20) } else { (4, 2) };
    let mut points = spread(controller_points, |_| Victim::Controller, took);
    points.extend(spread(
        agent_points,
        |i| Victim::Agent(i % HOSTS.len()),
        took,
    ));
    let started = Instant::now();
    for (n, point) in points.iter().enumerate() {
        round(&mut site, &patch, Some(*point)).await;
        if full {
            println!("kill point {n}: {point:?}: clean");
        }
    }
    println!(
        "kill points: {controller_points} of convoyd and {agent_points} of agents, each clean \
         ({} s; phases without kills took {took:?})",
        started.elapsed().as_secs()
    );
}

/// One cycle: a rolling maintenance over the three hosts, then the patch installed on every
/// host and removed again, with `kill` (if any) during its phase. Checks that everything ran
/// exactly once and nothing was left behind; returns how long each phase took.
async fn round(site: &mut Site, patch: &std::path::Path, kill: Option<KillPoint>) -> [Duration; 3] {
    std::fs::write(site.hook_log(), "").unwrap();
    std::fs::write(script_log(site), "").unwrap();
    let client = site.admin();
    let kill_in = |phase| kill.filter(|k| k.phase == phase);

    // Rolling maintenance, one host at a time.
    client
        .create_rolling_maintenance(&NewRollingMaintenance {
            clusters: Some(vec!["cluster-1".into()]),
            max_parallel_hosts: Some(1),
            timeout_seconds: Some(20),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .rolling_maintenance_action(ActionName::Apply)
        .await
        .unwrap();
    let begun = Instant::now();
    let ended = with_kill(site, kill_in(Phase::Maintenance), || async {
        let strategy = client.rolling_maintenance().await.ok()?;
        strategy.state.is_terminal().then_some(strategy)
    })
    .await;
    let maintenance = begun.elapsed();
    assert_eq!(
        ended.state,
        StrategyState::Complete,
        "{kill:?}: {}",
        ended.details
    );
    client.delete_rolling_maintenance().await.unwrap();

    // The patch on every host, then off again.
    client.upload_patch(patch).await.unwrap();
    client.patch_operation("apply", &operation()).await.unwrap();
    let begun = Instant::now();
    install_everywhere(site, &client, kill_in(Phase::Install)).await;
    let install = begun.elapsed();
    client
        .patch_operation("remove", &operation())
        .await
        .unwrap();
    let begun = Instant::now();
    install_everywhere(site, &client, kill_in(Phase::Removal)).await;
    let removal = begun.elapsed();
    client
        .patch_operation("delete", &operation())
        .await
        .unwrap();

    check_exactly_once(site, kill);
    check_nothing_left_behind(site, &client, kill).await;
    [maintenance, install, removal]
}

/// Sends every host its install command, and waits for all three outcomes.
async fn install_everywhere(site: &mut Site, client: &Client, kill: Option<KillPoint>) {
    let mut commands = Vec::new();
    for host in HOSTS {
        let (_, id) = client.host_install(host, false).await.unwrap();
        commands.push((host, id));
    }
    let outcomes = with_kill(site, kill, || async {
        let mut outcomes = Vec::new();
        for (host, id) in &commands {
            outcomes.push(client.command(host, id).await.ok()?.outcome?);
        }
        Some(outcomes)
    })
    .await;
    for outcome in outcomes {
        assert!(outcome.succeeded, "{kill:?}: {}", outcome.message);
    }
}

/// Waits for `done` while the point's victim is killed `after` into the wait and started
/// again at once.
async fn with_kill<T, F, Fut>(site: &mut Site, kill: Option<KillPoint>, done: F) -> T
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let Site {
        controller, agents, ..
    } = site;
    let killing = async {
        let Some(point) = kill else { return };
        // A fault injected at a moment, not a wait for one: the campaign is about moments.
        tokio::time::sleep(point.after).await;
        match point.victim {
            Victim::Controller => {
                controller.kill();
                controller.restart().await.unwrap();
            }
            Victim::Agent(i) => {
                agents[i].kill();
                agents[i].restart().unwrap();
            }
        }
    };
    let waiting = wait_until(Deadline::after(WITHIN), "the phase to end", done);
    let ((), ended) = tokio::join!(killing, waiting);
    ended.unwrap_or_else(|e| panic!("{kill:?}: {e}"))
}

/// Every hook stage and every patch script ran once on every host, in order.
fn check_exactly_once(site: &Site, kill: Option<KillPoint>) {
    let hooks = std::fs::read_to_string(site.hook_log()).unwrap();
    let scripts = std::fs::read_to_string(script_log(site)).unwrap();
    for host in HOSTS {
        let stages: Vec<&str> = hooks
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{host} ")))
            .map(|rest| rest.split_whitespace().next().unwrap_or_default())
            .collect();
        assert_eq!(stages, STAGES, "{kill:?}: hooks on {host}");
        let ran: Vec<&str> = scripts
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{host} ")))
            .collect();
        assert_eq!(
            ran,
            ["pre-install", "post-install", "pre-remove"],
            "{kill:?}: patch scripts on {host}"
        );
    }
}

/// No cluster disabled, no host in maintenance or pending, every root as before, no bundle
/// or partial upload in the controller's patch directory.
async fn check_nothing_left_behind(site: &Site, client: &Client, kill: Option<KillPoint>) {
    for cluster in client.clusters().await.unwrap() {
        assert_eq!(cluster.state, "enabled", "{kill:?}: {cluster:?}");
    }
    for host in HOSTS {
        let shown = client.host(host).await.unwrap();
        assert_eq!(shown.state, "in-service", "{kill:?}: {host}");
        assert!(
            !site.root(host).join("etc/kill-points.conf").exists(),
            "{kill:?}: {host} still has the patch's file"
        );
    }
    for row in client.patch_hosts().await.unwrap() {
        assert_eq!(row.patch_current, "Yes", "{kill:?}: {row:?}");
    }
    let patch_dir = site.controller.data_dir().join("patches");
    let mut left: Vec<String> = std::fs::read_dir(&patch_dir)
        .unwrap()
        .chain(std::fs::read_dir(patch_dir.join("incoming")).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "incoming")
        .collect();
    left.sort();
    assert!(
        left.is_empty(),
        "{kill:?}: left in the patch directory: {left:?}"
    );
}

fn script_log(site: &Site) -> std::path::PathBuf {
    site.dir.path().join("scripts.log")
}

fn operation() -> PatchOperation {
    PatchOperation {
        ids: vec!["KILL_0001".into()],
        ..Default::default()
    }
}

/// An in-service patch with a file and all three scripts, each logging `<host> <script>`.
async fn build_patch(site: &Site, keys: &PatchKeys) -> std::path::PathBuf {
    let log = script_log(site).display().to_string();
    let mut scripts = Vec::new();
    for script in ["pre-install", "post-install", "pre-remove"] {
        let path = site.source(
            &format!("{script}.sh"),
            &format!("#!/bin/sh\necho \"$(basename \"$CONVOY_ROOT\") {script}\" >> '{log}'\n"),
        );
        scripts.push(format!("--{script}"));
        scripts.push(path.display().to_string());
    }
    let scripts: Vec<&str> = scripts.iter().map(String::as_str).collect();
    site.build_worker_patch(
        keys,
        "KILL_0001",
        "etc/kill-points.conf",
        "kill points\n",
        &scripts,
    )
    .await
}

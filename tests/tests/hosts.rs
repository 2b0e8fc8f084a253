//! Hosts enrol through real agents, report their facts, go offline and come back.

use std::time::Duration;

use convoy_core::command::CommandKind;
use convoy_core::host::Availability;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{PING_INTERVAL, Site, three_hosts};

#[tokio::test]
async fn hosts_appear_available_with_the_facts_they_reported() {
    let site = Site::with_hosts(&three_hosts()).await;

    let hosts = site
        .convoy(&["host", "list", "--format", "json"])
        .await
        .json();
    let hosts = hosts.as_array().expect("a list");
    let names: Vec<&str> = hosts
        .iter()
        .map(|h| h["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["controller-0", "worker-0", "worker-1"]);
    for host in hosts {
        assert_eq!(host["availability"], "available", "{host}");
        assert_eq!(host["administrative"], "unlocked");
        assert_eq!(host["operational"], "enabled");
        assert_eq!(host["zone"], "zone-a");
        assert_eq!(host["pod"], "pod-1");
        assert_eq!(host["cluster"], "cluster-1");
        assert_eq!(host["capacity_cpus"], 4);
        assert_eq!(host["capacity_memory_mib"], 8192);
        assert_eq!(host["agent_version"], env!("CARGO_PKG_VERSION"));
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(host["boot_id"], boot_id.trim());
        assert!(host["state_fs_free_bytes"].as_u64().unwrap() > 0);
        assert!(!host["os"].as_str().unwrap().is_empty());
        assert!(host["last_seen"].is_string());
    }
    assert_eq!(hosts[0]["personality"], "controller");
    assert_eq!(hosts[1]["personality"], "worker");

    // The table shows the same hosts, and --column/--format value select fields.
    let table = site.convoy(&["host", "list"]).await;
    assert!(table.ok().contains("| worker-1 "), "{table:?}");
    let value = site
        .convoy(&[
            "host",
            "show",
            "worker-0",
            "-c",
            "personality",
            "-c",
            "availability",
            "-f",
            "value",
        ])
        .await;
    assert_eq!(value.ok(), "worker\navailable\n");
    let yaml = site
        .convoy(&["host", "show", "worker-0", "-f", "yaml"])
        .await;
    assert!(yaml.ok().contains("hostname: worker-0"), "{yaml:?}");
}

#[tokio::test]
async fn a_killed_agent_goes_offline_and_returns_as_the_same_host() {
    let mut site = Site::with_hosts(&three_hosts()).await;
    let before = site.admin().host("worker-1").await.unwrap();

    site.agent("worker-1").kill();
    let took = site
        .wait_availability("worker-1", Availability::Offline, Duration::from_secs(10))
        .await;
    // Three missed heartbeats, plus one interval for the last heartbeat's age.
    assert!(
        took <= Duration::from_secs(3 * PING_INTERVAL + 1),
        "offline after {took:?}"
    );
    let offline = site.admin().host("worker-1").await.unwrap();
    assert_eq!(
        offline.operational,
        convoy_core::host::Operational::Disabled
    );
    // The others are unaffected.
    assert_eq!(
        site.admin().host("worker-0").await.unwrap().availability,
        Availability::Available
    );

    site.agent("worker-1").restart().unwrap();
    site.wait_availability("worker-1", Availability::Available, Duration::from_secs(10))
        .await;
    let after = site.admin().host("worker-1").await.unwrap();
    assert_eq!(
        after.enrolled_at, before.enrolled_at,
        "same host, not a new enrolment"
    );
    assert_eq!(site.admin().hosts().await.unwrap().len(), 3);
    let log = std::fs::read_to_string(site.agent("worker-1").log()).unwrap();
    assert!(log.contains("starting with the saved identity"), "{log}");
}

#[tokio::test]
async fn ping_and_facts_travel_through_the_agent_channel() {
    let site = Site::with_hosts(&three_hosts()[..1]).await;

    let ping = site
        .convoy(&["host", "ping", "controller-0", "-f", "json"])
        .await
        .json();
    assert_eq!(ping["state"], "completed");
    assert_eq!(ping["outcome"]["succeeded"], true);
    assert_eq!(ping["outcome"]["message"], "pong");
    assert!(ping["outcome"]["output"]["agent_time"].is_string());

    let facts = site
        .convoy(&["host", "facts", "controller-0", "-f", "json"])
        .await
        .json();
    assert_eq!(facts["capacity_cpus"], 4);
    assert_eq!(facts["agent_version"], env!("CARGO_PKG_VERSION"));

    // The command is kept and can be read back by id.
    let id = ping["id"].as_str().unwrap();
    let again = site.admin().command("controller-0", id).await.unwrap();
    assert_eq!(
        serde_json::to_value(&again.outcome).unwrap(),
        ping["outcome"]
    );
}

#[tokio::test]
async fn a_ping_to_a_stopped_agent_times_out_and_is_answered_after_it_returns() {
    let mut site = Site::with_hosts(&three_hosts()[..1]).await;
    site.agent("controller-0").kill();

    let ping = site
        .convoy(&["host", "ping", "controller-0", "--wait", "1"])
        .await;
    let line = ping.fails(1);
    assert!(line.contains("did not answer"), "{line}");
    let queued = site
        .admin()
        .run_command("controller-0", CommandKind::Ping, Duration::ZERO)
        .await
        .unwrap();
    assert!(queued.outcome.is_none());

    // The queued commands are delivered once the agent is back.
    site.agent("controller-0").restart().unwrap();
    let admin = site.admin();
    let answered = wait_until(
        Deadline::after(Duration::from_secs(15)),
        "the queued ping's answer",
        || async {
            admin
                .command("controller-0", &queued.id.to_string())
                .await
                .ok()
                .and_then(|c| c.outcome)
        },
    )
    .await
    .unwrap();
    assert_eq!(answered.message, "pong");
}

#[tokio::test]
async fn lock_unlock_and_delete_follow_the_administrative_state() {
    let mut site = Site::with_hosts(&three_hosts()).await;

    let locked = site
        .convoy(&["host", "lock", "worker-0", "-f", "json"])
        .await
        .json();
    assert_eq!(locked["administrative"], "locked");
    assert_eq!(locked["operational"], "disabled");
    assert_eq!(locked["availability"], "available");
    // Locking again is harmless.
    site.convoy(&["host", "lock", "worker-0"]).await.ok();
    let unlocked = site
        .convoy(&["host", "unlock", "worker-0", "-f", "json"])
        .await
        .json();
    assert_eq!(unlocked["administrative"], "unlocked");
    assert_eq!(unlocked["operational"], "enabled");

    // An unlocked, available host cannot be deleted.
    let refused = site.convoy(&["host", "delete", "worker-1"]).await;
    assert!(
        refused.fails(2).contains("lock it before deleting it"),
        "{refused:?}"
    );
    assert_eq!(site.admin().hosts().await.unwrap().len(), 3);

    // Locked, it can; its agent is told its credential is gone and stops.
    site.convoy(&["host", "lock", "worker-1"]).await.ok();
    site.convoy(&["host", "delete", "worker-1"]).await.ok();
    let hosts = site.admin().hosts().await.unwrap();
    assert_eq!(hosts.len(), 2);
    let gone = site.convoy(&["host", "show", "worker-1"]).await;
    assert!(
        gone.fails(2).contains("host \"worker-1\" not found"),
        "{gone:?}"
    );
    convoy_e2e::wait_exited(site.agent("worker-1"), Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(site.agent("worker-1").log()).unwrap();
    assert!(log.contains("does not know this host credential"), "{log}");
}

//! Alarms: Convoy raises and clears its own for locked and offline hosts; agents, hook scripts
//! and operators' tools on a host raise and clear alarms about that host; operators see them
//! and their history with `convoy alarm list|show` and `convoy event list`.

use std::time::Duration;

use convoy_core::role::Role;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{CliRun, Site, workers};
use serde_json::Value;

/// `(alarm_id, entity, source)` of every active alarm.
async fn active(site: &Site) -> Vec<(String, String, String)> {
    site.admin()
        .alarms()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.alarm_id, a.entity, a.source))
        .collect()
}

fn alarm(id: &str, entity: &str, source: &str) -> (String, String, String) {
    (id.into(), entity.into(), source.into())
}

/// Runs `convoy-agent alarm ...` as a tool on `host` would (its state directory).
async fn agent_alarm(site: &Site, host: usize, args: &[&str]) -> CliRun {
    let agent = &site.agents[host];
    let output = tokio::process::Command::new(&site.binaries.agent)
        .arg("alarm")
        .args(args)
        .arg("--controller")
        .arg(site.url())
        .arg("--state-dir")
        .arg(&agent.options.state_dir)
        .output()
        .await
        .unwrap();
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn locked_and_offline_hosts_raise_convoys_alarms_and_clear_them_when_they_end() {
    let mut site = Site::with_hosts(&workers(2)).await;
    assert!(active(&site).await.is_empty());

    // Locking raises 200.001 at once; unlocking clears it; both are in the history.
    site.convoy(&["host", "lock", "worker-1"]).await.ok();
    assert_eq!(
        active(&site).await,
        [alarm("200.001", "host=worker-1", "convoy")]
    );
    let table = site.convoy(&["alarm", "list"]).await;
    assert!(
        table.ok().contains("was administratively locked"),
        "{table:?}"
    );
    site.convoy(&["host", "unlock", "worker-1"]).await.ok();
    assert!(active(&site).await.is_empty());
    let events = site
        .convoy(&["--format", "json", "event", "list", "--limit", "2"])
        .await
        .json();
    let states: Vec<(&str, &str)> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["state"].as_str().unwrap(),
                e["alarm_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("clear", "200.001"), ("set", "200.001")]);

    // A host whose agent stops goes offline and gets 200.004 (critical, management-affecting);
    // its agent back, the alarm clears.
    site.agent("worker-0").stop();
    let admin = site.admin();
    wait_until(
        Deadline::after(Duration::from_secs(20)),
        "worker-0's offline alarm",
        || async {
            let alarms = admin.alarms().await.ok()?;
            alarms
                .into_iter()
                .find(|a| a.alarm_id == "200.004" && a.entity == "host=worker-0")
        },
    )
    .await
    .map(|a| {
        assert!(
            a.mgmt_affecting && a.severity.as_str() == "critical",
            "{a:?}"
        )
    })
    .unwrap();
    site.agent("worker-0").restart().unwrap();
    wait_until(
        Deadline::after(Duration::from_secs(20)),
        "worker-0's offline alarm to clear",
        || async { admin.alarms().await.ok()?.is_empty().then_some(()) },
    )
    .await
    .unwrap();

    // A deleted host takes its alarms with it.
    site.convoy(&["host", "lock", "worker-1"]).await.ok();
    assert_eq!(active(&site).await.len(), 1);
    site.convoy(&["host", "delete", "worker-1"]).await.ok();
    assert!(active(&site).await.is_empty());
}

#[tokio::test]
async fn tools_and_hooks_on_a_host_alarm_about_that_host_only() {
    let site = Site::with_hosts(&workers(2)).await;

    // A tool on worker-1, with the agent's state directory.
    let raised = agent_alarm(
        &site,
        1,
        &[
            "raise",
            "--id",
            "100.101",
            "--severity",
            "major",
            "--reason",
            "disk 91% full",
            "--entity",
            "host=worker-1.disk=sda",
            "--mgmt-affecting",
        ],
    )
    .await;
    assert!(raised.ok().starts_with("raised 100.101"), "{raised:?}");
    assert_eq!(
        active(&site).await,
        [alarm("100.101", "host=worker-1.disk=sda", "agent")]
    );
    let shown: Value = site
        .convoy(&[
            "--format",
            "json",
            "alarm",
            "show",
            &site.admin().alarms().await.unwrap()[0].uuid,
        ])
        .await
        .json();
    assert_eq!(shown["reason"], "disk 91% full");
    assert_eq!(shown["mgmt_affecting"], true);

    // Not about another host, and not with a malformed id (exit 2, one line).
    let other = agent_alarm(
        &site,
        1,
        &[
            "raise",
            "--id",
            "100.101",
            "--severity",
            "minor",
            "--reason",
            "x",
            "--entity",
            "host=worker-0",
        ],
    )
    .await;
    assert!(other.fails(2).contains("its own host only"), "{other:?}");
    let malformed = agent_alarm(
        &site,
        1,
        &[
            "raise",
            "--id",
            "1001",
            "--severity",
            "minor",
            "--reason",
            "x",
        ],
    )
    .await;
    assert!(malformed.fails(2).contains("--id"), "{malformed:?}");

    let cleared = agent_alarm(
        &site,
        1,
        &[
            "clear",
            "--id",
            "100.101",
            "--entity",
            "host=worker-1.disk=sda",
        ],
    )
    .await;
    assert_eq!(cleared.ok().trim(), "cleared 100.101");
    assert!(active(&site).await.is_empty());

    // A hook script finds its agent in its environment.
    site.write_hook(
        "worker-0",
        "PreFlight",
        "\"$CONVOY_AGENT\" alarm raise --id 100.102 --severity warning --reason \"{stage} ran on {host}\"",
    );
    site.convoy(&[
        "rolling-maintenance",
        "start",
        "--hosts",
        "worker-0",
        "--wait",
    ])
    .await;
    assert_eq!(
        active(&site).await,
        [alarm("100.102", "host=worker-0", "agent")]
    );
}

#[tokio::test]
async fn operators_raise_and_clear_readers_only_look() {
    let site = Site::controller_only(None).await;
    let raised: Value = site
        .convoy(&[
            "--format",
            "json",
            "alarm",
            "raise",
            "--id",
            "300.001",
            "--entity",
            "site=lab",
            "--severity",
            "minor",
            "--reason",
            "rack 4 fan noisy",
        ])
        .await
        .json();
    let uuid = raised["uuid"].as_str().unwrap().to_string();
    assert_eq!(raised["source"], "operator");

    let reader = site.add_user("rita", Role::Reader).await;
    let list = site.convoy_as(&reader, &["alarm", "list"]).await;
    assert!(list.ok().contains("rack 4 fan noisy"));
    let refused = site.convoy_as(&reader, &["alarm", "clear", &uuid]).await;
    assert!(refused.fails(1).contains("operator"), "{refused:?}");

    // Bad input names the field; nothing changes.
    let bad = site
        .convoy(&[
            "alarm",
            "raise",
            "--id",
            "300.001",
            "--entity",
            "site lab",
            "--severity",
            "minor",
            "--reason",
            "x",
        ])
        .await;
    assert!(bad.fails(2).contains("entity"), "{bad:?}");
    let bad_severity = site
        .convoy(&[
            "alarm",
            "raise",
            "--id",
            "300.001",
            "--entity",
            "site=lab",
            "--severity",
            "dire",
            "--reason",
            "x",
        ])
        .await;
    assert!(
        bad_severity.fails(2).contains("--severity"),
        "{bad_severity:?}"
    );
    assert_eq!(site.admin().alarms().await.unwrap().len(), 1);

    site.convoy(&["alarm", "clear", &uuid]).await.ok();
    assert!(site.admin().alarms().await.unwrap().is_empty());
    let missing = site.convoy(&["alarm", "show", &uuid]).await;
    assert!(missing.fails(2).contains("not found"), "{missing:?}");
}

/// While a patch is partly applied (a host has yet to install it), the site has `900.001`;
/// once every host has it, the alarm clears.
#[tokio::test]
async fn patching_in_progress_is_an_alarm_until_every_host_has_installed() {
    let (site, keys) = Site::with_patch_key(&workers(1)).await;
    let file = site
        .build_worker_patch(&keys, "ALARM_0001", "etc/p.conf", "p\n", &[])
        .await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "ALARM_0001"]).await.ok();
    let admin = site.admin();
    wait_until(
        Deadline::after(Duration::from_secs(20)),
        "the patching alarm",
        || async {
            admin
                .alarms()
                .await
                .ok()?
                .into_iter()
                .find(|a| a.alarm_id == "900.001" && a.entity == "subsystem=patching")
        },
    )
    .await
    .unwrap();
    site.convoy(&["patch", "host-install", "worker-0"])
        .await
        .ok();
    wait_until(
        Deadline::after(Duration::from_secs(20)),
        "the patching alarm to clear",
        || async { admin.alarms().await.ok()?.is_empty().then_some(()) },
    )
    .await
    .unwrap();
}

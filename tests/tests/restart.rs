//! A controller killed with SIGKILL keeps everything it accepted, and agents find it again.

use convoy_api::users::NewUser;
use convoy_core::host::{Administrative, Availability};
use convoy_core::role::Role;
use convoy_e2e::{Site, three_hosts};

#[tokio::test]
async fn a_killed_controller_restarts_with_users_hosts_and_states() {
    let mut site = Site::with_hosts(&three_hosts()).await;
    let admin = site.admin();
    admin
        .add_user(&NewUser {
            name: "olivia".into(),
            password: "operator-password".into(),
            role: Role::Operator,
        })
        .await
        .unwrap();
    admin.lock_host("worker-0").await.unwrap();
    let password = site.controller.admin_password().unwrap();
    let token_file_before = std::fs::read_to_string(site.controller.agent_token_file()).unwrap();

    site.controller.kill();
    // While it is down the CLI says where it tried.
    let down = site.convoy(&["host", "list"]).await;
    let line = down.fails(1);
    assert!(
        line.contains(&site.url()) && line.contains("cannot reach"),
        "{line}"
    );

    site.controller.restart().await.unwrap();
    let restarted_at = jiff::Timestamp::now();

    // Same admin password and enrolment token; the old token still works.
    assert_eq!(site.controller.admin_password().unwrap(), password);
    assert_eq!(
        std::fs::read_to_string(site.controller.agent_token_file()).unwrap(),
        token_file_before
    );
    let users = site.admin().users().await.unwrap();
    let names: Vec<_> = users.iter().map(|u| (u.name.as_str(), u.role)).collect();
    assert_eq!(names, [("admin", Role::Admin), ("olivia", Role::Operator)]);
    let olivia = convoy_api::Client::new(&site.url())
        .unwrap()
        .login("olivia", "operator-password")
        .await;
    assert!(olivia.is_ok(), "{olivia:?}");

    // The agents reconnect on their own (each heartbeats the new process), and worker-0 is
    // still locked.
    let admin = site.admin();
    let hosts = convoy_e2e::convoy_launch::wait_until(
        convoy_e2e::convoy_launch::Deadline::after(std::time::Duration::from_secs(20)),
        "every agent to heartbeat the restarted controller",
        || async {
            let hosts = admin.hosts().await.ok()?;
            hosts
                .iter()
                .all(|h| h.last_seen.is_some_and(|seen| seen > restarted_at))
                .then_some(hosts)
        },
    )
    .await
    .unwrap();
    assert_eq!(hosts.len(), 3);
    let worker0 = hosts.iter().find(|h| h.hostname == "worker-0").unwrap();
    assert_eq!(worker0.administrative, Administrative::Locked);
    for name in ["controller-0", "worker-1"] {
        let host = hosts.iter().find(|h| h.hostname == name).unwrap();
        assert_eq!(host.administrative, Administrative::Unlocked);
        assert_eq!(host.availability, Availability::Available);
    }

    // And commands flow again.
    let ping = site
        .convoy(&["host", "ping", "worker-1", "-f", "json"])
        .await
        .json();
    assert_eq!(ping["outcome"]["succeeded"], true);
    for agent in &mut site.agents {
        agent
            .check_running()
            .expect("agents survive the controller's restart");
    }
}

#[tokio::test]
async fn agents_started_before_the_controller_enrol_once_it_is_up() {
    let mut site = Site::controller_only(None).await;
    site.controller.kill();
    site.start_agent(&three_hosts()[1]);
    site.controller.restart().await.unwrap();
    let hosts = site.wait_available(1).await;
    assert_eq!(hosts[0].hostname, "worker-0");
}

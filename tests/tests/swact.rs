//! Two controllers: the site records which one is active; `convoy host swact` moves activity
//! to the standby when it is unlocked and available, and refuses otherwise, saying why.

use convoy_core::host::Personality;
use convoy_e2e::{HostSpec, Site};

async fn controller_roles(site: &Site) -> Vec<(String, Option<String>)> {
    site.admin()
        .hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| (h.hostname, h.controller))
        .collect()
}

fn role(host: &str, role: Option<&str>) -> (String, Option<String>) {
    (host.into(), role.map(String::from))
}

#[tokio::test]
async fn a_swact_moves_activity_to_a_ready_standby_and_survives_a_restart() {
    let mut site = Site::with_hosts(&[
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("controller-1", Personality::Controller),
        HostSpec::new("worker-0", Personality::Worker),
    ])
    .await;
    assert_eq!(
        controller_roles(&site).await,
        [
            role("controller-0", Some("active")),
            role("controller-1", Some("standby")),
            role("worker-0", None)
        ]
    );

    // Refused, each with its reason (exit 2, one line), and nothing changes.
    for (host, reason) in [
        (
            "controller-1",
            "controller-1 is the standby controller; the active one is controller-0",
        ),
        ("worker-0", "worker-0 is not a controller"),
        ("nope", "not found"),
    ] {
        let refused = site.convoy(&["host", "swact", host]).await;
        assert!(refused.fails(2).contains(reason), "{refused:?}");
    }
    site.convoy(&["host", "lock", "controller-1"]).await.ok();
    let refused = site.convoy(&["host", "swact", "controller-0"]).await;
    assert!(
        refused.fails(2).contains(
            "the standby controller controller-1 is not unlocked and available (locked, available)"
        ),
        "{refused:?}"
    );
    assert_eq!(
        controller_roles(&site).await[0],
        role("controller-0", Some("active"))
    );

    // With the standby back in service, the swact goes through, and is remembered.
    site.convoy(&["host", "unlock", "controller-1"]).await.ok();
    let swacted = site.convoy(&["host", "swact", "controller-0"]).await;
    assert!(
        swacted
            .ok()
            .contains("controller-0 is now the standby controller"),
        "{swacted:?}"
    );
    site.controller.kill();
    site.controller.restart().await.unwrap();
    assert_eq!(
        controller_roles(&site).await[..2],
        [
            role("controller-0", Some("standby")),
            role("controller-1", Some("active"))
        ]
    );
    site.convoy(&["host", "swact", "controller-1"]).await.ok();
    assert_eq!(
        controller_roles(&site).await[0],
        role("controller-0", Some("active"))
    );
}

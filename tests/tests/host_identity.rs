//! A host's identity: the site's agent token enrols new hostnames only, never takes over a
//! known host; re-enrolling a known host takes a single-use per-host token an admin creates.

use convoy_core::role::Role;
use convoy_e2e::{Site, workers};
use serde_json::{Value, json};

/// Posts an enrolment of `hostname` with `token`; returns the status and the JSON body.
async fn enrol(site: &Site, hostname: &str, token: &str) -> (u16, Value) {
    let facts = convoy_e2e::host_facts();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/agent/enrol", site.url()))
        .json(&json!({"enrolment_token": token, "hostname": hostname,
            "personality": "controller", "facts": facts}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

/// Whether `credential` is still a valid host credential (a heartbeat is accepted).
async fn credential_works(site: &Site, credential: &str) -> bool {
    let facts = convoy_e2e::host_facts();
    reqwest::Client::new()
        .post(format!("{}/v1/agent/heartbeat", site.url()))
        .header("X-Auth-Token", credential)
        .json(&json!({ "facts": facts }))
        .send()
        .await
        .unwrap()
        .status()
        .is_success()
}

fn credential_of(site: &Site, index: usize) -> String {
    let identity: Value = serde_json::from_slice(
        &std::fs::read(site.agents[index].options.state_dir.join("identity.json")).unwrap(),
    )
    .unwrap();
    identity["credential"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_site_token_enrols_new_hosts_and_never_takes_over_a_known_one() {
    let site = Site::with_hosts(&workers(1)).await;
    let site_token = std::fs::read_to_string(site.controller.agent_token_file()).unwrap();
    let site_token = site_token.trim();
    let real = credential_of(&site, 0);

    // A holder of the site token (any host has it) cannot re-enrol worker-0.
    let (status, body) = enrol(&site, "worker-0", site_token).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        message(&body).contains("convoy host enrol-token create worker-0"),
        "{body}"
    );
    assert!(
        credential_works(&site, &real).await,
        "the real host lost its credential"
    );
    // A hostname the site does not know is enrolled.
    let (status, body) = enrol(&site, "controller-0", site_token).await;
    assert_eq!(status, 200, "{body}");
    // ...and from then on is as protected as any other.
    let (status, _) = enrol(&site, "controller-0", site_token).await;
    assert_eq!(status, 409);
    // A token that is neither is refused.
    let (status, body) = enrol(&site, "worker-0", "cve_made-up").await;
    assert_eq!(status, 401, "{body}");
    assert!(credential_works(&site, &real).await);
}

#[tokio::test]
async fn a_per_host_token_re_enrols_its_own_host_once() {
    let site = Site::with_hosts(&workers(2)).await;
    let real = credential_of(&site, 0);

    // Only admins create them; the CLI checks the TTL's range.
    let operator = site.add_user("olive", Role::Operator).await;
    let refused = site
        .convoy_as(&operator, &["host", "enrol-token", "create", "worker-0"])
        .await;
    assert!(refused.fails(1).contains("admin"), "{}", refused.fails(1));
    let bad_ttl = site
        .convoy(&["host", "enrol-token", "create", "worker-0", "--ttl", "5"])
        .await;
    assert!(bad_ttl.fails(2).contains("--ttl"));

    let created = site
        .convoy(&[
            "--format",
            "json",
            "host",
            "enrol-token",
            "create",
            "worker-0",
            "--ttl",
            "600",
        ])
        .await
        .json();
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["hostname"], "worker-0");

    // Not for another host, and not twice.
    let (status, _) = enrol(&site, "worker-1", token).await;
    assert_eq!(status, 401);
    let (status, body) = enrol(&site, "worker-0", token).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !credential_works(&site, &real).await,
        "the replaced credential still works"
    );
    let (status, body) = enrol(&site, "worker-0", token).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("already used"), "{body}");
}

#[tokio::test]
async fn with_site_enrolment_off_hosts_enrol_only_with_their_own_token() {
    let site = Site::controller_only(Some("site_enrolment = false\n")).await;
    let site_token = std::fs::read_to_string(site.controller.agent_token_file()).unwrap();
    let (status, body) = enrol(&site, "worker-7", site_token.trim()).await;
    assert_eq!(status, 401, "{body}");
    assert!(message(&body).contains("site_enrolment = false"), "{body}");

    // A token made for a host the site does not know yet bootstraps it.
    let token = site
        .admin()
        .create_enrol_token("worker-7", 600)
        .await
        .unwrap()
        .token;
    let (status, body) = enrol(&site, "worker-7", &token).await;
    assert_eq!(status, 200, "{body}");
}

//! convoyd serves HTTPS by default with a self-signed certificate it makes on first start;
//! agents and the CLI verify it, by CA or by fingerprint, and refuse any other certificate.

use std::time::Duration;

use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{Site, workers};
use serde_json::Value;

fn identity_of(site: &Site, index: usize) -> Value {
    serde_json::from_slice(
        &std::fs::read(site.agents[index].options.state_dir.join("identity.json")).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn agents_and_the_cli_reach_convoyd_over_verified_https_only() {
    let site = Site::with_tls(&workers(1)).await;
    assert!(site.url().starts_with("https://"));
    let cert = site.controller.ca_cert().unwrap();

    // The agent enrolled over HTTPS, trusting the certificate as its CA, and pinned the
    // fingerprint convoyd printed when it started.
    let fingerprint = identity_of(&site, 0)["tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let log = std::fs::read_to_string(site.controller.log()).unwrap();
    assert!(
        log.contains(&format!("its certificate's fingerprint is {fingerprint}")),
        "{log}"
    );
    // The key is the controller's alone.
    use std::os::unix::fs::PermissionsExt;
    let key = cert.with_file_name("key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o077,
        0
    );

    // The CLI with the CA (the harness passes CONVOY_CA_CERT) or with the fingerprint works.
    assert!(
        site.convoy(&["host", "list"])
            .await
            .ok()
            .contains("worker-0")
    );
    let by_fingerprint = convoy_e2e::run_cli(
        &site.binaries.convoy,
        &site.url(),
        &[
            ("CONVOY_TOKEN", site.admin_token()),
            ("CONVOY_TLS_FINGERPRINT", &fingerprint),
        ],
        &["host", "list"],
    )
    .await;
    assert!(by_fingerprint.ok().contains("worker-0"));
    // Without either, or with another fingerprint, it refuses and says what to do.
    let wrong = format!("sha256:{}", "0".repeat(64));
    for env in [vec![], vec![("CONVOY_TLS_FINGERPRINT", wrong.as_str())]] {
        let mut env = env;
        env.push(("CONVOY_TOKEN", site.admin_token()));
        let refused =
            convoy_e2e::run_cli(&site.binaries.convoy, &site.url(), &env, &["host", "list"]).await;
        let line = refused.fails(1);
        assert!(line.contains("--ca-cert"), "{line}");
    }
    // Plain HTTP is not served.
    let plain = site.url().replace("https://", "http://");
    let answered = reqwest::Client::new()
        .get(format!("{plain}/v3"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success());
    assert!(!answered, "convoyd answered plain HTTP");
}

/// An agent that pinned its controller's certificate refuses a server at the same address
/// with another certificate (a man in the middle, or a controller whose key was replaced
/// without telling its hosts), and reports nothing to it.
#[tokio::test]
async fn an_agent_refuses_a_controller_whose_certificate_is_not_the_one_it_pinned() {
    let mut site = Site::with_tls(&workers(1)).await;
    let tls_dir = site
        .controller
        .ca_cert()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    site.controller.stop();
    // A new key and certificate at the same address: convoyd makes them when none exist.
    std::fs::remove_dir_all(&tls_dir).unwrap();
    site.controller.restart().await.unwrap();
    // The agent restarts trusting only its pin (no --ca-cert).
    let agent = site.agent("worker-0");
    agent.stop();
    agent
        .options
        .extra_args
        .retain(|a| !a.ends_with("cert.pem") && a != "--ca-cert");
    agent.restart().unwrap();
    let log = agent.log().to_path_buf();
    wait_until(
        Deadline::after(Duration::from_secs(20)),
        "the agent to refuse the new certificate",
        || async {
            std::fs::read_to_string(&log)
                .ok()?
                .contains("is not the one pinned")
                .then_some(())
        },
    )
    .await
    .unwrap();
}

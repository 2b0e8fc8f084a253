//! Installing patches on hosts: real agents fetch, verify and install signed bundles into their
//! own roots, remove them byte for byte, refuse what they must, and survive a crash.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use convoy_core::host::{Availability, Personality};
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{HostSpec, PatchKeys, Site};

const LONG: Duration = Duration::from_secs(60);

fn hosts() -> Vec<HostSpec> {
    vec![
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("worker-0", Personality::Worker),
    ]
}

async fn patch_state(site: &Site, id: &str) -> String {
    site.admin()
        .patches("all")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.patch_id == id)
        .map(|p| p.patch_state)
        .unwrap_or_default()
}

async fn wait_patch_state(site: &Site, id: &str, wanted: &str) {
    wait_until(
        Deadline::after(LONG),
        &format!("{id} to be {wanted}"),
        || async { (patch_state(site, id).await == wanted).then_some(()) },
    )
    .await
    .unwrap();
}

async fn host_row(site: &Site, hostname: &str) -> convoy_api::patches::HostPatchRow {
    site.admin()
        .patch_hosts()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.hostname == hostname)
        .unwrap()
}

/// Waits until the host's row satisfies `check` (agents report in heartbeats).
async fn wait_host_row(
    site: &Site,
    hostname: &str,
    what: &str,
    check: impl Fn(&convoy_api::patches::HostPatchRow) -> bool,
) -> convoy_api::patches::HostPatchRow {
    wait_until(Deadline::after(LONG), what, || async {
        let row = host_row(site, hostname).await;
        check(&row).then_some(row)
    })
    .await
    .unwrap()
}

async fn build_app_patch(
    site: &Site,
    keys: &PatchKeys,
    id: &str,
    version: &str,
    rr: &str,
) -> std::path::PathBuf {
    let app = site
        .source(&format!("{id}-app.conf"), &format!("app {version}\n"))
        .display()
        .to_string();
    let motd = site
        .source(&format!("{id}-motd"), &format!("motd {version}\n"))
        .display()
        .to_string();
    site.build_patch(
        keys,
        id,
        &[
            "--status",
            "REL",
            "--reboot-required",
            rr,
            "--worker",
            &format!("{app}=etc/app.conf"),
            "--all-nodes",
            &format!("{motd}=etc/motd"),
        ],
    )
    .await
}

#[tokio::test]
async fn apply_install_remove_restores_every_byte() {
    let (site, keys) = Site::with_patch_key(&hosts()).await;
    // worker-0 already has an /etc/motd of its own, which the patch replaces.
    let worker_root = site.root("worker-0");
    std::fs::create_dir_all(worker_root.join("etc")).unwrap();
    std::fs::write(worker_root.join("etc/motd"), "original motd\n").unwrap();
    std::fs::set_permissions(
        worker_root.join("etc/motd"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    let file = build_app_patch(&site, &keys, "PATCH_0001", "v1", "N").await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "PATCH_0001"]).await.ok();
    assert_eq!(patch_state(&site, "PATCH_0001").await, "Partial-Apply");
    assert_eq!(host_row(&site, "worker-0").await.patch_current, "Pending");

    let installed = site.convoy(&["patch", "host-install", "worker-0"]).await;
    assert!(
        installed
            .ok()
            .contains("Patch installation request sent to worker-0."),
        "{installed:?}"
    );
    assert_eq!(
        std::fs::read_to_string(worker_root.join("etc/app.conf")).unwrap(),
        "app v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(worker_root.join("etc/motd")).unwrap(),
        "motd v1\n"
    );
    // Not everywhere yet.
    assert_eq!(patch_state(&site, "PATCH_0001").await, "Partial-Apply");
    site.convoy(&["patch", "host-install", "controller-0"])
        .await
        .ok();
    let controller_root = site.root("controller-0");
    assert_eq!(
        std::fs::read_to_string(controller_root.join("etc/motd")).unwrap(),
        "motd v1\n"
    );
    assert!(
        !controller_root.join("etc/app.conf").exists(),
        "worker files stay off controllers"
    );
    wait_patch_state(&site, "PATCH_0001", "Applied").await;
    let row = host_row(&site, "worker-0").await;
    assert_eq!(
        (
            row.patch_current.as_str(),
            row.state.as_str(),
            row.release.as_str()
        ),
        ("Yes", "idle", "25.09")
    );

    // Remove: Partial-Remove until the hosts install, then Available with every byte back.
    site.convoy(&["patch", "remove", "PATCH_0001"]).await.ok();
    assert_eq!(patch_state(&site, "PATCH_0001").await, "Partial-Remove");
    site.convoy(&["patch", "host-install", "worker-0"])
        .await
        .ok();
    site.convoy(&["patch", "host-install", "controller-0"])
        .await
        .ok();
    wait_patch_state(&site, "PATCH_0001", "Available").await;
    assert_eq!(
        std::fs::read_to_string(worker_root.join("etc/motd")).unwrap(),
        "original motd\n"
    );
    let mode = std::fs::metadata(worker_root.join("etc/motd"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(!worker_root.join("etc/app.conf").exists());
    assert!(!controller_root.join("etc/motd").exists());
    site.convoy(&["patch", "delete", "PATCH_0001"]).await.ok();
    // The agent logged the removal with the command that asked for it.
    let log = agent_log(&site, "worker-0");
    assert!(
        log.contains("removing patch PATCH_0001 (asked by command "),
        "{log}"
    );
}

#[tokio::test]
async fn a_reboot_required_patch_needs_a_locked_host_and_its_unlock_reboots_it() {
    let (site, keys) = Site::with_patch_key(&hosts()[1..]).await;
    let file = build_app_patch(&site, &keys, "PATCH_RR", "rr", "Y").await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "PATCH_RR"]).await.ok();

    let refused = site.convoy(&["patch", "host-install", "worker-0"]).await;
    assert!(
        refused.fails(1).contains("Node must be locked."),
        "{refused:?}"
    );
    wait_host_row(&site, "worker-0", "worker-0 to be install-rejected", |r| {
        r.state == "install-rejected"
    })
    .await;
    assert!(!site.root("worker-0").join("etc/app.conf").exists());

    let before = site.admin().host("worker-0").await.unwrap().boot_id;
    site.convoy(&["host", "lock", "worker-0"]).await.ok();
    site.convoy(&["patch", "host-install", "worker-0"])
        .await
        .ok();
    assert_eq!(
        std::fs::read_to_string(site.root("worker-0").join("etc/app.conf")).unwrap(),
        "app rr\n"
    );
    // Installed, it awaits its reboot, which its unlock brings.
    let row = host_row(&site, "worker-0").await;
    assert_eq!(row.reboot_required.as_str(), "Yes");
    assert_eq!(site.admin().host("worker-0").await.unwrap().boot_id, before);
    site.convoy(&["host", "unlock", "worker-0"]).await.ok();
    // The agent "reboots" (restarts with a new boot id) and comes back current.
    let admin = site.admin();
    wait_until(
        Deadline::after(LONG),
        "worker-0 to come back from its reboot",
        || async {
            let host = admin.host("worker-0").await.ok()?;
            (host.boot_id != before && host.availability == Availability::Available).then_some(())
        },
    )
    .await
    .unwrap();
    wait_patch_state(&site, "PATCH_RR", "Applied").await;
    let log = agent_log(&site, "worker-0");
    assert!(
        log.contains("rebooting the host (asked by command "),
        "{log}"
    );
    let row = host_row(&site, "worker-0").await;
    assert_eq!(
        (row.patch_current.as_str(), row.reboot_required.as_str()),
        ("Yes", "No")
    );
}

#[tokio::test]
async fn a_bundle_altered_in_the_controllers_store_is_refused_by_the_agent() {
    let (site, keys) = Site::with_patch_key(&hosts()[1..]).await;
    let file = build_app_patch(&site, &keys, "PATCH_0002", "v2", "N").await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "PATCH_0002"]).await.ok();
    // Someone swaps the stored bundle behind the controller's back.
    let stored = site.controller.data_dir().join("patches/PATCH_0002.patch");
    let mut bytes = std::fs::read(&stored).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    std::fs::write(&stored, bytes).unwrap();

    let run = site.convoy(&["patch", "host-install", "worker-0"]).await;
    let line = run.fails(1);
    assert!(line.contains("PATCH_0002"), "{line}");
    assert!(!site.root("worker-0").join("etc/app.conf").exists());
    let row = wait_host_row(&site, "worker-0", "worker-0 to be install-failed", |r| {
        r.state == "install-failed"
    })
    .await;
    assert_eq!(row.patch_current, "Failed");
    assert!(row.last_error.is_some_and(|e| e.contains("PATCH_0002")));
}

#[tokio::test]
async fn an_agent_killed_mid_install_never_reports_a_half_installed_patch() {
    let (mut site, keys) = Site::with_patch_key(&hosts()[1..]).await;
    // The pre-install script waits until the test lets it go.
    let gate = site.dir.path().join("gate");
    let script = site.source(
        "pre-install.sh",
        &format!(
            "#!/bin/sh\necho started >> {0}.log\nwhile [ ! -e {0} ]; do sleep 0.05; done\n",
            gate.display()
        ),
    );
    let app = site.source("app.conf", "app v3\n").display().to_string();
    let file = site
        .build_patch(
            &keys,
            "PATCH_0003",
            &[
                "--reboot-required",
                "N",
                "--worker",
                &format!("{app}=etc/app.conf"),
                "--pre-install",
                &script.display().to_string(),
            ],
        )
        .await;
    site.convoy(&["patch", "upload", &file.display().to_string()])
        .await
        .ok();
    site.convoy(&["patch", "apply", "PATCH_0003"]).await.ok();
    site.convoy(&["patch", "host-install", "worker-0", "--async"])
        .await
        .ok();
    let log = std::path::PathBuf::from(format!("{}.log", gate.display()));
    wait_until(
        Deadline::after(LONG),
        "the pre-install script to start",
        || async { log.exists().then_some(()) },
    )
    .await
    .unwrap();

    site.agent("worker-0").kill();
    assert_ne!(host_row(&site, "worker-0").await.patch_current, "Yes");
    std::fs::write(&gate, "").unwrap();
    site.agent("worker-0").restart().unwrap();
    // The restarted agent rolls back what was half done and gets the install again.
    wait_patch_state(&site, "PATCH_0003", "Applied").await;
    assert_eq!(
        std::fs::read_to_string(site.root("worker-0").join("etc/app.conf")).unwrap(),
        "app v3\n"
    );
    wait_host_row(&site, "worker-0", "worker-0 current", |r| {
        r.patch_current == "Yes"
    })
    .await;
}

/// What a host's agent has logged so far.
fn agent_log(site: &Site, hostname: &str) -> String {
    let agent = site
        .agents
        .iter()
        .find(|a| a.hostname() == hostname)
        .unwrap();
    std::fs::read_to_string(agent.log()).unwrap()
}

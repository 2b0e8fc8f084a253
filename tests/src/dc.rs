//! The System Controller's side of the harness: a System Controller, subclouds (each its own
//! convoyd with agents), registering them, releases deployed on the System Controller, and
//! waits on subclouds and strategies.

use std::time::Duration;

use convoy_core::host::Personality;
use convoy_launch::{Deadline, wait_until_every};
use serde_json::Value;

use crate::{HostSpec, PatchKeys, Site};

pub const LONG: Duration = Duration::from_secs(90);

/// The System Controller: no hosts of its own, trusts the patch key, audits every second.
pub async fn system_controller() -> (Site, PatchKeys) {
    let (mut sc, keys) = Site::with_patch_key(&[]).await;
    sc.controller.options.extra_args.extend(
        [
            "--audit-interval",
            "1",
            "--offline-after",
            "2",
            "--subcloud-poll-interval",
            "0.5",
        ]
        .iter()
        .map(|a| a.to_string()),
    );
    sc.controller.restart().await.expect("restarts");
    (sc, keys)
}

/// A subcloud: its own convoyd on HTTPS (waits at a hundredth), a controller and a worker
/// whose agents trust the key and "reboot" by restarting.
pub async fn subcloud(keys: &PatchKeys) -> Site {
    let public = keys.public.display().to_string();
    let mut site = Site::with_args(
        true,
        &["--trusted-key", &public, "--step-time-scale", "0.01"],
    )
    .await;
    site.agent_args = vec![
        "--trusted-key".into(),
        public,
        "--reboot-command".into(),
        "restart-agent".into(),
    ];
    for host in [
        HostSpec::new("controller-0", Personality::Controller),
        HostSpec::new("worker-0", Personality::Worker),
    ] {
        site.start_agent_with_root(&host);
    }
    site.wait_available(2).await;
    site
}

/// Deploys bundle `id` on the System Controller, uploads it to every subcloud, and waits
/// until each is out of sync.
pub async fn ship(sc: &Site, subs: &[Site], bundle: &std::path::Path, id: &str) {
    let file = bundle.display().to_string();
    sc.convoy(&["software", "upload", &file]).await.ok();
    sc.convoy(&["patch", "apply", id]).await.ok();
    for sub in subs {
        sub.convoy(&["software", "upload", &file]).await.ok();
    }
    for i in 1..=subs.len() {
        let name = format!("subcloud-{i}");
        wait_field(sc, &name, "software_sync_status", "out-of-sync").await;
    }
}

/// Registers `subs` as `subcloud-1`, `subcloud-2`... and manages each once it is online.
pub async fn register(sc: &Site, subs: &[Site]) {
    for (i, sub) in subs.iter().enumerate() {
        let name = format!("subcloud-{}", i + 1);
        let password = sub.controller.admin_password().unwrap();
        let url = sub.url();
        sc.convoy(&[
            "dc",
            "subcloud",
            "add",
            "--name",
            &name,
            "--bootstrap-address",
            &url,
            "--sysadmin-password",
            &password,
        ])
        .await
        .ok();
        wait_field(sc, &name, "availability", "online").await;
        sc.convoy(&["dc", "subcloud", "manage", &name]).await.ok();
    }
}

pub async fn show_subcloud(sc: &Site, name: &str) -> Value {
    sc.convoy(&["-f", "json", "dc", "subcloud", "show", name])
        .await
        .json()
}

pub async fn wait_field(sc: &Site, name: &str, field: &str, value: &str) -> Value {
    wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(250),
        &format!("{name} {field} = {value}"),
        || async {
            let shown = show_subcloud(sc, name).await;
            (shown[field] == value).then_some(shown)
        },
    )
    .await
    .unwrap()
}

/// Waits until the System Controller's strategy of `kind` is `wanted`.
pub async fn wait_strategy(sc: &Site, kind: &str, wanted: &str) -> Value {
    let waited = wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(250),
        &format!("the strategy to be {wanted}"),
        || async {
            let s = sc.admin().dc_strategy(kind).await.ok()?;
            (s["state"] == wanted).then_some(s)
        },
    )
    .await;
    match waited {
        Ok(s) => s,
        Err(e) => panic!("{e:?}; steps {:#?}", sc.admin().dc_strategy_steps().await),
    }
}

/// Builds worker release `id` for 25.09 carrying `source` at `install_path`, uploads it to
/// the System Controller and applies it there (it has no hosts: it is deployed at once).
/// Returns the bundle.
pub async fn release_on_system_controller(
    sc: &Site,
    keys: &PatchKeys,
    id: &str,
    source: &std::path::Path,
    install_path: &str,
) -> std::path::PathBuf {
    let bundle = sc
        .build_patch(
            keys,
            id,
            &[
                "--status",
                "REL",
                "--reboot-required",
                "N",
                "--worker",
                &format!("{}={install_path}", source.display()),
            ],
        )
        .await;
    let file = bundle.display().to_string();
    sc.convoy(&["software", "upload", &file]).await.ok();
    sc.convoy(&["patch", "apply", id]).await.ok();
    bundle
}

/// Builds `id` for workers, deploys it on the System Controller and uploads it to `subs`.
pub async fn release_everywhere(sc: &Site, keys: &PatchKeys, subs: &[Site], id: &str) {
    let source = sc.source(&format!("{id}.source"), "w\n");
    let bundle =
        release_on_system_controller(sc, keys, id, &source, &format!("etc/{id}.conf")).await;
    let file = bundle.display().to_string();
    for sub in subs {
        sub.convoy(&["software", "upload", &file]).await.ok();
    }
}

/// POSTs a create body as dcmanager's client does, asking for JSON errors.
pub async fn create_raw(sc: &Site, token: &str, body: &str) -> (u16, Value) {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let response = http
        .post(format!("{}/v1.0/sw-update-strategy/", sc.url()))
        .header("X-Auth-Token", token)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

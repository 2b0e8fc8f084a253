//! The System Controller's prestage strategy (`convoy dc prestage-strategy`,
//! `/v1.0/sw-update-strategy` with `type` prestage): a release's bundles travel to real
//! subclouds as content-addressed chunks, resumably and within the bandwidth caps, and land in
//! each subcloud's repository (to deploy) or prestage store (to install).

use std::time::{Duration, Instant};

use convoy_e2e::convoy_launch::{Deadline, wait_until_every};
use convoy_e2e::dc::{
    LONG, create_raw, register, release_on_system_controller, show_subcloud, subcloud,
    system_controller, wait_field, wait_strategy,
};
use convoy_e2e::{PatchKeys, Site};
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// Builds release `id` for 25.09 carrying `mib` MiB of bytes that do not repeat (so that it
/// cuts into several chunks), and deploys it on the System Controller.
async fn big_release(sc: &Site, keys: &PatchKeys, id: &str, mib: u64) -> std::path::PathBuf {
    let source = sc.source(&format!("{id}.bin"), "");
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ id.len() as u64;
    let bytes: Vec<u8> = (0..mib * MIB)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&source, bytes).unwrap();
    release_on_system_controller(sc, keys, id, &source, &format!("opt/{id}.bin")).await
}

/// A System Controller whose transfers to one subcloud are capped at `mib_per_sec`.
async fn capped_system_controller(mib_per_sec: &str) -> (Site, PatchKeys) {
    let (mut sc, keys) = system_controller().await;
    sc.controller.options.extra_args.extend([
        "--prestage-bandwidth-per-subcloud".to_string(),
        mib_per_sec.to_string(),
    ]);
    sc.controller.restart().await.expect("restarts");
    (sc, keys)
}

/// The `prestage transfer complete` lines of the System Controller's log for `subcloud`:
/// (total, sent, held) bytes.
fn transfers(sc: &Site, subcloud: &str) -> Vec<(u64, u64, u64)> {
    let log = std::fs::read_to_string(sc.controller.log()).unwrap();
    let field = |line: &str, name: &str| -> u64 {
        let plain: String = line
            .replace("\u{1b}[3m", "")
            .replace("\u{1b}[0m", "")
            .replace("\u{1b}[2m", "");
        let at = plain
            .find(&format!("{name}="))
            .unwrap_or_else(|| panic!("{name} in {line}"));
        plain[at + name.len() + 1..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    log.lines()
        .filter(|l| {
            l.contains("prestage transfer complete") && l.contains(&format!("\"{subcloud}\""))
        })
        .map(|l| (field(l, "total"), field(l, "sent"), field(l, "held")))
        .collect()
}

/// The bytes of chunks `sub` holds, once two reads 200 ms apart agree.
async fn settled_chunk_bytes(sub: &Site) -> u64 {
    let deadline = Instant::now() + LONG;
    let mut last = None;
    loop {
        let now = sub.admin().prestage_store().await.unwrap().chunk_bytes;
        if last == Some(now) {
            return now;
        }
        assert!(Instant::now() < deadline, "the chunks never settled");
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn step(sc: &Site, cloud: &str) -> Value {
    sc.admin().dc_strategy_step(cloud).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prestage_ships_only_missing_chunks_resumes_after_a_restart_and_the_release_deploys() {
    let (mut sc, keys) = capped_system_controller("4").await;
    let subs = [subcloud(&keys).await, subcloud(&keys).await];
    big_release(&sc, &keys, "PRE_REL_1", 24).await;
    register(&sc, &subs).await;
    for name in ["subcloud-1", "subcloud-2"] {
        wait_field(&sc, name, "identity_sync_status", "in-sync").await;
        wait_field(&sc, name, "software_sync_status", "out-of-sync").await;
    }
    // After identity sync a subcloud's sysadmin password is the System Controller's.
    let password = sc.controller.admin_password().unwrap();

    let created = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "prestage-strategy",
            "create",
            "--for-sw-deploy",
            "--release",
            "25.09",
            "--sysadmin-password",
            &password,
            "--max-parallel-subclouds",
            "2",
        ])
        .await
        .json();
    assert_eq!(created["strategy type"], "prestage", "{created:#}");
    assert_eq!(created["prestage software version"], "25.09");
    // The password is never answered.
    let raw = sc.admin().dc_strategy("prestage").await.unwrap();
    assert_eq!(raw["extra-args"]["sysadmin_password"], "******", "{raw:#}");
    assert_eq!(raw["extra-args"]["for_sw_deploy"], true);
    // The System Controller's own step (the legacy patch strategy's) is not one of these.
    let own = sc.admin().dc_strategy_step("SystemController").await;
    assert_eq!(own.unwrap_err().status(), Some(404));

    let applied_at = Instant::now();
    sc.convoy(&["dc", "prestage-strategy", "apply"]).await.ok();
    // Mid-transfer (its progress in the step's details), the System Controller is killed.
    let progress = wait_until_every(
        Deadline::after(LONG),
        Duration::from_millis(100),
        "subcloud-1 a quarter transferred",
        || async {
            let s = step(&sc, "subcloud-1").await;
            let details = s["details"].as_str().unwrap_or("").to_string();
            let percent: u64 = details
                .strip_prefix("prestaging-packages ")
                .and_then(|d| d.split('%').next())
                .and_then(|p| p.parse().ok())?;
            (25..90).contains(&percent).then_some(details)
        },
    )
    .await
    .unwrap();
    assert!(progress.ends_with("GiB)"), "{progress}");
    // A subcloud's own prestage is refused while the strategy applies.
    let alone = sc
        .convoy(&[
            "dc",
            "subcloud",
            "prestage",
            "subcloud-2",
            "--sysadmin-password",
            &password,
        ])
        .await;
    assert!(
        alone.fails(2).contains(
            "Prestage failed 'subcloud-2': a prestage strategy that prestages subclouds is applying"
        ),
        "{alone:?}"
    );
    sc.controller.kill();
    // What each subcloud holds now that nothing sends to it.
    let mut had = Vec::new();
    for sub in &subs {
        had.push(settled_chunk_bytes(sub).await);
    }
    sc.controller.restart().await.unwrap();

    let done = wait_strategy(&sc, "prestage", "complete").await;
    assert_eq!(done["state"], "complete");
    for name in ["subcloud-1", "subcloud-2"] {
        let s = step(&sc, name).await;
        assert_eq!(s["state"], "complete", "{s:#}");
        let shown = show_subcloud(&sc, name).await;
        assert_eq!(shown["prestage_status"], "complete", "{shown:#}");
        assert_eq!(shown["prestage_versions"], "25.09");
    }
    // Each resumed transfer sent exactly the chunks its subcloud lacked.
    let mut total = 0;
    for (i, name) in ["subcloud-1", "subcloud-2"].iter().enumerate() {
        let resumed = transfers(&sc, name);
        assert_eq!(resumed.len(), 1, "{name}: {resumed:?}");
        let (all, sent, held) = resumed[0];
        total = all;
        assert!(all > 24 * MIB, "{resumed:?}");
        assert_eq!(sent + held, all, "{name}: {resumed:?}");
        // It held at least what it had when the System Controller died (a chunk already
        // on its way may have landed since), and was sent only the rest.
        assert!(held >= had[i], "{name}: held {held}, had {}", had[i]);
    }
    assert!(
        had[0] > 0 && had[0] < total,
        "subcloud-1 was cut mid-way: {had:?}"
    );
    // The cap held: after the first second's burst, 4 MiB a second.
    let floor = Duration::from_secs_f64((total - 4 * MIB) as f64 / (4 * MIB) as f64);
    assert!(
        applied_at.elapsed() >= floor,
        "{:?} < {floor:?}",
        applied_at.elapsed()
    );

    // Each subcloud holds the release, available to deploy, verified against its signature.
    for sub in &subs {
        let shown = sub
            .convoy(&["-f", "json", "software", "show", "PRE_REL_1"])
            .await
            .json();
        assert_eq!(shown["state"], "available", "{shown:#}");
    }

    // Prestaging the same version again, for install, sends nothing: every chunk is held.
    sc.convoy(&["dc", "prestage-strategy", "delete"]).await.ok();
    sc.convoy(&[
        "dc",
        "prestage-strategy",
        "create",
        "subcloud-2",
        "--for-install",
        "--sysadmin-password",
        &password,
    ])
    .await
    .ok();
    sc.convoy(&["dc", "prestage-strategy", "apply", "--wait"])
        .await
        .ok();
    let again = transfers(&sc, "subcloud-2");
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!((again[1].1, again[1].2), (0, total), "{again:?}");
    let store = subs[1].admin().prestage_store().await.unwrap();
    assert_eq!(store.versions.len(), 1, "{store:?}");
    assert_eq!(store.versions[0].sw_version, "25.09");
    assert_eq!(store.versions[0].releases, ["PRE_REL_1"]);
    sc.convoy(&["dc", "prestage-strategy", "delete"]).await.ok();

    // The prestaged release deploys: pre-check finds it on every subcloud.
    sc.convoy(&[
        "dc",
        "sw-deploy-strategy",
        "create",
        "PRE_REL_1",
        "--max-parallel-subclouds",
        "2",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "sw-deploy", "complete").await;
    for name in ["subcloud-1", "subcloud-2"] {
        wait_field(&sc, name, "software_sync_status", "in-sync").await;
    }

    // The sysadmin password is in no log of any site.
    let encoded = base64_of(&password);
    for log in [
        sc.controller.log(),
        subs[0].controller.log(),
        subs[1].controller.log(),
    ] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            !text.contains(&password) && !text.contains(&encoded),
            "{}",
            log.display()
        );
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn refusals_a_wrong_password_and_a_failed_preparation() {
    let (sc, keys) = system_controller().await;
    let subs = [
        subcloud(&keys).await,
        subcloud(&keys).await,
        subcloud(&keys).await,
    ];
    let bundle = big_release(&sc, &keys, "PRE_REL_2", 2).await;
    register(&sc, &subs).await;
    for name in ["subcloud-1", "subcloud-2", "subcloud-3"] {
        wait_field(&sc, name, "identity_sync_status", "in-sync").await;
    }
    let password = sc.controller.admin_password().unwrap();
    let encoded = base64_of(&password);

    // Seed 003's curl cases and the rest of §3.3's prestage messages: 400, nothing stored.
    let admin = sc.admin_token();
    let cases: Vec<(String, u16, &str)> = vec![
        ("abc".into(), 400, "Request body is malformed."),
        (
            r#"{"type": "prestage"}"#.into(),
            400,
            "subcloud sysadmin_password required",
        ),
        (
            r#"{"type": "prestage", "sysadmin_password": "abc"}"#.into(),
            400,
            "Failed to decode subcloud sysadmin_password, verify the password is base64 encoded",
        ),
        (
            format!(r#"{{"type": "prestage", "sysadmin_password": "{encoded}", "force": "abc"}}"#),
            400,
            "Invalid value 'abc' for force - must be True/False or 'true'/'false'",
        ),
        (
            format!(
                r#"{{"type": "prestage", "sysadmin_password": "{encoded}", "release": "25.9"}}"#
            ),
            400,
            "Specified release format is not supported. Version format must be MM.mm.",
        ),
        (
            format!(
                r#"{{"type": "prestage", "sysadmin_password": "{encoded}", "release": "26.03"}}"#
            ),
            400,
            "Error: invalid release version parameter. 26.03 is not a supported release version (25.09)",
        ),
        (
            format!(
                r#"{{"type": "prestage", "sysadmin_password": "{encoded}", "max-parallel-subclouds": 300}}"#
            ),
            400,
            "Invalid max-parallel-subclouds value: 300. For prestage, the value must be between 1 and 250.",
        ),
    ];
    for (body, status, message) in cases {
        let (got, error) = create_raw(&sc, admin, &body).await;
        assert_eq!(got, status, "{body}: {error}");
        assert_eq!(error["description"], message, "{body}");
    }
    assert!(sc.admin().dc_strategy_steps().await.unwrap().is_empty());
    // As curl sends it (`Accept: */*`): dcmanager's HTML, byte for byte, which its CLI
    // scrapes; JSON when asked for.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let post = |accept: &'static str| {
        http.post(format!("{}/v1.0/sw-update-strategy", sc.url()))
            .header("X-Auth-Token", admin)
            .header("Content-Type", "application/json")
            .header("Accept", accept)
            .body(r#"{"type": "prestage"}"#)
            .send()
    };
    let html = post("*/*").await.unwrap();
    assert_eq!(html.status(), 400);
    assert_eq!(
        html.text().await.unwrap(),
        "<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad \
         Request</h1>\n  The server could not comply with the request since\r\nit is either \
         malformed or otherwise incorrect.\r\n<br /><br />\nsubcloud sysadmin_password \
         required\n\n\n </body>\n</html>"
    );
    let json = post("application/json").await.unwrap();
    assert_eq!(
        json.text().await.unwrap(),
        r#"{"code":400,"title":"Bad Request","description":"subcloud sysadmin_password required"}"#
    );

    // A single unmanaged subcloud: the orchestrator's 422 with the skip message.
    sc.convoy(&["dc", "subcloud", "unmanage", "subcloud-3"])
        .await
        .ok();
    let (got, error) = create_raw(
        &sc,
        admin,
        &format!(r#"{{"type": "prestage", "sysadmin_password": "{encoded}", "cloud_name": "subcloud-3"}}"#),
    )
    .await;
    assert_eq!(got, 422, "{error}");
    assert_eq!(
        error["description"],
        "Unable to create strategy of type 'prestage': Bad strategy request: Prestage skipped 'subcloud-3': Subcloud is not managed."
    );

    // A wrong password: each subcloud refuses it at the precheck.
    let created = sc
        .convoy(&[
            "dc",
            "prestage-strategy",
            "create",
            "--sysadmin-password",
            "not-the-password",
        ])
        .await;
    created.ok();
    let steps = sc.admin().dc_strategy_steps().await.unwrap();
    assert_eq!(
        steps.len(),
        2,
        "the unmanaged subcloud is left out: {steps:#?}"
    );
    sc.convoy(&["dc", "prestage-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "prestage", "failed").await;
    for name in ["subcloud-1", "subcloud-2"] {
        let s = step(&sc, name).await;
        assert_eq!(s["state"], "failed");
        assert_eq!(
            s["details"],
            format!(
                "prestage-precheck: Prestage failed '{name}': the subcloud refused the sysadmin password; give the password of its admin"
            ),
        );
        assert_eq!(show_subcloud(&sc, name).await["prestage_status"], "failed");
    }
    sc.convoy(&["dc", "prestage-strategy", "delete"]).await.ok();

    // One subcloud alone: a wrong password is refused at once, the right one prestages it in
    // the background.
    let wrong = sc
        .convoy(&[
            "dc",
            "subcloud",
            "prestage",
            "subcloud-2",
            "--sysadmin-password",
            "nope",
        ])
        .await;
    assert!(
        wrong
            .fails(2)
            .contains("Prestage failed 'subcloud-2': the subcloud refused the sysadmin password"),
        "{wrong:?}"
    );
    let started = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "subcloud",
            "prestage",
            "subcloud-2",
            "--sysadmin-password",
            &password,
        ])
        .await
        .json();
    assert_eq!(started["prestage_status"], "prestaging", "{started:#}");
    assert_eq!(started["prestage_software_version"], "25.09");
    let done = wait_field(&sc, "subcloud-2", "prestage_status", "complete").await;
    assert_eq!(done["prestage_versions"], "25.09");
    let store = subs[1].admin().prestage_store().await.unwrap();
    assert_eq!(store.versions[0].releases, ["PRE_REL_2"], "{store:?}");

    // The release's bundle is damaged on the System Controller: the first subcloud's step
    // fails preparing it, and the next fails at once, without preparing it again.
    let stored = sc
        .controller
        .data_dir()
        .join("patches")
        .join("PRE_REL_2.patch");
    let mut bytes = std::fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    sc.convoy(&[
        "dc",
        "prestage-strategy",
        "create",
        "--sysadmin-password",
        &password,
        "--subcloud-apply-type",
        "serial",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "prestage-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "prestage", "failed").await;
    let first = step(&sc, "subcloud-1").await;
    let second = step(&sc, "subcloud-2").await;
    for (name, s) in [("subcloud-1", &first), ("subcloud-2", &second)] {
        assert_eq!(s["state"], "failed");
        let details = s["details"].as_str().unwrap();
        assert!(
            details.starts_with(&format!(
                "prestage-preparing-packages: Prestage failed '{name}': preparing the packages failed: the bundle of PRE_REL_2 has SHA-256"
            )),
            "{details}"
        );
    }
    let log = std::fs::read_to_string(sc.controller.log()).unwrap();
    assert_eq!(log.matches("prestage preparation failed").count(), 1);
    drop(bundle);

    // Neither the password nor its encoding is in any log.
    for log in [
        sc.controller.log(),
        subs[0].controller.log(),
        subs[1].controller.log(),
    ] {
        let text = std::fs::read_to_string(log).unwrap();
        assert!(
            !text.contains(&password) && !text.contains(&encoded),
            "{}",
            log.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sw_deploy_with_prestage_ships_the_release_then_deploys_it() {
    let (sc, keys) = system_controller().await;
    let subs = [subcloud(&keys).await, subcloud(&keys).await];
    big_release(&sc, &keys, "PRE_REL_3", 3).await;
    register(&sc, &subs).await;
    for name in ["subcloud-1", "subcloud-2"] {
        wait_field(&sc, name, "identity_sync_status", "in-sync").await;
        wait_field(&sc, name, "software_sync_status", "out-of-sync").await;
    }
    let password = sc.controller.admin_password().unwrap();

    // Without prestage, the subclouds lack the release.
    sc.convoy(&[
        "dc",
        "sw-deploy-strategy",
        "create",
        "PRE_REL_3",
        "subcloud-1",
    ])
    .await
    .ok();
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "sw-deploy", "failed").await;
    assert_eq!(
        step(&sc, "subcloud-1").await["details"],
        "sw-deploy pre-check: Release PRE_REL_3 is not prestaged."
    );
    sc.convoy(&["dc", "sw-deploy-strategy", "delete"])
        .await
        .ok();

    let created = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "sw-deploy-strategy",
            "create",
            "PRE_REL_3",
            "--with-prestage",
            "--sysadmin-password",
            &password,
            "--max-parallel-subclouds",
            "2",
        ])
        .await
        .json();
    assert_eq!(created["with_prestage"], "with_prestage", "{created:#}");
    let raw = sc.admin().dc_strategy("sw-deploy").await.unwrap();
    assert_eq!(raw["extra-args"]["with_prestage"], true);
    assert_eq!(raw["extra-args"]["for_sw_deploy"], true);
    assert_eq!(raw["extra-args"]["prestage-software-version"], "25.09");
    assert_eq!(raw["extra-args"]["sysadmin_password"], "******");
    sc.convoy(&["dc", "sw-deploy-strategy", "apply"]).await.ok();
    wait_strategy(&sc, "sw-deploy", "complete").await;
    for name in ["subcloud-1", "subcloud-2"] {
        wait_field(&sc, name, "software_sync_status", "in-sync").await;
        let shown = show_subcloud(&sc, name).await;
        // The prestage phases ran: the release was sent, then the subcloud's prestage
        // completed.
        assert_eq!(shown["prestage_status"], "complete", "{shown:#}");
        assert_eq!(shown["deploy_status"], "complete");
        let sent = transfers(&sc, name);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0].1, sent[0].0, "{sent:?}");
    }
    let log = std::fs::read_to_string(sc.controller.log()).unwrap();
    assert_eq!(log.matches("prestage preparation ready").count(), 1);
}

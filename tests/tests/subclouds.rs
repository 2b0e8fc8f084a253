//! A System Controller with real subclouds (each its own convoyd on HTTPS): registration and
//! its refusals, dcmanager's tables and error bodies, manage/unmanage/delete, and the audit
//! (availability, software sync, alarms).

use std::time::Duration;

use convoy_api::dc::Form;
use convoy_core::host::Personality;
use convoy_core::role::Role;
use convoy_e2e::convoy_launch::{Deadline, wait_until_every};
use convoy_e2e::{HostSpec, Site};
use serde_json::Value;

const AUDIT_ARGS: [&str; 4] = ["--audit-interval", "1", "--offline-after", "2"];

/// The System Controller: trusts a patch key, audits every second.
async fn system_controller() -> (Site, convoy_e2e::PatchKeys) {
    let (mut sc, keys) = Site::with_patch_key(&[]).await;
    sc.controller
        .options
        .extra_args
        .extend(AUDIT_ARGS.iter().map(|a| a.to_string()));
    sc.controller.restart().await.expect("restarts");
    (sc, keys)
}

/// A subcloud: its own convoyd on HTTPS trusting the same patch key, with `hosts`.
async fn subcloud(keys: &convoy_e2e::PatchKeys, hosts: &[HostSpec]) -> Site {
    let public = keys.public.display().to_string();
    let mut site = Site::with_args(true, &["--trusted-key", &public]).await;
    for host in hosts {
        site.start_agent(host);
    }
    site.wait_available(hosts.len()).await;
    site
}

fn add_args<'a>(name: &'a str, url: &'a str, password: &'a str) -> Vec<&'a str> {
    vec![
        "dc",
        "subcloud",
        "add",
        "--name",
        name,
        "--bootstrap-address",
        url,
        "--sysadmin-password",
        password,
    ]
}

async fn show(sc: &Site, name: &str) -> Value {
    sc.convoy(&["-f", "json", "dc", "subcloud", "show", name])
        .await
        .json()
}

/// Waits until `subcloud show NAME` has `field` = `value`.
async fn wait_field(sc: &Site, name: &str, field: &str, value: &str) -> Value {
    let deadline = Deadline::after(Duration::from_secs(30));
    wait_until_every(
        deadline,
        Duration::from_millis(250),
        &format!("{name} {field} = {value}"),
        || async {
            let shown = show(sc, name).await;
            (shown[field] == value).then_some(shown)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn subclouds_are_registered_managed_audited_and_deleted() {
    let (sc, keys) = system_controller().await;
    let mut sub1 = subcloud(
        &keys,
        &[HostSpec::new("controller-0", Personality::Controller)],
    )
    .await;
    let sub2 = subcloud(&keys, &[]).await;
    let sub3 = subcloud(&keys, &[]).await;
    let password1 = sub1.controller.admin_password().unwrap();
    let url1 = sub1.url();

    // Refusals store nothing.
    let wrong = sc
        .convoy(&add_args("subcloud-1", &url1, "not-the-password"))
        .await;
    assert!(
        wrong.fails(2).contains("the sysadmin password is wrong"),
        "{wrong:?}"
    );
    let closed = format!(
        "https://127.0.0.1:{}",
        convoy_e2e::convoy_launch::free_port().unwrap()
    );
    let unreachable = sc
        .convoy(&add_args("subcloud-1", &closed, &password1))
        .await;
    assert!(
        unreachable.fails(2).contains("cannot reach it"),
        "{unreachable:?}"
    );
    let mut bad_group = add_args("subcloud-1", &url1, &password1);
    bad_group.extend(["--group", "no-such-group"]);
    assert_eq!(
        sc.convoy(&bad_group).await.fails(2),
        "error: Invalid group_id"
    );
    let listed = sc
        .convoy(&["-f", "json", "dc", "subcloud", "list"])
        .await
        .json();
    assert_eq!(listed, Value::Array(vec![]));
    // Sub1's users are only its own admin: nothing was made there.
    assert_eq!(sub1.admin().users().await.unwrap().len(), 1);

    // The add: unmanaged, complete, its software status unknown; the certificate is pinned.
    let mut add = add_args("subcloud-1", &url1, &password1);
    add.extend(["--description", "Ottawa Site", "--location", "YOW"]);
    let added = sc
        .convoy(&[&["-f", "json"][..], &add].concat())
        .await
        .json();
    assert_eq!(added["management"], "unmanaged");
    assert_eq!(added["deploy_status"], "complete");
    assert_eq!(added["software_sync_status"], "unknown");
    assert_eq!(added["software_version"], "25.09");
    let duplicate = sc.convoy(&add_args("subcloud-1", &url1, &password1)).await;
    assert_eq!(
        duplicate.fails(2),
        "error: Subcloud with name subcloud-1 already exists"
    );
    // The service account is the only user added on the subcloud, and an admin there.
    let users = sub1.admin().users().await.unwrap();
    let service: Vec<_> = users.iter().filter(|u| u.name != "admin").collect();
    assert_eq!(service.len(), 1);
    assert!(service[0].name.starts_with("systemcontroller-"));
    let sc_log = std::fs::read_to_string(sc.controller.log()).unwrap();
    assert!(
        !sc_log.contains(&password1),
        "the sysadmin password is logged"
    );

    // dcmanager's multipart add: bootstrap values as YAML naming the subcloud, extra keys kept.
    // Its client has no --description or --location on add: they come from the values.
    let yaml = "name: subcloud-2\ndescription: Kanata\nlocation: YOW\nsystem_mode: simplex\n\
                management_subnet: fd01:82::0/64\n\
                management_start_address: fd01:82::2\nmanagement_end_address: fd01:82::11\n\
                management_gateway_address: fd01:82::1\n\
                systemcontroller_gateway_address: fd01:81::1\nunused_key: kept\n";
    let password2 = base64_encode(&sub2.controller.admin_password().unwrap());
    let form = Form::new()
        .file("bootstrap_values", "bootstrap_values.yaml", yaml)
        .text("bootstrap-address", sub2.url())
        .text("sysadmin_password", password2);
    let added2 = sc.admin().dc_add_subcloud(&form).await.unwrap();
    assert_eq!(added2.name, "subcloud-2");
    assert_eq!(added2.management_subnet.as_deref(), Some("fd01:82::0/64"));
    assert_eq!(added2.description.as_deref(), Some("Kanata"));
    assert_eq!(added2.location.as_deref(), Some("YOW"));
    let (url3, password3) = (sub3.url(), sub3.controller.admin_password().unwrap());
    sc.convoy(&add_args("subcloud-3", &url3, &password3))
        .await
        .ok();
    // The service accounts' passwords as stored: checked at the end against every log,
    // every response fetched and every file others may read.
    let stored = stored_service_passwords(sc.controller.data_dir()).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    let mut bodies = vec![
        added.to_string(),
        format!("{added2:?}"),
        dc_bodies(&sc, &["subcloud-1", "subcloud-2", "subcloud-3"]).await,
    ];

    // subcloud show: seed 000's fields (Convoy audits only the software endpoint).
    let table = sc.convoy(&["dc", "subcloud", "show", "subcloud-2"]).await;
    let fields: Vec<&str> = table
        .ok()
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .map(|l| l.split('|').nth(1).unwrap().trim())
        .collect();
    assert_eq!(
        fields,
        [
            "id",
            "name",
            "description",
            "location",
            "software_version",
            "management",
            "availability",
            "deploy_status",
            "management_subnet",
            "management_start_ip",
            "management_end_ip",
            "management_gateway_ip",
            "systemcontroller_gateway_ip",
            "group_id",
            "created_at",
            "updated_at",
            "identity_sync_status",
            "software_sync_status"
        ]
    );
    assert!(
        table
            .ok()
            .contains("| description                 | Kanata")
    );
    assert!(
        table
            .ok()
            .contains("| management_subnet           | fd01:82::0/64")
    );

    // Roles: a reader lists but changes nothing.
    let reader = sc.add_user("watcher", Role::Reader).await;
    sc.convoy_as(&reader, &["dc", "subcloud", "list"])
        .await
        .ok();
    for change in [
        vec!["dc", "subcloud", "manage", "subcloud-1"],
        vec!["dc", "subcloud", "delete", "subcloud-3"],
        vec!["dc", "subcloud", "update", "subcloud-1", "--location", "x"],
        vec!["dc", "subcloud-group", "add", "--name", "east"],
    ] {
        let refused = sc.convoy_as(&reader, &change).await;
        assert!(refused.fails(1).contains("forbidden"), "{refused:?}");
    }

    // Manage (once the first audit has seen them online): in sync within an audit or two.
    wait_field(&sc, "subcloud-1", "availability", "online").await;
    wait_field(&sc, "subcloud-2", "availability", "online").await;
    sc.convoy(&["dc", "subcloud", "manage", "subcloud-1"])
        .await
        .ok();
    sc.convoy(&["dc", "subcloud", "manage", "subcloud-2"])
        .await
        .ok();
    let already = sc.convoy(&["dc", "subcloud", "manage", "subcloud-1"]).await;
    assert_eq!(
        already.fails(2),
        "error: Bad subcloud request: Subcloud subcloud-1 already managed"
    );
    wait_field(&sc, "subcloud-1", "software_sync_status", "in-sync").await;
    wait_field(&sc, "subcloud-2", "software_sync_status", "in-sync").await;
    let shown = wait_field(&sc, "subcloud-3", "availability", "online").await;
    assert_eq!(shown["software_sync_status"], "unknown");
    assert_eq!(shown["identity_sync_status"], "unknown");

    // Identity sync: a user added on the System Controller logs in to every managed subcloud
    // within an audit, with the same password; the sysadmin password is the System
    // Controller's everywhere; a local change is undone at the next audit; an unmanaged
    // subcloud is left alone.
    let carol = sc.add_user("carol", Role::Operator).await;
    // Polled through the user list: failed logins would be throttled.
    let has_carol = || async {
        let users = sub1.admin().users().await.unwrap();
        users.iter().any(|u| u.name == "carol").then_some(())
    };
    let deadline = Deadline::after(Duration::from_secs(30));
    wait_until_every(
        deadline,
        Duration::from_millis(250),
        "carol on subcloud-1",
        has_carol,
    )
    .await
    .unwrap();
    sub1.controller
        .client()
        .unwrap()
        .login("carol", &carol[1].1)
        .await
        .expect("carol logs in to subcloud-1 with her password");
    let sc_admin_password = sc.controller.admin_password().unwrap();
    sub2.controller
        .client()
        .unwrap()
        .login("admin", &sc_admin_password)
        .await
        .expect("the System Controller's admin password works on subcloud-2");
    assert!(
        sub3.controller
            .client()
            .unwrap()
            .login("carol", &carol[1].1)
            .await
            .is_err()
    );
    sub1.admin().delete_user("carol").await.unwrap();
    let deadline = Deadline::after(Duration::from_secs(30));
    wait_until_every(
        deadline,
        Duration::from_millis(250),
        "carol back on subcloud-1",
        has_carol,
    )
    .await
    .unwrap();
    assert_eq!(
        show(&sc, "subcloud-1").await["identity_sync_status"],
        "in-sync"
    );
    let list = sc.convoy(&["dc", "subcloud", "list"]).await;
    assert_eq!(
        list.ok(),
        "+----+------------+------------+--------------+---------+\n\
         | id | name       | management | availability | sync    |\n\
         +----+------------+------------+--------------+---------+\n\
         | 1  | subcloud-1 | managed    | online       | in-sync |\n\
         | 2  | subcloud-2 | managed    | online       | in-sync |\n\
         | 3  | subcloud-3 | unmanaged  | online       | unknown |\n\
         +----+------------+------------+--------------+---------+\n"
    );

    // A patch applied on the System Controller: out of sync until the subcloud deploys it.
    let patch = sc
        .build_worker_patch(&keys, "PATCH_DC", "/opt/dc.txt", "dc\n", &[])
        .await;
    let patch_arg = patch.display().to_string();
    sc.convoy(&["patch", "upload", &patch_arg]).await.ok();
    sc.convoy(&["patch", "apply", "PATCH_DC"]).await.ok();
    wait_field(&sc, "subcloud-1", "software_sync_status", "out-of-sync").await;
    let alarms = sc.admin().alarms().await.unwrap();
    assert!(
        alarms
            .iter()
            .any(|a| a.alarm_id == "280.002"
                && a.entity == "subcloud=subcloud-1.resource=software"),
        "{alarms:?}"
    );
    sub1.convoy(&["patch", "upload", &patch_arg]).await.ok();
    sub1.convoy(&["patch", "apply", "PATCH_DC"]).await.ok();
    wait_field(&sc, "subcloud-1", "software_sync_status", "in-sync").await;
    assert_eq!(
        show(&sc, "subcloud-2").await["software_sync_status"],
        "out-of-sync"
    );

    // A management-affecting alarm on a subcloud shows on the System Controller.
    sub1.admin()
        .raise_alarm(&convoy_api::alarms::NewAlarm {
            alarm_id: "100.101".into(),
            entity: Some("host=controller-0".into()),
            severity: convoy_core::alarm::Severity::Major,
            reason: "test".into(),
            mgmt_affecting: true,
        })
        .await
        .unwrap();
    let deadline = Deadline::after(Duration::from_secs(30));
    wait_until_every(
        deadline,
        Duration::from_millis(250),
        "the alarm audited",
        || async {
            let shown = sc.admin().dc_subcloud("subcloud-1", false).await.unwrap();
            (shown.audit?.mgmt_affecting_alarms == 1).then_some(())
        },
    )
    .await
    .unwrap();

    // A stopped subcloud goes offline (with 280.001), and online again when restarted.
    sub1.controller.stop();
    wait_field(&sc, "subcloud-1", "availability", "offline").await;
    assert_eq!(
        show(&sc, "subcloud-1").await["software_sync_status"],
        "unknown"
    );
    assert!(
        sc.admin()
            .alarms()
            .await
            .unwrap()
            .iter()
            .any(|a| a.alarm_id == "280.001")
    );
    sub1.controller.restart().await.unwrap();
    wait_field(&sc, "subcloud-1", "availability", "online").await;
    wait_field(&sc, "subcloud-1", "software_sync_status", "in-sync").await;
    let deadline = Deadline::after(Duration::from_secs(10));
    wait_until_every(
        deadline,
        Duration::from_millis(250),
        "280.001 cleared",
        || async {
            let alarms = sc.admin().alarms().await.unwrap();
            (!alarms.iter().any(|a| a.alarm_id == "280.001")).then_some(())
        },
    )
    .await
    .unwrap();

    // Delete: only unmanaged; the subcloud's alarms go with it.
    let managed = sc.convoy(&["dc", "subcloud", "delete", "subcloud-2"]).await;
    assert_eq!(
        managed.fails(2),
        "error: Cannot delete a subcloud that is 'managed' status"
    );
    sc.convoy(&["dc", "subcloud", "unmanage", "subcloud-2"])
        .await
        .ok();
    assert_eq!(
        show(&sc, "subcloud-2").await["software_sync_status"],
        "unknown"
    );
    sc.convoy(&["dc", "subcloud", "delete", "subcloud-2"])
        .await
        .ok();
    let missing = sc.convoy(&["dc", "subcloud", "show", "subcloud-2"]).await;
    assert_eq!(missing.fails(2), "error: Subcloud not found");
    assert!(
        !sc.admin()
            .alarms()
            .await
            .unwrap()
            .iter()
            .any(|a| a.entity == "subcloud=subcloud-2")
    );
    // No response carries the service account's password, nor any file readable by others.
    let detail = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "subcloud",
            "show",
            "subcloud-1",
            "--detail",
        ])
        .await
        .json();
    assert_eq!(detail["oam_floating_ip"], "127.0.0.1");
    assert_eq!(detail["region_name"], "subcloud-1");
    bodies.push(detail.to_string());
    bodies.push(dc_bodies(&sc, &["subcloud-1", "subcloud-3"]).await);
    let sites = [&sc, &sub1, &sub2, &sub3];
    assert_secret_kept(&stored, &bodies, &sites);
}

/// Each subcloud's service account and password as the System Controller stores them.
async fn stored_service_passwords(data_dir: &std::path::Path) -> Vec<(String, String)> {
    let url = format!("sqlite://{}?mode=ro", data_dir.join("convoy.db").display());
    let pool = sqlx::sqlite::SqlitePool::connect(&url).await.unwrap();
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT service_user, service_password FROM subclouds ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    for (user, password) in &rows {
        assert!(user.starts_with("systemcontroller-"), "{user}");
        assert!(password.len() >= 32, "a short service password for {user}");
    }
    rows
}

/// The raw bodies of dcmanager's reads of the System Controller (list, show and detail of
/// each subcloud, the Default group's subclouds), asked for as JSON.
async fn dc_bodies(sc: &Site, names: &[&str]) -> String {
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let mut paths = vec![
        "/v1.0/subclouds".to_string(),
        "/v1.0/subcloud-groups/1/subclouds".to_string(),
    ];
    for name in names {
        paths.push(format!("/v1.0/subclouds/{name}"));
        paths.push(format!("/v1.0/subclouds/{name}/detail"));
    }
    let mut all = String::new();
    for path in paths {
        let response = http
            .get(format!("{}{path}", sc.url()))
            .header("X-Auth-Token", sc.admin_token())
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("subcloud-"), "{path}: {body}");
        all.push_str(&body);
        all.push('\n');
    }
    all
}

/// No stored service password is in any log under the sites' temporary directories, in any
/// response body fetched, or in any file under the System Controller's data directory that
/// its group or others may read (the database and its WAL hold it, mode 0600).
fn assert_secret_kept(stored: &[(String, String)], bodies: &[String], sites: &[&Site]) {
    use std::os::unix::fs::PermissionsExt;
    let mut logs = vec![];
    for site in sites {
        logs.extend(
            files_under(site.dir.path())
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "log")),
        );
    }
    assert!(logs.len() >= sites.len(), "{logs:?}");
    let data_files = files_under(sites[0].controller.data_dir());
    let mut holders = vec![];
    for (user, password) in stored {
        for log in &logs {
            let text = String::from_utf8_lossy(&std::fs::read(log).unwrap()).into_owned();
            assert!(
                !text.contains(password.as_str()),
                "{user}'s password is in {}",
                log.display()
            );
        }
        for body in bodies {
            assert!(
                !body.contains(password.as_str()),
                "{user}'s password is in a response"
            );
        }
        for file in &data_files {
            let Ok(bytes) = std::fs::read(file) else {
                continue;
            };
            if !bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes())
            {
                continue;
            }
            holders.push(file.clone());
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "{} holds {user}'s password and is readable by others (mode {mode:o})",
                file.display()
            );
        }
    }
    // The check above saw the password where it is stored.
    assert!(
        holders.iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("convoy.db")),
        "the stored password was found in no file: {data_files:?}"
    );
    assert_no_world_readable_file(sites[0].controller.data_dir());
}

/// Every regular file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![];
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(path),
                Ok(t) if t.is_file() => files.push(path),
                _ => {}
            }
        }
    }
    files
}

/// Standard base64, as dcmanager's client encodes the sysadmin password.
fn base64_encode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn assert_no_world_readable_file(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            continue;
        }
        if name.starts_with("convoy.db") {
            let mode = entry.metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is readable by others", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_dcmanagers_html_unless_json_is_asked_for_and_groups_follow_its_rules() {
    let sc = Site::with_args(false, &AUDIT_ARGS).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}/v1.0{path}", sc.url());
    let get = |path: &str, accept: &str| {
        http.get(url(path))
            .header("X-Auth-Token", sc.admin_token())
            .header("Accept", accept)
            .send()
    };
    let html = get("/subclouds/nosuch", "*/*").await.unwrap();
    assert_eq!(html.status(), 404);
    assert_eq!(html.headers()["content-type"], "text/html; charset=UTF-8");
    assert_eq!(
        html.text().await.unwrap(),
        "<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n  <h1>404 Not \
         Found</h1>\n  The resource could not be found.<br /><br />\nSubcloud not found\n\n\n \
         </body>\n</html>"
    );
    let json = get("/subclouds/nosuch", "application/json").await.unwrap();
    assert_eq!(json.status(), 404);
    assert_eq!(
        json.text().await.unwrap(),
        r#"{"code":404,"title":"Not Found","description":"Subcloud not found"}"#
    );
    let bad = http
        .post(url("/subcloud-groups/"))
        .header("X-Auth-Token", sc.admin_token())
        .json(&serde_json::json!({"name": "Default", "description": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        bad.text().await.unwrap(),
        "<html>\n <head>\n  <title>400 Bad Request</title>\n </head>\n <body>\n  <h1>400 Bad \
         Request</h1>\n  The server could not comply with the request since\r\nit is either \
         malformed or otherwise incorrect.\r\n<br /><br />\nInvalid group name\n\n\n \
         </body>\n</html>"
    );
    let unauthenticated = http
        .get(url("/subclouds"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    let body: Value = unauthenticated.json().await.unwrap();
    assert_eq!(body["title"], "Unauthorized");

    // The Keystone token carries a catalog with the dcmanager endpoint.
    let password = sc.controller.admin_password().unwrap();
    let token: Value = http
        .post(format!("{}/v3/auth/tokens", sc.url()))
        .json(
            &serde_json::json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "admin", "password": password,
                                   "domain": {"name": "Default"}}}}}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let catalog = &token["token"]["catalog"][0];
    assert_eq!(catalog["type"], "dcmanager");
    assert_eq!(
        catalog["endpoints"][0]["url"],
        format!("{}/v1.0", sc.url()).as_str()
    );

    // Groups: Default always there; add, show, update, list-subclouds, delete.
    let listed = sc.convoy(&["dc", "subcloud-group", "list"]).await;
    assert_eq!(
        listed.ok(),
        "+----+---------+------------------------+\n\
         | id | name    | description            |\n\
         +----+---------+------------------------+\n\
         | 1  | Default | Default Subcloud Group |\n\
         +----+---------+------------------------+\n"
    );
    let added = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "subcloud-group",
            "add",
            "--name",
            "east",
            "--description",
            "East coast",
            "--update-apply-type",
            "serial",
            "--max-parallel-subclouds",
            "5",
        ])
        .await
        .json();
    assert_eq!(added["id"], 2);
    assert_eq!(added["update apply type"], "serial");
    let duplicate = sc
        .convoy(&["dc", "subcloud-group", "add", "--name", "east"])
        .await;
    assert_eq!(
        duplicate.fails(2),
        "error: A subcloud group with this name already exists"
    );
    let bad_parallel = sc
        .convoy(&[
            "dc",
            "subcloud-group",
            "update",
            "east",
            "--max-parallel-subclouds",
            "0",
        ])
        .await;
    assert_eq!(
        bad_parallel.fails(2),
        "error: Invalid group max_parallel_subclouds"
    );
    let updated = sc
        .convoy(&[
            "-f",
            "json",
            "dc",
            "subcloud-group",
            "update",
            "2",
            "--description",
            "East",
        ])
        .await
        .json();
    assert_eq!(updated["description"], "East");
    assert_ne!(updated["updated_at"], "None");
    sc.convoy(&["dc", "subcloud-group", "list-subclouds", "east"])
        .await
        .ok();
    let default = sc
        .convoy(&["dc", "subcloud-group", "delete", "Default"])
        .await;
    assert_eq!(
        default.fails(2),
        "error: Default Subcloud Group may not be deleted"
    );
    sc.convoy(&["dc", "subcloud-group", "delete", "east"])
        .await
        .ok();
    let gone = sc.convoy(&["dc", "subcloud-group", "show", "east"]).await;
    assert_eq!(gone.fails(2), "error: Subcloud Group not found");
}

/// Keystone over HTTPS, as StarlingX's own dcmanager CLI (keystoneauth1) logs in: the `/v3`
/// discovery document's `self` link and the token's catalog name the scheme convoyd serves
/// (the discovery document said `http://` on an HTTPS controller; keystoneauth 5.18 keeps the
/// scheme of the URL it was given, so the real client was not hurt, but a client that follows
/// the link would send the password in clear text to an HTTPS port).
#[tokio::test]
async fn keystone_links_name_https_on_an_https_controller() {
    let sc = Site::with_args(true, &[]).await;
    let base = sc.url();
    assert!(base.starts_with("https://"), "{base}");
    let pem = std::fs::read(sc.controller.ca_cert().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let get = |path: &str| {
        let request = http.get(format!("{base}{path}"));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    for path in ["/v3", "/v3/"] {
        let discovery = get(path).await;
        assert_eq!(
            discovery["version"]["links"][0]["href"],
            format!("{base}/v3/").as_str(),
            "{discovery}"
        );
    }
    let versions = get("/").await;
    assert_eq!(
        versions["versions"][1]["links"][0]["href"],
        format!("{base}/v3/").as_str(),
        "{versions}"
    );
    // The login as keystoneauth sends it, domains and project scope included.
    let password = sc.controller.admin_password().unwrap();
    let login = http
        .post(format!("{base}/v3/auth/tokens"))
        .json(&serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "password": password, "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 201);
    assert!(login.headers().contains_key("x-subject-token"));
    let token: Value = login.json().await.unwrap();
    let endpoints = token["token"]["catalog"][0]["endpoints"]
        .as_array()
        .unwrap();
    assert_eq!(endpoints.len(), 3);
    for endpoint in endpoints {
        assert_eq!(
            endpoint["url"],
            format!("{base}/v1.0").as_str(),
            "{endpoint}"
        );
    }
}

#[tokio::test]
async fn the_dc_demo_shows_three_subclouds_in_sync_prestages_and_deploys_a_release_to_them() {
    let binaries = convoy_e2e::convoy_launch::Binaries::locate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(&binaries.convoy)
            .args(["demo", "--dc", "--once", "--dir"])
            .arg(dir.path())
            .env_remove("CARGO")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the demo finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.starts_with("Convoy demo: a System Controller and three subclouds"),
        "{stdout}"
    );
    for name in ["subcloud-1", "subcloud-2", "subcloud-3"] {
        assert!(
            stdout.contains(&format!(
                "| {}  | {name} | managed    | online       | in-sync |",
                &name[9..]
            )),
            "{name} not online and in sync in {stdout}"
        );
    }
    // The release was prestaged to every subcloud, then deployed with the sw-deploy
    // strategy: each subcloud's step completed in both.
    assert!(
        stdout.contains("$ convoy dc prestage-strategy apply --wait"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| prestage_status             | complete"),
        "{stdout}"
    );
    let (prestage, deploy) = stdout
        .split_once("==> Deploying it on the subclouds")
        .expect("a deploy after the prestage");
    for name in ["subcloud-1", "subcloud-2", "subcloud-3"] {
        let done = format!("  {name}  complete");
        assert!(
            prestage.contains(&done) && deploy.contains(&done),
            "{name}'s steps did not complete in {stdout}"
        );
    }
    assert!(stdout.contains("export CONVOY_URL="), "{stdout}");
}

//! Bad input gets a 4xx with `{"error": {"code", "message": "<field>: <reason>"}}` and changes
//! nothing.

use convoy_e2e::{Site, three_hosts};
use reqwest::Method;
use serde_json::{Value, json};

struct Raw {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Raw {
    async fn send(&self, method: Method, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.url))
            .header("X-Auth-Token", &self.token)
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: error body is not JSON ({e}): {text:?}"));
        (status, body)
    }

    /// Asserts a 4xx JSON error whose message starts with `prefix`.
    async fn refused(&self, method: Method, path: &str, body: &str, status: u16, prefix: &str) {
        let (got, error) = self.send(method, path, body).await;
        assert_eq!(got, status, "{path} {body}: {error}");
        let message = error["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{error}"));
        assert!(error["error"]["code"].is_string(), "{error}");
        assert!(
            message.starts_with(prefix),
            "{path} {body}: expected {prefix:?}, got {message:?}"
        );
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_naming_the_field_and_change_nothing() {
    let site = Site::with_hosts(&three_hosts()[..1]).await;
    let raw = Raw {
        http: reqwest::Client::new(),
        url: site.url(),
        token: site.admin_token().to_string(),
    };
    let users_before = site.admin().users().await.unwrap();
    let hosts_before = site.admin().hosts().await.unwrap();
    let post = Method::POST;

    // Users.
    raw.refused(post.clone(), "/v1/users", "{", 400, "body: malformed JSON")
        .await;
    raw.refused(post.clone(), "/v1/users", "", 400, "body: malformed JSON")
        .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "u1", "role": "reader"}"#,
        400,
        "password: is required",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "u1", "password": "long-enough", "role": "reader", "shell": "/bin/sh"}"#,
        400,
        "shell: unknown field",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": 7, "password": "long-enough", "role": "reader"}"#,
        400,
        "name: invalid type",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "u1", "password": "long-enough", "role": "root"}"#,
        400,
        "role: unknown variant `root`",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "a/b", "password": "long-enough", "role": "reader"}"#,
        400,
        "name: contains '/'",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "u1", "password": "short", "role": "reader"}"#,
        400,
        "password: must be at least 8",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"["u1"]"#,
        400,
        "body: must be a JSON object",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/users",
        r#"{"name": "u1", "password": "long-enough", "role": "reader"} {}"#,
        400,
        "body: unexpected data",
    )
    .await;
    let huge =
        json!({"name": "u1", "password": "x".repeat(300 * 1024), "role": "reader"}).to_string();
    raw.refused(post.clone(), "/v1/users", &huge, 413, "body: larger than")
        .await;

    // Releases and software-update strategies.
    raw.refused(
        Method::GET,
        "/v1/software/releases?state=nope",
        "",
        400,
        "state: \"nope\" is not a release state",
    )
    .await;
    raw.refused(
        Method::GET,
        "/v1/software/releases?colour=red",
        "",
        400,
        "colour: unknown parameter",
    )
    .await;
    raw.refused(
        Method::GET,
        "/api/orchestration/sw-nothing/strategy",
        "",
        404,
        "strategy type \"sw-nothing\"",
    )
    .await;
    raw.refused(
        post.clone(),
        "/api/orchestration/sw-upgrade/strategy",
        r#"{"controller-apply-type": "serial", "storage-apply-type": "serial", "worker-apply-type": "serial", "default-instance-action": "stop-start", "release": ["A_1", "B_1"]}"#,
        400,
        "release: names 2 releases",
    )
    .await;

    // Commands.
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands",
        r#"{"kind": "shutdown"}"#,
        400,
        "kind: unknown variant `shutdown`",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands",
        r#"{"kind": "reboot"}"#,
        400,
        "kind: only ping and facts are sent directly",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands",
        r#"{}"#,
        400,
        "kind: is required",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands?wait_seconds=soon",
        r#"{"kind": "ping"}"#,
        400,
        "wait_seconds: ",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands?wait_seconds=3600",
        r#"{"kind": "ping"}"#,
        400,
        "wait_seconds: must be at most 60",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/controller-0/commands?colour=red",
        r#"{"kind": "ping"}"#,
        400,
        "colour: ",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/hosts/nowhere/commands",
        r#"{"kind": "ping"}"#,
        404,
        "host \"nowhere\" not found",
    )
    .await;

    // Login.
    raw.refused(
        post.clone(),
        "/v3/auth/tokens",
        r#"{"auth": {}}"#,
        400,
        "auth.identity: is required",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v3/auth/tokens",
        r#"{"auth": {"identity": {"methods": ["totp"]}}}"#,
        400,
        "auth.identity.methods: must contain",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v3/auth/tokens",
        r#"{"auth": {"identity": {"methods": ["password"]}}}"#,
        400,
        "auth.identity.password: is required",
    )
    .await;

    // Enrolment: a valid token with bad fields stores nothing.
    let token = std::fs::read_to_string(site.controller.agent_token_file()).unwrap();
    let facts = json!({"capacity_cpus": 1, "capacity_memory_mib": 1, "load_cpus": 0.0, "load_memory_mib": 0,
        "boot_id": "b", "os": "o", "agent_version": "v", "state_fs_free_bytes": 1});
    let enrol = |hostname: &str, personality: &str, facts: &Value| {
        json!({"enrolment_token": token.trim(), "hostname": hostname, "personality": personality, "facts": facts}).to_string()
    };
    raw.refused(
        post.clone(),
        "/v1/agent/enrol",
        &enrol("bad host", "worker", &facts),
        400,
        "hostname: contains ' '",
    )
    .await;
    raw.refused(
        post.clone(),
        "/v1/agent/enrol",
        &enrol("h1", "router", &facts),
        400,
        "personality: unknown variant `router`",
    )
    .await;
    let mut no_cpus = facts.clone();
    no_cpus.as_object_mut().unwrap().remove("capacity_cpus");
    raw.refused(
        post.clone(),
        "/v1/agent/enrol",
        &enrol("h1", "worker", &no_cpus),
        400,
        "facts.capacity_cpus: is required",
    )
    .await;
    let mut negative = facts.clone();
    negative["capacity_cpus"] = json!(-1);
    raw.refused(
        post.clone(),
        "/v1/agent/enrol",
        &enrol("h1", "worker", &negative),
        400,
        "facts.capacity_cpus: invalid value",
    )
    .await;
    // Figures beyond any host (they once poisoned the capacity check) are refused by field.
    for (field, value, reason) in [
        (
            "capacity_memory_mib",
            json!(u64::MAX),
            "facts.capacity_memory_mib: must be at most",
        ),
        (
            "load_cpus",
            json!(-1e308),
            "facts.load_cpus: must be a number from 0",
        ),
        (
            "capacity_cpus",
            json!(u32::MAX),
            "facts.capacity_cpus: must be at most",
        ),
    ] {
        let mut huge = facts.clone();
        huge[field] = value;
        raw.refused(
            post.clone(),
            "/v1/agent/enrol",
            &enrol("h1", "worker", &huge),
            400,
            reason,
        )
        .await;
    }
    // A user token is not a host credential.
    raw.refused(
        post.clone(),
        "/v1/agent/heartbeat",
        r#"{"facts": {}}"#,
        401,
        "authentication failed: the controller does not know this host credential",
    )
    .await;

    // An agent's report names the agent run it comes from; a bad name is refused before the
    // command is even looked up.
    let identity: Value = serde_json::from_slice(
        &std::fs::read(site.agents[0].options.state_dir.join("identity.json")).unwrap(),
    )
    .unwrap();
    let as_agent = Raw {
        token: identity["credential"].as_str().unwrap().to_string(),
        ..raw
    };
    let outcome = r#"{"succeeded": true, "message": "forged", "output": null}"#;
    let report = "/v1/agent/commands/5f0c6b1e-0000-4000-8000-000000000000/outcome";
    for (query, message) in [
        ("?session=", "session: must be 1 to 64 characters"),
        (
            &*format!("?session={}", "s".repeat(65)),
            "session: must be 1 to 64 characters",
        ),
        ("?session=s&later=1", "later: unknown parameter"),
    ] {
        as_agent
            .refused(
                post.clone(),
                &format!("{report}{query}"),
                outcome,
                400,
                message,
            )
            .await;
    }
    // Well formed, for a command the host does not have: nothing is recorded.
    as_agent
        .refused(
            post.clone(),
            &format!("{report}?session=s"),
            outcome,
            404,
            "",
        )
        .await;
    let raw = Raw {
        token: site.admin_token().to_string(),
        ..as_agent
    };

    // Unknown routes and methods answer in JSON too.
    raw.refused(
        Method::GET,
        "/v1/nothing-here",
        "",
        404,
        "no route /v1/nothing-here",
    )
    .await;
    raw.refused(Method::PUT, "/v1/hosts", "", 405, "/v1/hosts does not take")
        .await;

    assert_eq!(site.admin().users().await.unwrap(), users_before);
    let hosts_after = site.admin().hosts().await.unwrap();
    assert_eq!(
        hosts_after.iter().map(|h| &h.hostname).collect::<Vec<_>>(),
        hosts_before.iter().map(|h| &h.hostname).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_cli_refuses_bad_arguments_in_one_line_with_exit_code_2() {
    let site = Site::controller_only(None).await;
    let cases: &[(&[&str], &str)] = &[
        (&["host", "frobnicate"], "unrecognized subcommand"),
        (&["host", "list", "--format", "xml"], "invalid value 'xml'"),
        (
            &["host", "list", "--column", "colour"],
            "--column: unknown column \"colour\"",
        ),
        (
            &["user", "add", "bob", "--role", "root"],
            "is not one of reader, operator, admin",
        ),
        (&["user", "add", "bob"], "--role <ROLE>"),
        (&["host", "ping", "x", "--wait", "0"], "--wait"),
        (&["host", "show", "missing"], "host \"missing\" not found"),
        (
            &["--url", "ftp://x", "host", "list"],
            "the scheme must be http or https",
        ),
    ];
    for (args, expected) in cases {
        let run = site.convoy(args).await;
        let line = run.fails(2);
        assert!(line.starts_with("error: "), "{args:?}: {line}");
        assert!(
            line.contains(expected),
            "{args:?}: expected {expected:?} in {line:?}"
        );
    }
    assert_eq!(site.admin().users().await.unwrap().len(), 1);
}

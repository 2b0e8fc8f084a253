//! Authentication and roles: who may do what, and what they are told when they may not.

use std::time::Duration;

use convoy_api::agent::{Enrolment, HostFacts};
use convoy_api::users::NewUser;
use convoy_api::{Client, ClientError};
use convoy_core::host::Personality;
use convoy_core::role::Role;
use convoy_e2e::convoy_launch::{Deadline, wait_until};
use convoy_e2e::{Site, three_hosts};

fn api_error(result: Result<impl std::fmt::Debug, ClientError>) -> (u16, String, String) {
    match result {
        Err(ClientError::Api {
            status,
            code,
            message,
        }) => (status, code, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn facts() -> HostFacts {
    convoy_e2e::host_facts()
}

#[tokio::test]
async fn a_wrong_enrolment_token_is_refused_and_stores_nothing() {
    let site = Site::controller_only(None).await;
    let anonymous = Client::new(&site.url()).unwrap();
    let (status, _, message) = api_error(
        anonymous
            .enrol(&Enrolment {
                enrolment_token: "cve_wrong".into(),
                hostname: "intruder".into(),
                personality: Personality::Worker,
                zone: None,
                pod: None,
                cluster: None,
                facts: facts(),
            })
            .await,
    );
    assert_eq!(status, 401);
    assert!(message.contains("wrong enrolment token"), "{message}");
    assert!(site.admin().hosts().await.unwrap().is_empty());

    // A real agent with a wrong token file exits with that message and no host appears.
    let mut site = site;
    std::fs::write(site.controller.agent_token_file(), "cve_not_the_token\n").unwrap();
    site.start_agent(&three_hosts()[1]);
    convoy_e2e::wait_exited(site.agent("worker-0"), Duration::from_secs(10)).await;
    let log = std::fs::read_to_string(site.agent("worker-0").log()).unwrap();
    assert!(log.contains("wrong enrolment token"), "{log}");
    assert!(site.admin().hosts().await.unwrap().is_empty());
}

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let site = Site::with_hosts(&three_hosts()[..1]).await;
    let anonymous = Client::new(&site.url()).unwrap();

    let (status, _, message) = api_error(anonymous.hosts().await);
    assert_eq!(status, 401);
    assert!(message.contains("authentication required"), "{message}");
    let (status, _, message) = api_error(
        anonymous
            .clone()
            .with_token("cvt_forged")
            .lock_host("controller-0")
            .await,
    );
    assert_eq!(status, 401);
    assert!(message.contains("unknown token"), "{message}");
    let (status, _, message) = api_error(anonymous.login("admin", "not-the-password").await);
    assert_eq!(status, 401);
    assert!(message.contains("wrong user name or password"), "{message}");
    let (status, ..) = api_error(anonymous.login("nobody", "whatever-password").await);
    assert_eq!(status, 401);
    // Nothing changed.
    let host = site.admin().host("controller-0").await.unwrap();
    assert_eq!(host.administrative.as_str(), "unlocked");

    // The CLI says so in one line, exit 1.
    let cli = site.convoy_as::<&str>(&[], &["host", "list"]).await;
    assert!(cli.fails(2).contains("no credentials"), "{cli:?}");
    let cli = site
        .convoy_as(
            &[
                ("CONVOY_USERNAME", "admin"),
                ("CONVOY_PASSWORD", "wrong-password"),
            ],
            &["host", "list"],
        )
        .await;
    assert!(cli.fails(1).contains("authentication failed"), "{cli:?}");
    let cli = site
        .convoy_as(
            &[("CONVOY_TOKEN", "cvt_forged")],
            &["host", "lock", "controller-0"],
        )
        .await;
    assert!(cli.fails(1).contains("authentication failed"), "{cli:?}");
    let password = site.controller.admin_password().unwrap();
    let cli = site
        .convoy_as(
            &[("CONVOY_USERNAME", "admin"), ("CONVOY_PASSWORD", &password)],
            &["host", "list", "-f", "value", "-c", "hostname"],
        )
        .await;
    assert_eq!(cli.ok(), "controller-0\n");
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    let site = Site::controller_only(Some("token_ttl_seconds = 1\n")).await;
    let token = site.admin_token().to_string();
    let client = Client::new(&site.url()).unwrap().with_token(&token);
    let message = wait_until(
        Deadline::after(Duration::from_secs(10)),
        "the token to expire",
        || async {
            match client.hosts().await {
                Err(ClientError::Api {
                    status: 401,
                    message,
                    ..
                }) => Some(message),
                _ => None,
            }
        },
    )
    .await
    .unwrap();
    assert!(message.contains("expired"), "{message}");
    let cli = site.convoy(&["host", "list"]).await;
    assert!(cli.fails(1).contains("expired"), "{cli:?}");
}

#[tokio::test]
async fn roles_limit_what_users_may_do() {
    let site = Site::with_hosts(&three_hosts()[..2]).await;
    let admin = site.admin();
    for (name, role) in [("rita", Role::Reader), ("otto", Role::Operator)] {
        admin
            .add_user(&NewUser {
                name: name.into(),
                password: format!("{name}-password"),
                role,
            })
            .await
            .unwrap();
    }
    let login = |name: &'static str| {
        let url = site.url();
        async move {
            let client = Client::new(&url).unwrap();
            let token = client
                .login(name, &format!("{name}-password"))
                .await
                .unwrap();
            client.with_token(token)
        }
    };
    let reader = login("rita").await;
    let operator = login("otto").await;

    // A reader reads, and may not lock: 403 naming the role, nothing changed.
    assert_eq!(reader.hosts().await.unwrap().len(), 2);
    let (status, code, message) = api_error(reader.lock_host("worker-0").await);
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(
        message.contains("needs the operator role") && message.contains("reader"),
        "{message}"
    );
    assert_eq!(
        admin
            .host("worker-0")
            .await
            .unwrap()
            .administrative
            .as_str(),
        "unlocked"
    );
    let cli = site
        .convoy_as(
            &[
                ("CONVOY_USERNAME", "rita"),
                ("CONVOY_PASSWORD", "rita-password"),
            ],
            &["host", "lock", "worker-0"],
        )
        .await;
    assert!(cli.fails(1).contains("needs the operator role"), "{cli:?}");

    // An operator locks hosts but does not manage users.
    operator.lock_host("worker-0").await.unwrap();
    let (status, _, message) = api_error(operator.users().await);
    assert_eq!(status, 403);
    assert!(message.contains("needs the admin role"), "{message}");
    let (status, ..) = api_error(
        operator
            .add_user(&NewUser {
                name: "mallory".into(),
                password: "mallory-password".into(),
                role: Role::Admin,
            })
            .await,
    );
    assert_eq!(status, 403);
    assert_eq!(admin.users().await.unwrap().len(), 3);

    // Admins manage users through the CLI; a deleted user's tokens stop working.
    let added = site
        .convoy(&["user", "add", "paula", "--role", "operator", "-f", "json"])
        .await;
    assert_eq!(added.json()["role"], "operator");
    assert!(added.stderr.contains("password for paula: "), "{added:?}");
    let dup = site
        .convoy(&["user", "add", "paula", "--role", "reader"])
        .await;
    assert!(dup.fails(2).contains("already exists"), "{dup:?}");
    let list = site
        .convoy(&["user", "list", "-f", "value", "-c", "name"])
        .await;
    assert_eq!(list.ok(), "admin\notto\npaula\nrita\n");
    site.convoy(&["user", "delete", "rita"]).await.ok();
    let (status, ..) = api_error(reader.hosts().await);
    assert_eq!(status, 401);
    let own = site.convoy(&["user", "delete", "admin"]).await;
    assert!(
        own.fails(2).contains("cannot delete your own user"),
        "{own:?}"
    );
}

#[tokio::test]
async fn two_admins_deleting_each_other_leave_one() {
    let site = Site::controller_only(None).await;
    let url = site.url();
    let add_admin = |by: Client, name: String| {
        let url = url.clone();
        async move {
            let password = format!("{name}-password");
            by.add_user(&NewUser {
                name: name.clone(),
                password: password.clone(),
                role: Role::Admin,
            })
            .await
            .unwrap();
            let client = Client::new(&url).unwrap();
            let token = client.login(&name, &password).await.unwrap();
            (name, client.with_token(token))
        }
    };
    // The bootstrap admin hands over to "a", so each pair below is the site's only admins.
    let (mut survivor_name, mut survivor) = add_admin(site.admin(), "a".into()).await;
    survivor.delete_user("admin").await.unwrap();
    for pair in 0..8 {
        let (other_name, other) = add_admin(survivor.clone(), format!("b{pair}")).await;
        let (first, second) = tokio::join!(
            survivor.delete_user(&other_name),
            other.delete_user(&survivor_name)
        );
        let admins: Vec<String> = match (&first, &second) {
            (Ok(()), Ok(())) => panic!("pair {pair}: both admins deleted each other"),
            (Ok(()), _) => survivor.users().await.unwrap(),
            (_, Ok(())) => other.users().await.unwrap(),
            _ => panic!("pair {pair}: neither deletion happened: {first:?} {second:?}"),
        }
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .map(|u| u.name)
        .collect();
        assert_eq!(admins.len(), 1, "pair {pair}: admins left: {admins:?}");
        // The refused side hears why.
        let refused = if first.is_ok() { second } else { first };
        let (status, code, message) = api_error(refused);
        assert!(
            (status == 409 && code == "conflict" && message.contains("last admin"))
                || status == 401,
            "pair {pair}: {status} {code} {message}"
        );
        if admins[0] != survivor_name {
            (survivor_name, survivor) = (other_name, other);
        }
    }
}

/// `POST /v3/auth/tokens` with `body`; the new token and its `expires_at`.
async fn issue(url: &str, body: serde_json::Value) -> (String, String) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v3/auth/tokens"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token = response.headers()["X-Subject-Token"]
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = response.json().await.unwrap();
    (
        token,
        body["token"]["expires_at"].as_str().unwrap().to_string(),
    )
}

fn token_method(token: &str) -> serde_json::Value {
    serde_json::json!({"auth": {"identity": {"methods": ["token"], "token": {"id": token}}}})
}

#[tokio::test]
async fn a_token_from_the_token_method_expires_with_the_token_it_came_from() {
    let site = Site::controller_only(Some("token_ttl_seconds = 2\n")).await;
    let password = site.controller.admin_password().unwrap();
    let (first, expires) = issue(
        &site.url(),
        serde_json::json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": "admin", "password": password}}}}}),
    )
    .await;
    let (second, second_expires) = issue(&site.url(), token_method(&first)).await;
    let (third, third_expires) = issue(&site.url(), token_method(&second)).await;
    assert_eq!(second_expires, expires);
    assert_eq!(third_expires, expires);
    assert!(second != first && third != second);

    // When the first expires, so do the ones obtained from it.
    let client = |token: &str| Client::new(&site.url()).unwrap().with_token(token);
    wait_until(
        Deadline::after(Duration::from_secs(10)),
        "the first token to expire",
        || async { client(&first).hosts().await.is_err().then_some(()) },
    )
    .await
    .unwrap();
    for token in [&second, &third] {
        let (status, _, message) = api_error(client(token).hosts().await);
        assert_eq!(status, 401);
        assert!(message.contains("expired"), "{message}");
    }
}

#[tokio::test]
async fn tokens_are_revoked_by_their_owner_or_an_admin() {
    let site = Site::controller_only(None).await;
    site.add_user("rita", Role::Reader).await;
    let login = || async {
        Client::new(&site.url())
            .unwrap()
            .login("rita", "rita-password")
            .await
            .unwrap()
    };

    // A reader revokes their own token with the CLI; it stops working at once.
    let own = login().await;
    let run = site
        .convoy_as(&[("CONVOY_TOKEN", own.as_str())], &["token", "revoke"])
        .await;
    assert_eq!(run.ok(), "token revoked\n");
    let reader = Client::new(&site.url()).unwrap().with_token(&own);
    let (status, _, message) = api_error(reader.hosts().await);
    assert_eq!(status, 401);
    assert!(message.contains("unknown token"), "{message}");

    // Not someone else's, unless an admin.
    let second = login().await;
    let run = site
        .convoy_as(
            &[("CONVOY_TOKEN", second.as_str())],
            &["token", "revoke", site.admin_token()],
        )
        .await;
    assert!(run.fails(1).contains("needs the admin role"), "{run:?}");
    site.admin().hosts().await.unwrap();
    site.admin().revoke_token(&second).await.unwrap();
    let (status, ..) = api_error(
        Client::new(&site.url())
            .unwrap()
            .with_token(&second)
            .hosts()
            .await,
    );
    assert_eq!(status, 401);

    // Unknown tokens, a missing header and nothing to revoke are refused, naming why.
    let run = site.convoy(&["token", "revoke", "cvt_unknown"]).await;
    assert!(run.fails(2).contains("not found"), "{run:?}");
    let response = reqwest::Client::new()
        .delete(format!("{}/v3/auth/tokens", site.url()))
        .header("X-Auth-Token", site.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("X-Subject-Token: is required"),
        "{message}"
    );
    let run = site
        .convoy_as(
            &[
                ("CONVOY_USERNAME", "rita"),
                ("CONVOY_PASSWORD", "rita-password"),
            ],
            &["token", "revoke"],
        )
        .await;
    assert!(run.fails(2).contains("no token to revoke"), "{run:?}");
    site.admin().hosts().await.unwrap();
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user_and_per_source() {
    let site = Site::controller_only(Some(
        "login_failures_per_user = 3\nlogin_failures_per_source = 5\n",
    ))
    .await;
    let password = site.controller.admin_password().unwrap();
    let login = |name: &'static str, password: String| {
        let url = site.url();
        async move {
            reqwest::Client::new()
                .post(format!("{url}/v3/auth/tokens"))
                .json(
                    &serde_json::json!({"auth": {"identity": {"methods": ["password"],
                    "password": {"user": {"name": name, "password": password}}}}}),
                )
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..3 {
        assert_eq!(login("admin", "wrong-password".into()).await.status(), 401);
    }
    // Past the limit even the right password is refused, saying why and until when.
    let refused = login("admin", password.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failed_logins");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("3 failed logins for user \"admin\""),
        "{message}"
    );
    // Tokens already issued keep working.
    site.admin().hosts().await.unwrap();

    // Other names from the same client count against the client.
    for _ in 0..2 {
        assert_eq!(login("nobody", "wrong-password".into()).await.status(), 401);
    }
    site.add_user("rita", Role::Reader).await;
    let refused = login("rita", "rita-password".into()).await;
    assert_eq!(refused.status(), 429);
    let body: serde_json::Value = refused.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("5 failed logins from 127.0.0.1"),
        "{message}"
    );
    // The CLI says so in one line, exit 1.
    let cli = site
        .convoy_as(
            &[
                ("CONVOY_USERNAME", "rita"),
                ("CONVOY_PASSWORD", "rita-password"),
            ],
            &["host", "list"],
        )
        .await;
    assert!(cli.fails(1).contains("try again in"), "{cli:?}");
}

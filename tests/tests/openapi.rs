//! The API contract: convoyd serves its OpenAPI document without authentication, the served
//! document is the committed docs/openapi.json, and it describes every route of the router
//! and no route the router lacks.

use std::collections::BTreeSet;

use convoy_e2e::Site;
use reqwest::{Method, StatusCode};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The paths the router names, read from its source: a route added there without a
/// `#[utoipa::path]` in the document fails the test below.
fn router_paths() -> BTreeSet<String> {
    let source = include_str!("../../crates/convoyd/src/api/mod.rs");
    let mut paths = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let quoted = rest.trim_start();
        let path = quoted
            .strip_prefix('"')
            .and_then(|p| p.split_once('"'))
            .map(|(path, _)| path)
            .unwrap_or_else(|| panic!("a route whose path is not a literal: {quoted:.60}"));
        paths.insert(path.to_string());
    }
    assert!(paths.len() > 30, "found only {paths:?} in the router");
    paths
}

/// Whether the router routes `method` on `path` (anything but 405 and the unknown-route 404).
async fn routed(http: &reqwest::Client, url: &str, method: &str, path: &str) -> bool {
    // Path parameters get a plain value; no token is sent, so nothing is changed.
    let concrete: String = path
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "x"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
    let response = http
        .request(method, format!("{url}{concrete}"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    status != StatusCode::METHOD_NOT_ALLOWED && body["error"]["code"] != "no_route"
}

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_covers_every_route() {
    let site = Site::controller_only(None).await;
    let http = reqwest::Client::new();
    let url = site.url();

    let response = http
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "without a token");
    let served = response.text().await.unwrap();
    let committed = include_str!("../../docs/openapi.json");
    assert!(
        served == committed,
        "convoyd serves another document than docs/openapi.json; regenerate it with \
         CONVOY_UPDATE_OPENAPI=1 cargo test -p convoyd the_committed_document"
    );
    let document: Value = serde_json::from_str(&served).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));

    let documented: BTreeSet<(String, String)> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| (m.to_string(), path.clone()))
        })
        .collect();
    let mut routes = BTreeSet::new();
    for path in router_paths() {
        for method in METHODS {
            if routed(&http, &url, method, &path).await {
                routes.insert((method.to_string(), path.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document (add #[utoipa::path] to the handler and \
         list it in crates/convoyd/src/api/openapi.rs): {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "documented operations the router does not have: {unrouted:?}"
    );
}

/// The document promises the JSON error body for every 4xx; axum's own answer to a path
/// parameter that is not UTF-8 was plain text.
#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_gets_the_json_error_naming_it() {
    let site = Site::controller_only(None).await;
    let http = reqwest::Client::new();
    for (method, path, field) in [
        (Method::GET, "/v1/hosts/%FF", "hostname"),
        (Method::GET, "/v1/hosts/x/commands/%FF%FE", "id"),
        (Method::DELETE, "/v1/users/%C3%28", "name"),
        (Method::GET, "/v1/patches/%FF", "id"),
        (Method::GET, "/v1/strategy-steps/%FF", "target"),
    ] {
        let response = http
            .request(method, format!("{}{path}", site.url()))
            .header("X-Auth-Token", site.admin_token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
        let text = response.text().await.unwrap();
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{path}: the error is not JSON ({e}): {text:?}"));
        assert_eq!(body["error"]["code"], "invalid_input", "{path}: {body}");
        assert_eq!(
            body["error"]["message"],
            format!("{field}: is not valid UTF-8"),
            "{path}"
        );
    }
}

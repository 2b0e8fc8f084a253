//! The OpenAPI 3 document of the REST API, derived from the wire types (`convoy-api`'s
//! `openapi` feature) and the handlers' `#[utoipa::path]` attributes. Served at
//! `GET /openapi.json` and committed as `docs/openapi.json`
//! (a test fails when the committed copy differs from this).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use convoy_api::ErrorBody;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

use super::{
    agent, alarms, clusters, enrol_tokens, hosts, identity, identity_sync, patches, prestage, site,
    software, strategies, users, vim,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convoy controller API",
        description = "The REST API of convoyd, the Convoy site controller. See docs/api.md. \
            Every failure answers `{\"error\": {\"code\", \"message\"}}`; for bad input the \
            message names the field.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        identity::versions,
        identity::discovery,
        identity::issue_token,
        identity::revoke_token,
        openapi_json,
        hosts::list,
        hosts::show,
        hosts::lock,
        hosts::unlock,
        hosts::swact,
        hosts::forget,
        hosts::send_command,
        hosts::show_command,
        enrol_tokens::create,
        users::list,
        users::add,
        users::remove,
        clusters::list,
        alarms::list,
        alarms::show,
        alarms::raise,
        alarms::clear,
        alarms::events,
        strategies::create,
        strategies::show,
        strategies::action,
        strategies::delete,
        strategies::report,
        strategies::show_any,
        strategies::action_any,
        strategies::delete_any,
        strategies::steps,
        vim::create,
        vim::show,
        vim::show_one,
        vim::action,
        vim::delete,
        vim::current_strategy,
        strategies::step,
        site::audit,
        identity_sync::sync,
        patches::upload,
        patches::query,
        patches::show,
        patches::apply,
        patches::remove,
        patches::delete,
        patches::commit,
        patches::what_requires,
        patches::dependencies,
        patches::is_applied,
        patches::query_app_dependencies,
        patches::report_app_dependencies,
        patches::query_hosts,
        patches::host_install,
        patches::drop_host,
        software::list,
        software::show,
        software::deploy,
        software::deploy_hosts,
        prestage::show,
        prestage::missing,
        prestage::put_chunk,
        prestage::import_release,
        patches::bundle,
        agent::enrol,
        agent::heartbeat,
        agent::poll_commands,
        agent::report_outcome,
        alarms::agent_raise,
        alarms::agent_clear,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "identity", description = "Keystone v3 login and token revocation"),
        (name = "hosts", description = "The site's hosts and the commands sent to them"),
        (name = "users", description = "Users and their roles (admins only)"),
        (name = "subclouds", description = "What a System Controller reads of a site it manages as a subcloud"),
        (name = "alarms", description = "Active alarms and their history"),
        (name = "strategies", description = "Rolling maintenance and strategy steps"),
        (name = "patches", description = "The patch repository and installs on hosts"),
        (name = "software", description = "Releases and the site's software deploy (USM's views of the one repository)"),
        (name = "prestage", description = "What a System Controller's prestage sends a site: chunks by digest, then releases assembled from them"),
        (name = "sw-update", description = "The VIM software-update strategy API in StarlingX's shape (/api/orchestration)"),
        (name = "agents", description = "The agent protocol (host credentials)"),
    )
)]
struct ApiDoc;

/// `GET /openapi.json`: this document, without authentication.
#[utoipa::path(
    get, path = "/openapi.json", tag = "identity",
    responses((status = 200, description = "This OpenAPI document", body = serde_json::Value))
)]
pub async fn openapi_json() -> impl IntoResponse {
    static JSON: LazyLock<String> = LazyLock::new(document_json);
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

/// The document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as committed in docs/openapi.json: pretty-printed, with a final newline.
pub fn document_json() -> String {
    let mut json = document()
        .to_pretty_json()
        .expect("an OpenAPI document always serialises");
    json.push('\n');
    json
}

/// What every route shares and the attributes leave out: the `X-Auth-Token` schemes, the
/// second spelling of `/v3`, and the error answers that come from the extractors and the
/// authentication rather than from a handler.
struct Conventions;

impl utoipa::Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                USER_TOKEN,
                "A user's token from POST /v3/auth/tokens. Readers may only read (GET); \
                 changes need the operator role, user management and enrolment tokens admin.",
            ),
            (
                HOST_CREDENTIAL,
                "A host's credential, from its enrolment (POST /v1/agent/enrol).",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    convoy_api::AUTH_HEADER,
                    description,
                ))),
            );
        }
        for (name, description) in STANDARD_ERRORS {
            let response = ResponseBuilder::new()
                .description(*description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build();
            components
                .responses
                .insert(name.to_string(), response.into());
        }

        let paths = &mut openapi.paths.paths;
        if let Some(v3) = paths.get("/v3").cloned() {
            paths.insert("/v3/".into(), v3);
        }
        for item in paths.values_mut() {
            for_each_operation(item, |method, operation| {
                standard_errors(method, operation);
                binary_bodies(operation);
            });
        }
    }
}

const USER_TOKEN: &str = "user_token";
const HOST_CREDENTIAL: &str = "host_credential";

const STANDARD_ERRORS: &[(&str, &str)] = &[
    (
        "InvalidInput",
        "Bad input (`invalid_input`): malformed JSON, unknown, missing or mistyped fields, \
         invalid values or parameters; the message names the field",
    ),
    (
        "Unauthorized",
        "No token, or an unknown or expired one (`unauthorized`, or `unknown_credential` for a \
         host credential the controller does not know)",
    ),
    (
        "Forbidden",
        "The caller's role is not enough (`forbidden`); the message names the role needed",
    ),
    (
        "BodyTimeout",
        "The body did not arrive whole within body_timeout_seconds (`body_timeout`)",
    ),
    (
        "BodyTooLarge",
        "The body is larger than max_body_bytes, or max_patch_bytes for an upload \
         (`body_too_large`)",
    ),
];

fn for_each_operation(item: &mut PathItem, mut each: impl FnMut(&str, &mut Operation)) {
    for (method, operation) in [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ] {
        if let Some(operation) = operation {
            each(method, operation);
        }
    }
}

/// Patch files are bytes, which utoipa describes as an array of integers.
fn binary_bodies(operation: &mut Operation) {
    let bodies = operation
        .request_body
        .iter_mut()
        .flat_map(|body| match body {
            RefOr::T(body) => Some(body.content.iter_mut()),
            RefOr::Ref(_) => None,
        });
    let answers = operation
        .responses
        .responses
        .values_mut()
        .flat_map(|r| match r {
            RefOr::T(response) => Some(response.content.iter_mut()),
            RefOr::Ref(_) => None,
        });
    for (content_type, content) in bodies.flatten().chain(answers.flatten()) {
        if let (RefOr::T(content), "application/octet-stream") = (content, content_type.as_str()) {
            content.schema = Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                    .into(),
            );
        }
    }
}

/// Adds the answers an operation gets from the extractors and the authentication, unless its
/// attribute already describes them.
fn standard_errors(method: &str, operation: &mut Operation) {
    let schemes: Vec<String> = operation
        .security
        .iter()
        .flatten()
        .filter_map(|requirement| {
            serde_json::to_value(requirement)
                .ok()?
                .as_object()?
                .keys()
                .next()
                .cloned()
        })
        .collect();
    let takes_input =
        operation.request_body.is_some() || operation.parameters.iter().flatten().next().is_some();
    let mut add = |status: &str, name: &str| {
        operation
            .responses
            .responses
            .entry(status.into())
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
    };
    if takes_input {
        add("400", "InvalidInput");
    }
    if !schemes.is_empty() {
        add("401", "Unauthorized");
    }
    if method != "get" && schemes.iter().any(|s| s == USER_TOKEN) {
        add("403", "Forbidden");
    }
    if operation.request_body.is_some() {
        add("408", "BodyTimeout");
        add("413", "BodyTooLarge");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/openapi.json is the contract clients and the fuzz run read: it must be what the
    /// code serves. `CONVOY_UPDATE_OPENAPI=1` rewrites it instead.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = document_json();
        if std::env::var_os("CONVOY_UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed != generated {
            let line = committed
                .lines()
                .zip(generated.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
            panic!(
                "docs/openapi.json differs from the document the code generates (first at line \
                 {}); regenerate it with\n    CONVOY_UPDATE_OPENAPI=1 cargo test -p convoyd \
                 the_committed_document\nand commit it",
                line + 1
            );
        }
    }
}

//! The REST API: routes, authentication and the agent gateway.

mod agent;
mod alarms;
mod clusters;
mod dc;
mod enrol_tokens;
mod error;
mod extract;
pub(crate) mod hosts;
mod identity;
mod identity_sync;
mod openapi;
mod patches;
mod prestage;
mod site;
mod software;
mod strategies;
mod users;
mod views;
mod vim;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post, put};

pub use error::ApiError;

use crate::config::Settings;
use crate::state::AppState;

pub fn router(state: AppState, settings: &Settings) -> Router {
    // Routes for users: every request carries a valid token.
    let user_routes = Router::new()
        .route("/v1/hosts", get(hosts::list))
        .route(
            "/v1/hosts/{hostname}",
            get(hosts::show).delete(hosts::forget),
        )
        .route("/v1/hosts/{hostname}/lock", post(hosts::lock))
        .route("/v1/hosts/{hostname}/unlock", post(hosts::unlock))
        .route("/v1/hosts/{hostname}/swact", post(hosts::swact))
        .route("/v1/hosts/{hostname}/commands", post(hosts::send_command))
        .route(
            "/v1/hosts/{hostname}/commands/{id}",
            get(hosts::show_command),
        )
        .route("/v1/users", get(users::list).post(users::add))
        .route("/v1/users/{name}", delete(users::remove))
        .route("/v1/clusters", get(clusters::list))
        .route("/v1/alarms", get(alarms::list).post(alarms::raise))
        .route("/v1/alarms/{uuid}", get(alarms::show).delete(alarms::clear))
        .route("/v1/events", get(alarms::events))
        .route(
            "/v1/rolling-maintenance-strategy",
            get(strategies::show)
                .post(strategies::create)
                .delete(strategies::delete),
        )
        .route(
            "/v1/rolling-maintenance-strategy/actions",
            post(strategies::action),
        )
        .route(
            "/v1/rolling-maintenance-strategy/report",
            get(strategies::report),
        )
        .route(
            "/v1/patches",
            get(patches::query)
                .post(patches::upload)
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/patches/apply", post(patches::apply))
        .route("/v1/patches/remove", post(patches::remove))
        .route("/v1/patches/delete", post(patches::delete))
        .route("/v1/patches/commit", post(patches::commit))
        .route("/v1/patches/what-requires", get(patches::what_requires))
        .route("/v1/patches/dependencies", get(patches::dependencies))
        .route("/v1/patches/is-applied", get(patches::is_applied))
        .route(
            "/v1/patches/app-dependencies",
            get(patches::query_app_dependencies).post(patches::report_app_dependencies),
        )
        .route("/v1/patches/{id}", get(patches::show))
        .route(
            "/v1/hosts/{hostname}/enrol-tokens",
            post(enrol_tokens::create),
        )
        .route("/v1/patch-hosts", get(patches::query_hosts))
        .route(
            "/v1/patch-hosts/{hostname}/install",
            post(patches::host_install),
        )
        .route("/v1/patch-hosts/{hostname}/drop", post(patches::drop_host))
        .route(
            "/v1/strategy",
            get(strategies::show_any).delete(strategies::delete_any),
        )
        .route("/v1/strategy/actions", post(strategies::action_any))
        .route(
            "/api/orchestration/{name}/strategy",
            get(vim::show).post(vim::create).delete(vim::delete),
        )
        .route(
            "/api/orchestration/{name}/strategy/actions",
            post(vim::action),
        )
        .route(
            "/api/orchestration/{name}/strategy/{uuid}",
            get(vim::show_one),
        )
        .route(
            "/api/orchestration/current-strategy/strategy",
            get(vim::current_strategy),
        )
        .route("/v1/software/releases", get(software::list))
        .route("/v1/software/releases/{id}", get(software::show))
        .route("/v1/software/deploy", get(software::deploy))
        .route("/v1/software/deploy/hosts", get(software::deploy_hosts))
        .route("/v1/strategy-steps", get(strategies::steps))
        .route("/v1/strategy-steps/{target}", get(strategies::step))
        .route("/v1/prestage", get(prestage::show))
        .route(
            "/v1/prestage/chunks/missing",
            post(prestage::missing).layer(DefaultBodyLimit::max(
                convoy_api::prestage::MAX_CHUNK_LIST_BYTES,
            )),
        )
        .route(
            "/v1/prestage/chunks/{sha256}",
            put(prestage::put_chunk).layer(DefaultBodyLimit::max(
                convoy_api::prestage::MAX_CHUNK_BYTES as usize,
            )),
        )
        .route(
            "/v1/prestage/releases",
            post(prestage::import_release).layer(DefaultBodyLimit::max(
                convoy_api::prestage::MAX_CHUNK_LIST_BYTES,
            )),
        )
        .route("/v1/site", get(site::audit))
        .route("/v1/identity/sync", post(identity_sync::sync))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::authenticate_user,
        ));

    // Routes for agents: enrolment carries the site's enrolment token in its body, the rest a
    // host credential (checked by the `AgentHost` extractor).
    let agent_routes = Router::new()
        .route("/v1/agent/enrol", post(agent::enrol))
        .route("/v1/agent/alarms", post(alarms::agent_raise))
        .route("/v1/agent/alarms/clear", post(alarms::agent_clear))
        .route("/v1/agent/heartbeat", post(agent::heartbeat))
        .route("/v1/agent/commands", get(agent::poll_commands))
        .route(
            "/v1/agent/commands/{id}/outcome",
            post(agent::report_outcome),
        )
        .route("/v1/agent/patches/{id}", get(patches::bundle));

    let public_routes = Router::new()
        .route("/", get(identity::versions))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v3", get(identity::discovery))
        .route("/v3/", get(identity::discovery))
        .route(
            "/v3/auth/tokens",
            post(identity::issue_token).delete(identity::revoke_token),
        );

    Router::new()
        .merge(user_routes)
        .merge(agent_routes)
        .merge(public_routes)
        .merge(dc::router(state.clone()))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state)
}

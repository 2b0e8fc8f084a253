//! The REST API: routes, authentication and the agent gateway.

mod agent;
mod clusters;
mod error;
mod extract;
mod hosts;
mod identity;
mod strategies;
mod users;
mod views;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post};

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
        .route("/v1/hosts/{hostname}/commands", post(hosts::send_command))
        .route(
            "/v1/hosts/{hostname}/commands/{id}",
            get(hosts::show_command),
        )
        .route("/v1/users", get(users::list).post(users::add))
        .route("/v1/users/{name}", delete(users::remove))
        .route("/v1/clusters", get(clusters::list))
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
        .route("/v1/strategy-steps", get(strategies::steps))
        .route("/v1/strategy-steps/{target}", get(strategies::step))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            extract::authenticate_user,
        ));

    // Routes for agents: enrolment carries the site's enrolment token in its body, the rest a
    // host credential (checked by the `AgentHost` extractor).
    let agent_routes = Router::new()
        .route("/v1/agent/enrol", post(agent::enrol))
        .route("/v1/agent/heartbeat", post(agent::heartbeat))
        .route("/v1/agent/commands", get(agent::poll_commands))
        .route(
            "/v1/agent/commands/{id}/outcome",
            post(agent::report_outcome),
        );

    let public_routes = Router::new()
        .route("/", get(identity::versions))
        .route("/v3", get(identity::discovery))
        .route("/v3/", get(identity::discovery))
        .route("/v3/auth/tokens", post(identity::issue_token));

    Router::new()
        .merge(user_routes)
        .merge(agent_routes)
        .merge(public_routes)
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state)
}

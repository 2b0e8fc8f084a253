//! dcmanager's v1.0 API (spec/dcmanager-api.md §2, §6) under `/v1.0/`: subclouds and subcloud
//! groups, with dcmanager's JSON, messages and error bodies, so that its clients work unchanged.
//! These routes are not in the OpenAPI document: their shapes are dcmanager's, documented in
//! docs/api.md.

mod error;
mod form;
mod groups;
mod strategy;
mod subclouds;
mod views;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use convoy_api::AUTH_HEADER;

pub use error::DcError;

use super::extract::identify;
use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    // dcmanager runs with trailing slashes optional: both spellings are routed.
    Router::new()
        .route("/v1.0/subclouds", get(subclouds::list).post(subclouds::add))
        .route(
            "/v1.0/subclouds/",
            get(subclouds::list).post(subclouds::add),
        )
        .route(
            "/v1.0/subclouds/{reference}",
            get(subclouds::show)
                .patch(subclouds::update)
                .delete(subclouds::delete),
        )
        .route(
            "/v1.0/subclouds/{reference}/detail",
            get(subclouds::show_detail),
        )
        .route(
            "/v1.0/subclouds/{reference}/prestage",
            axum::routing::patch(subclouds::prestage),
        )
        .route("/v1.0/subcloud-groups", get(groups::list).post(groups::add))
        .route(
            "/v1.0/subcloud-groups/",
            get(groups::list).post(groups::add),
        )
        .route(
            "/v1.0/subcloud-groups/{reference}",
            get(groups::show)
                .patch(groups::update)
                .delete(groups::delete),
        )
        .route(
            "/v1.0/subcloud-groups/{reference}/subclouds",
            get(groups::subclouds),
        )
        .route(
            "/v1.0/sw-update-strategy",
            get(strategy::show)
                .post(strategy::create)
                .delete(strategy::delete),
        )
        .route(
            "/v1.0/sw-update-strategy/",
            get(strategy::show)
                .post(strategy::create)
                .delete(strategy::delete),
        )
        .route(
            "/v1.0/sw-update-strategy/actions",
            axum::routing::post(strategy::action),
        )
        .route("/v1.0/sw-update-strategy/steps", get(strategy::steps))
        .route(
            "/v1.0/sw-update-strategy/steps/{cloud}",
            get(strategy::step),
        )
        .route_layer(middleware::from_fn_with_state(state, authenticate))
        .layer(middleware::from_fn(error::negotiate))
}

/// A valid token is required before anything else (the body is not read); readers may only
/// read; admins and operators may change (dcmanager's policy, with Convoy's operator in the
/// place of its configurator).
async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, DcError> {
    let token = request
        .headers()
        .get(AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reads_only = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let caller = identify(&state, token.as_deref(), reads_only).await?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

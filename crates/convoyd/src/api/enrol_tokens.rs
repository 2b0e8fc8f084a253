//! `/v1/hosts/{hostname}/enrol-tokens`: single-use tokens with which a host that is already
//! enrolled may enrol again (a reinstalled host that lost its credential). The site's agent
//! token only enrols hostnames the site does not know yet, so it cannot take over a host.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::hosts::{EnrolToken, NewEnrolToken};
use convoy_core::role::Role;
use convoy_core::validation::validate_name;
use convoy_store::HostEnrolToken;
use jiff::SignedDuration;

use super::ApiError;
use super::extract::{ApiJson, ApiPath, Caller};
use crate::secrets;
use crate::state::AppState;

const DEFAULT_TTL_SECONDS: u64 = 3600;
const TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=7 * 24 * 3600;

/// Creates a host's enrolment token, replacing an unused earlier one. Admins only: the token
/// is the host's identity until it is used.
#[utoipa::path(
    post, path = "/v1/hosts/{hostname}/enrol-tokens", tag = "hosts", security(("user_token" = [])),
    params(("hostname" = String, Path, description = "The host's name")),
    request_body = NewEnrolToken,
    responses((status = 201, description = "A single-use token with which the host enrols (admins only); shown once", body = EnrolToken))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(hostname): ApiPath<String>,
    ApiJson(request): ApiJson<NewEnrolToken>,
) -> Result<(StatusCode, Json<EnrolToken>), ApiError> {
    caller.require(Role::Admin)?;
    validate_name("hostname", &hostname)?;
    let ttl = request.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
    if !TTL_SECONDS.contains(&ttl) {
        return Err(ApiError::invalid(
            "ttl_seconds",
            format!(
                "must be from {} to {} seconds",
                TTL_SECONDS.start(),
                TTL_SECONDS.end()
            ),
        ));
    }
    let token = secrets::generate("cve_", 32);
    let now = crate::clock::now();
    let expires_at = now + SignedDuration::from_secs(ttl as i64);
    state
        .store
        .insert_host_enrol_token(&HostEnrolToken {
            token_hash: secrets::token_hash(&token),
            hostname: hostname.clone(),
            created_at: now,
            expires_at,
            created_by: caller.name.clone(),
        })
        .await?;
    tracing::info!(
        host = hostname,
        by = caller.name,
        ttl,
        "host enrolment token created"
    );
    Ok((
        StatusCode::CREATED,
        Json(EnrolToken {
            hostname,
            token,
            expires_at,
        }),
    ))
}

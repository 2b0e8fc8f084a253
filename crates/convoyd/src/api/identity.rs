//! Keystone v3, the subset StarlingX clients need: version discovery and password/token login.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use convoy_api::auth::{AuthRequest, DomainRef, NamedRef, RoleRef, TokenInfo, TokenResponse};
use convoy_api::{AUTH_HEADER, SUBJECT_TOKEN_HEADER};
use std::net::IpAddr;

use convoy_core::role::Role;
use convoy_core::validation::validate_name;
use convoy_store::UserRecord;
use jiff::Timestamp;
use serde_json::json;

use super::ApiError;
use super::extract::{ApiJson, ClientAddress, identify};
use crate::login_throttles::Refusal;
use crate::secrets;
use crate::state::AppState;
use convoy_api::ErrorBody;

#[utoipa::path(
    get, path = "/", tag = "identity",
    responses((status = 200, description = "The API versions", body = serde_json::Value))
)]
pub async fn versions(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let base = base_url(&state, &headers);
    Json(json!({
        "versions": [
            {"id": "v1", "status": "CURRENT", "links": [{"rel": "self", "href": format!("{base}/v1/")}]},
            {"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": format!("{base}/v3/")}]}
        ]
    }))
}

#[utoipa::path(
    get, path = "/v3", tag = "identity",
    responses((status = 200, description = "Keystone v3 version discovery", body = serde_json::Value))
)]
pub async fn discovery(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    let base = base_url(&state, &headers);
    Json(json!({
        "version": {
            "id": "v3.14",
            "status": "stable",
            "updated": "2020-04-07T00:00:00Z",
            "links": [{"rel": "self", "href": format!("{base}/v3/")}],
            "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]
        }
    }))
}

/// This controller's URL as the client reached it, with the scheme it serves: keystoneauth
/// sends its login to the discovery document's `self` link, so an `http://` link from an HTTPS
/// controller fails every client login.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{}://{host}", state.scheme)
}

/// `POST /v3/auth/tokens`: password or token method. Replies 201 with the token in
/// `X-Subject-Token`. A token obtained with the token method expires when the token it was
/// obtained with does (as in Keystone), so a token cannot be renewed forever.
#[utoipa::path(
    post, path = "/v3/auth/tokens", tag = "identity",
    request_body = AuthRequest,
    responses((status = 201, description = "The token is in X-Subject-Token", body = TokenResponse, headers(("X-Subject-Token" = String, description = "The new token"))), (status = 401, description = "A wrong user name, password or token", body = ErrorBody), (status = 429, description = "Too many failed logins for this user name or address lately", body = ErrorBody, headers(("Retry-After" = u64, description = "Seconds to wait"))))
)]
pub async fn issue_token(
    State(state): State<AppState>,
    ClientAddress(source): ClientAddress,
    request_headers: HeaderMap,
    ApiJson(request): ApiJson<AuthRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let identity = request.auth.identity;
    let now = crate::clock::now();
    let (user, expires_at) = if identity.methods.iter().any(|m| m == "password") {
        let password = identity.password.ok_or_else(|| {
            ApiError::invalid(
                "auth.identity.password",
                "is required for the password method",
            )
        })?;
        let user =
            login_with_password(&state, password.user.name, password.user.password, source).await?;
        (user, now + state.token_ttl)
    } else if identity.methods.iter().any(|m| m == "token") {
        let token = identity.token.ok_or_else(|| {
            ApiError::invalid("auth.identity.token", "is required for the token method")
        })?;
        let owner = state
            .store
            .token_owner(&secrets::token_hash(&token.id))
            .await?
            .filter(|owner| owner.expires_at > now)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "authentication failed: unknown or expired token; log in again",
                )
            })?;
        (owner.user, owner.expires_at)
    } else {
        return Err(ApiError::invalid(
            "auth.identity.methods",
            "must contain \"password\" or \"token\"",
        ));
    };

    let token = secrets::generate("cvt_", 32);
    state.store.purge_expired_tokens(now).await?;
    state
        .store
        .insert_token(&secrets::token_hash(&token), &user.name, now, expires_at)
        .await?;

    let body = TokenResponse {
        token: TokenInfo {
            methods: identity.methods,
            expires_at: keystone_time(expires_at),
            issued_at: keystone_time(now),
            user: NamedRef {
                id: user.name.clone(),
                name: user.name.clone(),
                domain: default_domain(),
            },
            project: NamedRef {
                id: "convoy".into(),
                name: "admin".into(),
                domain: default_domain(),
            },
            roles: vec![RoleRef {
                id: user.role.as_str().into(),
                name: user.role.as_str().into(),
            }],
            catalog: catalog(&state, &request_headers),
        },
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        SUBJECT_TOKEN_HEADER,
        HeaderValue::from_str(&token).map_err(ApiError::internal)?,
    );
    Ok((StatusCode::CREATED, headers, Json(body)))
}

/// `DELETE /v3/auth/tokens`: revokes the token in `X-Subject-Token`. The caller's own
/// tokens may be revoked by anyone holding them; another user's only by an admin (Keystone's
/// policy). Replies 204.
#[utoipa::path(
    delete, path = "/v3/auth/tokens", tag = "identity", security(("user_token" = [])),
    params(("X-Subject-Token" = String, Header, description = "The token to revoke")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "The subject token is unknown or expired", body = ErrorBody))
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let caller = identify(&state, header(AUTH_HEADER), true).await?;
    let subject = header(SUBJECT_TOKEN_HEADER).ok_or_else(|| {
        ApiError::invalid(
            SUBJECT_TOKEN_HEADER,
            "is required: the token to revoke (your own is in X-Auth-Token)",
        )
    })?;
    let hash = secrets::token_hash(subject);
    let owner = state
        .store
        .token_owner(&hash)
        .await?
        .filter(|owner| owner.expires_at > crate::clock::now())
        .ok_or_else(|| ApiError::not_found("the token in X-Subject-Token (or it expired)"))?;
    if owner.user.name != caller.name {
        caller.require(Role::Admin)?;
    }
    state.store.revoke_token(&hash).await?;
    tracing::info!(user = owner.user.name, by = caller.name, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// Checks a password, unless the user name or the client has failed too often lately (429,
/// before any hashing). Hashes run one per core at a time (`crate::hashing`).
async fn login_with_password(
    state: &AppState,
    name: String,
    password: String,
    source: Option<IpAddr>,
) -> Result<UserRecord, ApiError> {
    let throttled = |refusal: Refusal| {
        ApiError::too_many(
            "too_many_failed_logins",
            refusal.reason,
            refusal.retry_after_seconds,
        )
    };
    let wrong = || ApiError::unauthorized("authentication failed: wrong user name or password");
    let throttles = &state.login_throttles;
    throttles
        .check(&name, source, crate::clock::now())
        .map_err(throttled)?;
    // No user can have an invalid name: refused without a hash (which tells nothing a reader
    // of the docs does not know), and only the client is counted.
    if validate_name("name", &name).is_err() {
        throttles.failed(None, source, crate::clock::now());
        return Err(wrong());
    }
    let user = state.store.user(&name).await?;
    let phc = match &user {
        Some(user) => user.password_hash.clone(),
        None => state.decoy_password_hash.to_string(),
    };
    let turn = state.hashing.turn().await;
    // Failures counted while this login waited for its turn count against it too.
    throttles
        .check(&name, source, crate::clock::now())
        .map_err(throttled)?;
    let matches =
        tokio::task::spawn_blocking(move || secrets::verify_password(&password, &phc)).await?;
    drop(turn);
    match user {
        Some(user) if matches => Ok(user),
        _ => {
            throttles.failed(Some(&name), source, crate::clock::now());
            Err(wrong())
        }
    }
}

/// The service catalog: the dcmanager endpoint, at this controller's own address as the
/// client reached it, so that a client knowing only the Keystone URL finds dcmanager's API.
fn catalog(state: &AppState, headers: &HeaderMap) -> Vec<serde_json::Value> {
    let url = format!("{}/v1.0", base_url(state, headers));
    let endpoint = |id: &str, interface: &str| {
        json!({"id": id, "interface": interface, "region": "SystemController",
               "region_id": "SystemController", "url": url})
    };
    vec![json!({
        "type": "dcmanager", "name": "dcmanager", "id": "dcmanager",
        "endpoints": [endpoint("dcmanager-internal", "internal"),
                      endpoint("dcmanager-public", "public"),
                      endpoint("dcmanager-admin", "admin")]
    })]
}

fn default_domain() -> DomainRef {
    DomainRef {
        id: "default".into(),
        name: "Default".into(),
    }
}

/// Keystone writes times with microseconds and a `Z`.
fn keystone_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()
}

//! `POST /v1/identity/sync`: a System Controller keeps its users, roles and password hashes on
//! this site (StarlingX's identity sync), so one login works on every site.

use axum::Json;
use axum::extract::State;
use convoy_api::ErrorBody;
use convoy_api::dc::{IdentitySync, IdentitySynced};
use convoy_core::role::Role;
use convoy_core::validation::validate_name;
use convoy_store::UserRecord;

use super::ApiError;
use super::extract::{ApiJson, Caller};
use crate::state::AppState;

/// More users than any site has; bounds one request's work.
const MAX_USERS: usize = 10_000;

#[utoipa::path(
    post, path = "/v1/identity/sync", tag = "subclouds", security(("user_token" = [])),
    request_body = IdentitySync,
    responses((status = 200, description = "Each user created or overwritten with its role and password hash; others kept", body = IdentitySynced), (status = 400, description = "An invalid name or a password hash that is not an argon2 PHC string", body = ErrorBody), (status = 403, description = "The caller is not an admin", body = ErrorBody), (status = 409, description = "The sync would leave the site without an admin; nothing changed", body = ErrorBody))
)]
pub async fn sync(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<IdentitySync>,
) -> Result<Json<IdentitySynced>, ApiError> {
    caller.require(Role::Admin)?;
    if request.users.len() > MAX_USERS {
        return Err(ApiError::invalid(
            "users",
            format!("at most {MAX_USERS} users at once"),
        ));
    }
    let now = crate::clock::now();
    let mut users = Vec::with_capacity(request.users.len());
    for (i, user) in request.users.into_iter().enumerate() {
        validate_name(&format!("users[{i}].name"), &user.name)?;
        // A hash this site cannot verify against would lock the user out.
        let usable = argon2::PasswordHash::new(&user.password_hash)
            .is_ok_and(|hash| hash.algorithm.as_str().starts_with("argon2"));
        if !usable {
            return Err(ApiError::invalid(
                &format!("users[{i}].password_hash"),
                "is not an argon2 PHC string",
            ));
        }
        users.push(UserRecord {
            name: user.name,
            role: user.role,
            password_hash: user.password_hash,
            created_at: now,
        });
    }
    let changed = state.subclouds.sync_users(&users).await?;
    if changed > 0 {
        tracing::info!(
            changed,
            by = caller.name,
            "users synced from the System Controller"
        );
    }
    Ok(Json(IdentitySynced { changed }))
}

//! `/v1/users`: user management, for admins only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convoy_api::users::{NewUser, User, UserList};
use convoy_core::role::Role;
use convoy_core::validation::{validate_name, validate_password};
use convoy_store::{UserDeletion, UserRecord};

use super::extract::{ApiJson, ApiPath, Caller};
use super::{ApiError, views};
use crate::secrets;
use crate::state::AppState;
use convoy_api::ErrorBody;

#[utoipa::path(
    get, path = "/v1/users", tag = "users", security(("user_token" = [])),
    responses((status = 200, description = "Every user (admins only)", body = UserList), (status = 403, description = "The caller is not an admin", body = ErrorBody))
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<UserList>, ApiError> {
    caller.require(Role::Admin)?;
    let users = state
        .store
        .users()
        .await?
        .into_iter()
        .map(views::user)
        .collect();
    Ok(Json(UserList { users }))
}

#[utoipa::path(
    post, path = "/v1/users", tag = "users", security(("user_token" = [])),
    request_body = NewUser,
    responses((status = 201, description = "The new user", body = User), (status = 409, description = "The user exists", body = ErrorBody))
)]
pub async fn add(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(Role::Admin)?;
    validate_name("name", &request.name)?;
    validate_password("password", &request.password)?;
    if state.store.user(&request.name).await?.is_some() {
        return Err(ApiError::conflict(format!(
            "user {:?} already exists",
            request.name
        )));
    }
    let password = request.password;
    let hash = state
        .hashing
        .run(move || secrets::hash_password(&password))
        .await?
        .map_err(ApiError::internal)?;
    let record = UserRecord {
        name: request.name,
        role: request.role,
        password_hash: hash,
        created_at: crate::clock::now(),
    };
    state.store.insert_user(&record).await?;
    tracing::info!(
        user = record.name,
        role = record.role.as_str(),
        by = caller.name,
        "user added"
    );
    Ok((StatusCode::CREATED, Json(views::user(record))))
}

#[utoipa::path(
    delete, path = "/v1/users/{name}", tag = "users", security(("user_token" = [])),
    params(("name" = String, Path, description = "The user's name")),
    responses((status = 204, description = "Deleted; the user's tokens stop working"), (status = 404, description = "No such user", body = ErrorBody), (status = 409, description = "The caller's own user, or the last admin", body = ErrorBody))
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin)?;
    // The store refuses to delete the last admin; refusing to delete oneself as well keeps a
    // caller from locking themselves out by mistake.
    if name == caller.name {
        return Err(ApiError::conflict(
            "you cannot delete your own user; another admin can",
        ));
    }
    match state.store.delete_user(&name).await? {
        UserDeletion::Deleted => {}
        UserDeletion::NotFound => return Err(ApiError::not_found(format!("user {name:?}"))),
        // Reached when another admin deleted the caller a moment ago.
        UserDeletion::LastAdmin => {
            return Err(ApiError::conflict(format!(
                "user {name:?} is the last admin; add another admin first"
            )));
        }
    }
    tracing::info!(user = name, by = caller.name, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

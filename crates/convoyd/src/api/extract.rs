//! Extractors: JSON bodies and query strings whose errors name the field, the authenticated
//! user (`Caller`) and the authenticated agent (`AgentHost`).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use convoy_api::AUTH_HEADER;
use convoy_core::role::Role;
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::secrets::token_hash;
use crate::server::{BodyTimedOut, BodyTimeout};
use crate::state::AppState;

/// A JSON body. Malformed JSON, unknown, missing and mistyped fields, trailing data and
/// oversized bodies are refused with a message that names the field.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // A JSON body is small: it must arrive whole within the body timeout.
        let timeout = req.extensions().get::<BodyTimeout>().map(|t| t.0);
        let read = Bytes::from_request(req, state);
        let read = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, read)
                .await
                .map_err(|_| body_timed_out())?,
            None => read.await,
        };
        let bytes = read.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    "body: larger than this controller accepts (max_body_bytes)",
                )
            }
            other if caused_by::<BodyTimedOut>(&other) => body_timed_out(),
            other => ApiError::invalid("body", other.body_text()),
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

fn body_timed_out() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        "body: did not arrive within the body timeout (body_timeout_seconds)",
    )
}

/// Whether `error` or one of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<E>() {
            return true;
        }
        next = error.source();
    }
    false
}

/// Parses a JSON document into `T`, turning serde's error into `"<field>: <reason>"`.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would also read a struct from an array; every Convoy body is an object.
    if let Some(first) = bytes.trim_ascii_start().first()
        && *first != b'{'
    {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        describe_json_error(&path, e.into_inner())
    })?;
    de.end()
        .map_err(|_| ApiError::invalid("body", "unexpected data after the JSON document"))?;
    Ok(value)
}

fn describe_json_error(path: &str, error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let full = error.to_string();
    // serde_json appends " at line L column C"; the field name says more than the position.
    let reason = match full.rfind(" at line ") {
        Some(at) => &full[..at],
        None => &full,
    };
    let parent = if path == "." { "" } else { path };
    let join = |field: &str| {
        if parent.is_empty() {
            field.to_string()
        } else {
            format!("{parent}.{field}")
        }
    };
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid("body", format!("malformed JSON: {full}"))
        }
        Category::Data => {
            if let Some(field) = between(reason, "missing field `", "`") {
                ApiError::invalid(&join(field), "is required")
            } else if let Some(field) = between(reason, "unknown field `", "`") {
                // serde_path_to_error's path already ends at the unknown field.
                let name = if parent.ends_with(field) {
                    parent.to_string()
                } else {
                    join(field)
                };
                let expected = reason
                    .split_once(", ")
                    .map(|(_, rest)| format!("; {rest}"))
                    .unwrap_or_default();
                ApiError::invalid(&name, format!("unknown field{expected}"))
            } else if parent.is_empty() {
                ApiError::invalid("body", reason)
            } else {
                ApiError::invalid(parent, reason)
            }
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let rest = &text[text.find(start)? + start.len()..];
    Some(&rest[..rest.find(end)?])
}

/// A query string; errors name the parameter.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                if let Some(field) = between(reason, "missing field `", "`") {
                    return Err(ApiError::invalid(field, "is required"));
                }
                if let Some(field) = between(reason, "unknown field `", "`") {
                    return Err(ApiError::invalid(field, "unknown parameter"));
                }
                match reason.split_once(": ") {
                    Some((field, why)) => Err(ApiError::invalid(field, why)),
                    None => Err(ApiError::invalid("query", reason)),
                }
            }
        }
    }
}

/// Path parameters; a parameter that is not valid UTF-8 or not of its type is refused with a
/// JSON error naming it (axum's own answer is plain text).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::path::ErrorKind;
        use axum::extract::rejection::PathRejection;
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => Err(match e.into_kind() {
                ErrorKind::InvalidUtf8InPathParam { key } => {
                    ApiError::invalid(&key, "is not valid UTF-8")
                }
                ErrorKind::ParseErrorAtKey {
                    key, expected_type, ..
                } => ApiError::invalid(&key, format!("is not a {expected_type}")),
                other => ApiError::invalid("path", other),
            }),
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// The client's address, when the connection recorded it (`crate::server` does).
pub struct ClientAddress(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(ClientAddress(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// The authenticated user of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role.allows(role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(role, &self.name, self.role))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::internal("route without authentication"))
    }
}

/// Middleware for user routes: a valid, unexpired token is required, and readers may only
/// read. Routes that need more (user management) check for it themselves.
pub async fn authenticate_user(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    match check_user(&state, req).await {
        Ok((req, caller)) => {
            let mut req = req;
            req.extensions_mut().insert(caller);
            Ok(next.run(req).await)
        }
        // The body is not read: the connection throws it away after the answer has gone.
        Err((error, _)) => Err(error),
    }
}

async fn check_user(
    state: &AppState,
    req: Request,
) -> Result<(Request, Caller), (ApiError, Request)> {
    let token = req
        .headers()
        .get(AUTH_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let reads_only = matches!(*req.method(), Method::GET | Method::HEAD);
    match identify(state, token.as_deref(), reads_only).await {
        Ok(caller) => Ok((req, caller)),
        Err(error) => Err((error, req)),
    }
}

/// The user a token belongs to, if it is known and unexpired; callers that change something
/// must be operators unless `reads_only`.
pub(super) async fn identify(
    state: &AppState,
    token: Option<&str>,
    reads_only: bool,
) -> Result<Caller, ApiError> {
    let token = token.ok_or_else(|| {
        ApiError::unauthorized(
            "authentication required: send a token in X-Auth-Token (POST /v3/auth/tokens \
                 issues one; the CLI takes --username/--password or CONVOY_TOKEN)",
        )
    })?;
    let owner = state
        .store
        .token_owner(&token_hash(token))
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized("authentication failed: unknown token; log in again")
        })?;
    if owner.expires_at <= crate::clock::now() {
        return Err(ApiError::unauthorized(format!(
            "authentication failed: the token expired at {}; log in again",
            owner.expires_at
        )));
    }
    let caller = Caller {
        name: owner.user.name,
        role: owner.user.role,
    };
    if !reads_only {
        caller.require(Role::Operator)?;
    }
    Ok(caller)
}

/// The host whose agent sent the request, identified by its credential.
pub struct AgentHost {
    pub hostname: String,
}

/// Error code the agent recognises as "my credential is gone".
pub const UNKNOWN_CREDENTIAL: &str = "unknown_credential";

impl FromRequestParts<AppState> for AgentHost {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = parts
            .headers
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "authentication required: send the host credential in X-Auth-Token",
                )
            })?;
        let hash = token_hash(credential);
        let generation = match state.credentials.hostname(&hash) {
            Ok(hostname) => return Ok(AgentHost { hostname }),
            Err(generation) => generation,
        };
        let host = state
            .store
            .host_by_credential(&hash)
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    UNKNOWN_CREDENTIAL,
                    "authentication failed: the controller does not know this host credential \
                     (the host was deleted, or the controller's database was replaced); \
                     remove the agent's identity file and enrol again",
                )
            })?;
        state.credentials.remember(generation, hash, &host.hostname);
        Ok(AgentHost {
            hostname: host.hostname,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        cpus: u32,
    }

    fn message(json: &str) -> String {
        parse_json::<Outer>(json.as_bytes()).unwrap_err().message
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(message(r#"{"inner": {"cpus": 1}}"#), "name: is required");
        assert_eq!(
            message(r#"{"name": "a", "inner": {}}"#),
            "inner.cpus: is required"
        );
        assert!(
            message(r#"{"name": "a", "inner": {"cpus": "x"}}"#)
                .starts_with("inner.cpus: invalid type: string \"x\", expected u32")
        );
        let unknown = message(r#"{"name": "a", "inner": {"cpus": 1}, "colour": 1}"#);
        assert!(unknown.starts_with("colour: unknown field"), "{unknown}");
        let nested = message(r#"{"name": "a", "inner": {"cpus": 1, "gpus": 2}}"#);
        assert!(nested.starts_with("inner.gpus: unknown field"), "{nested}");
    }

    #[test]
    fn malformed_and_trailing_json_is_refused() {
        assert!(message("{").starts_with("body: malformed JSON"));
        assert!(message("").starts_with("body: malformed JSON"));
        assert_eq!(
            message(r#"{"name": "a", "inner": {"cpus": 1}} x"#),
            "body: unexpected data after the JSON document"
        );
        assert_eq!(message("[1]"), "body: must be a JSON object");
    }
}

//! Keystone v3 token requests and responses, in the subset StarlingX clients use.

use serde::{Deserialize, Serialize};

/// `POST /v3/auth/tokens` body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub auth: Auth,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Auth {
    pub identity: Identity,
    /// Accepted and ignored: Convoy has one implicit project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<serde_json::Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<PasswordMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenMethod>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordMethod {
    pub user: PasswordUser,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordUser {
    pub name: String,
    pub password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<serde_json::Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenMethod {
    pub id: String,
}

impl AuthRequest {
    pub fn password(name: &str, password: &str) -> Self {
        AuthRequest {
            auth: Auth {
                identity: Identity {
                    methods: vec!["password".into()],
                    password: Some(PasswordMethod {
                        user: PasswordUser {
                            name: name.into(),
                            password: password.into(),
                            domain: Some(serde_json::json!({"name": "Default"})),
                        },
                    }),
                    token: None,
                },
                scope: None,
            },
        }
    }
}

/// `POST /v3/auth/tokens` reply body; the token itself is in `X-Subject-Token`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub token: TokenInfo,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenInfo {
    pub methods: Vec<String>,
    pub expires_at: String,
    pub issued_at: String,
    pub user: NamedRef,
    pub project: NamedRef,
    pub roles: Vec<RoleRef>,
    pub catalog: Vec<serde_json::Value>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
    pub domain: DomainRef,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DomainRef {
    pub id: String,
    pub name: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleRef {
    pub id: String,
    pub name: String,
}

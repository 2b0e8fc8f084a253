//! The System Controller's wire contract: dcmanager's v1.0 subcloud and group objects
//! (spec/dcmanager-api.md §6), its error body, the site summary a System Controller audits,
//! and the client calls over them.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::AUTH_HEADER;
use crate::client::{Client, ClientError, REQUEST_TIMEOUT};

/// Where dcmanager's routes live on a convoyd.
pub const DC_BASE: &str = "/v1.0";

/// A subcloud as dcmanager shows it. Keys are dcmanager's (mixed `-` and `_`, as the original).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subcloud {
    pub id: i64,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(rename = "software-version", default)]
    pub software_version: Option<String>,
    #[serde(rename = "management-state")]
    pub management_state: String,
    #[serde(rename = "availability-status")]
    pub availability_status: String,
    #[serde(rename = "deploy-status")]
    pub deploy_status: String,
    #[serde(rename = "backup-status", default)]
    pub backup_status: Option<String>,
    #[serde(rename = "backup-datetime", default)]
    pub backup_datetime: Option<String>,
    #[serde(rename = "error-description", default)]
    pub error_description: String,
    #[serde(rename = "region-name", default)]
    pub region_name_key: String,
    #[serde(rename = "management-subnet", default)]
    pub management_subnet: Option<String>,
    #[serde(rename = "management-start-ip", default)]
    pub management_start_ip: Option<String>,
    #[serde(rename = "management-end-ip", default)]
    pub management_end_ip: Option<String>,
    #[serde(rename = "management-gateway-ip", default)]
    pub management_gateway_ip: Option<String>,
    #[serde(rename = "openstack-installed", default)]
    pub openstack_installed: bool,
    #[serde(rename = "prestage-status", default)]
    pub prestage_status: Option<String>,
    #[serde(rename = "prestage-versions", default)]
    pub prestage_versions: Option<String>,
    /// Only in the answer to a prestage of this subcloud: the version it prestages.
    #[serde(
        rename = "prestage-software-version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub prestage_software_version: Option<String>,
    #[serde(rename = "systemcontroller-gateway-ip", default)]
    pub systemcontroller_gateway_ip: Option<String>,
    #[serde(default)]
    pub data_install: Option<serde_json::Value>,
    #[serde(default)]
    pub data_upgrade: Option<serde_json::Value>,
    #[serde(rename = "created-at")]
    pub created_at: String,
    #[serde(rename = "updated-at", default)]
    pub updated_at: Option<String>,
    pub group_id: i64,
    #[serde(default)]
    pub peer_group_id: Option<i64>,
    #[serde(default)]
    pub rehome_data: Option<serde_json::Value>,
    /// Convoy's: where the subcloud's convoyd answers.
    #[serde(rename = "bootstrap-address", default)]
    pub bootstrap_address: String,
    /// Convoy's: what the last audit saw of the subcloud's hosts and alarms.
    #[serde(default)]
    pub audit: Option<SiteAudit>,
    #[serde(default)]
    pub endpoint_sync_status: Vec<EndpointSyncStatus>,
    /// In lists only: the overall sync status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_status: Option<String>,
    /// `/detail` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oam_floating_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_config_sync_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region_name: Option<String>,
    /// Set on some changes (dcmanager's `info_message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointSyncStatus {
    pub endpoint_type: String,
    pub sync_status: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubcloudList {
    pub subclouds: Vec<Subcloud>,
}

/// A subcloud group as dcmanager shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubcloudGroup {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub update_apply_type: String,
    pub max_parallel_subclouds: i64,
    #[serde(rename = "created-at", default)]
    pub created_at: Option<String>,
    #[serde(rename = "updated-at", default)]
    pub updated_at: Option<String>,
    /// In lists only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcloud_count: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubcloudGroupList {
    pub subcloud_groups: Vec<SubcloudGroup>,
}

/// The body of `POST /v1.0/subcloud-groups` and (every field optional) of its PATCH.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubcloudGroupFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_apply_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel_subclouds: Option<i64>,
}

/// dcmanager's error body when the client asks for JSON (`Accept: application/json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DcErrorBody {
    pub code: u16,
    pub title: String,
    pub description: String,
}

/// What a System Controller audits of a site, in one request (`GET /v1/site`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteAudit {
    /// The release the site's controller runs (`MM.mm`).
    pub software_version: String,
    /// Patches applied or committed on the site, by id.
    pub deployed: Vec<String>,
    pub hosts: HostsSummary,
    /// Active alarms that affect management (they block orchestration).
    pub mgmt_affecting_alarms: u32,
    /// Every active alarm.
    pub alarms: u32,
    /// Each user's name and [`user_digest`], so that a System Controller sees which of its users
    /// differ here without reading password hashes.
    #[serde(default)]
    pub users: Vec<UserDigest>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDigest {
    pub name: String,
    pub digest: String,
}

/// SHA-256 of a user's name, role and password hash: equal on two sites when the user is the
/// same on both.
pub fn user_digest(name: &str, role: convoy_core::role::Role, password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in [name, role.as_str(), password_hash] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /v1/identity/sync`: users a System Controller keeps on a subcloud, each created or
/// overwritten with its role and password hash (admins only).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySync {
    pub users: Vec<SyncedUser>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncedUser {
    pub name: String,
    pub role: convoy_core::role::Role,
    /// An argon2 PHC string, as the System Controller stores it.
    pub password_hash: String,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentitySynced {
    /// Users created or changed.
    pub changed: u32,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsSummary {
    pub total: u32,
    /// Unlocked, enabled and available.
    pub in_service: u32,
    pub locked: u32,
    pub unavailable: u32,
}

/// A `multipart/form-data` body, as dcmanager's client sends subcloud add and update.
#[derive(Debug, Clone, Default)]
pub struct Form {
    parts: Vec<(String, Option<String>, String)>,
}

impl Form {
    pub fn new() -> Self {
        Form::default()
    }

    /// A text field.
    pub fn text(mut self, name: &str, value: impl Into<String>) -> Self {
        self.parts.push((name.into(), None, value.into()));
        self
    }

    /// A file field (`bootstrap_values`).
    pub fn file(mut self, name: &str, file_name: &str, content: impl Into<String>) -> Self {
        self.parts
            .push((name.into(), Some(file_name.into()), content.into()));
        self
    }

    /// The content type (with its boundary) and the body.
    pub fn encode(&self) -> (String, Vec<u8>) {
        let boundary = format!("convoy-{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (name, file_name, value) in &self.parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file_name {
                Some(file_name) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; \
                         filename=\"{file_name}\"\r\nContent-Type: application/x-yaml\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(value.as_bytes());
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        (format!("multipart/form-data; boundary={boundary}"), body)
    }
}

enum DcBody<'a> {
    None,
    Json(&'a SubcloudGroupFields),
    Value(&'a serde_json::Value),
    Form(&'a Form),
}

impl Client {
    /// A client for another controller with this one's trust and connection pool, without a
    /// token: a System Controller reaches many subclouds through one pool.
    pub fn with_base(&self, base_url: &str) -> Client {
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            http: self.http.clone(),
            token: None,
        }
    }

    pub async fn dc_subclouds(&self) -> Result<Vec<Subcloud>, ClientError> {
        let list: SubcloudList = self
            .dc_call(Method::GET, "/subclouds/", DcBody::None)
            .await?;
        Ok(list.subclouds)
    }

    pub async fn dc_subcloud(
        &self,
        reference: &str,
        detail: bool,
    ) -> Result<Subcloud, ClientError> {
        let suffix = if detail { "/detail" } else { "" };
        self.dc_call(
            Method::GET,
            &format!("/subclouds/{}{suffix}", segment(reference)),
            DcBody::None,
        )
        .await
    }

    /// Registers a subcloud (dcmanager's multipart add).
    pub async fn dc_add_subcloud(&self, form: &Form) -> Result<Subcloud, ClientError> {
        self.dc_call(Method::POST, "/subclouds/", DcBody::Form(form))
            .await
    }

    /// Updates, manages or unmanages a subcloud (dcmanager's multipart PATCH).
    pub async fn dc_update_subcloud(
        &self,
        reference: &str,
        form: &Form,
    ) -> Result<Subcloud, ClientError> {
        self.dc_call(
            Method::PATCH,
            &format!("/subclouds/{}", segment(reference)),
            DcBody::Form(form),
        )
        .await
    }

    pub async fn dc_delete_subcloud(&self, reference: &str) -> Result<(), ClientError> {
        self.dc_send(
            Method::DELETE,
            &format!("/subclouds/{}", segment(reference)),
            DcBody::None,
        )
        .await?;
        Ok(())
    }

    pub async fn dc_groups(&self) -> Result<Vec<SubcloudGroup>, ClientError> {
        let list: SubcloudGroupList = self
            .dc_call(Method::GET, "/subcloud-groups/", DcBody::None)
            .await?;
        Ok(list.subcloud_groups)
    }

    pub async fn dc_group(&self, reference: &str) -> Result<SubcloudGroup, ClientError> {
        self.dc_call(
            Method::GET,
            &format!("/subcloud-groups/{}", segment(reference)),
            DcBody::None,
        )
        .await
    }

    pub async fn dc_add_group(
        &self,
        fields: &SubcloudGroupFields,
    ) -> Result<SubcloudGroup, ClientError> {
        self.dc_call(Method::POST, "/subcloud-groups/", DcBody::Json(fields))
            .await
    }

    pub async fn dc_update_group(
        &self,
        reference: &str,
        fields: &SubcloudGroupFields,
    ) -> Result<SubcloudGroup, ClientError> {
        self.dc_call(
            Method::PATCH,
            &format!("/subcloud-groups/{}", segment(reference)),
            DcBody::Json(fields),
        )
        .await
    }

    pub async fn dc_delete_group(&self, reference: &str) -> Result<(), ClientError> {
        self.dc_send(
            Method::DELETE,
            &format!("/subcloud-groups/{}", segment(reference)),
            DcBody::None,
        )
        .await?;
        Ok(())
    }

    pub async fn dc_group_subclouds(&self, reference: &str) -> Result<Vec<Subcloud>, ClientError> {
        let list: SubcloudList = self
            .dc_call(
                Method::GET,
                &format!("/subcloud-groups/{}/subclouds", segment(reference)),
                DcBody::None,
            )
            .await?;
        Ok(list.subclouds)
    }

    /// Creates a System Controller strategy from dcmanager's create body.
    pub async fn dc_create_strategy(
        &self,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.dc_call(Method::POST, "/sw-update-strategy/", DcBody::Value(body))
            .await
    }

    /// Prestages one subcloud (`PATCH /subclouds/<ref>/prestage`) with dcmanager's body.
    pub async fn dc_prestage_subcloud(
        &self,
        reference: &str,
        body: &serde_json::Value,
    ) -> Result<Subcloud, ClientError> {
        self.dc_call(
            Method::PATCH,
            &format!("/subclouds/{}/prestage", segment(reference)),
            DcBody::Value(body),
        )
        .await
    }

    /// The strategy of `kind` (`sw-deploy`, `prestage`).
    pub async fn dc_strategy(&self, kind: &str) -> Result<serde_json::Value, ClientError> {
        self.dc_call(
            Method::GET,
            &format!("/sw-update-strategy?type={kind}"),
            DcBody::None,
        )
        .await
    }

    /// `apply` or `abort`.
    pub async fn dc_strategy_action(
        &self,
        kind: &str,
        action: &str,
    ) -> Result<serde_json::Value, ClientError> {
        self.dc_call(
            Method::POST,
            &format!("/sw-update-strategy/actions?type={kind}"),
            DcBody::Value(&serde_json::json!({ "action": action })),
        )
        .await
    }

    pub async fn dc_delete_strategy(&self, kind: &str) -> Result<serde_json::Value, ClientError> {
        self.dc_call(
            Method::DELETE,
            &format!("/sw-update-strategy?type={kind}"),
            DcBody::None,
        )
        .await
    }

    /// Every step, in id order (`{"strategy-steps": [...]}` unwrapped).
    pub async fn dc_strategy_steps(&self) -> Result<Vec<serde_json::Value>, ClientError> {
        let list: serde_json::Value = self
            .dc_call(Method::GET, "/sw-update-strategy/steps", DcBody::None)
            .await?;
        Ok(list["strategy-steps"]
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    pub async fn dc_strategy_step(&self, cloud: &str) -> Result<serde_json::Value, ClientError> {
        self.dc_call(
            Method::GET,
            &format!("/sw-update-strategy/steps/{}", segment(cloud)),
            DcBody::None,
        )
        .await
    }

    /// What a System Controller audits of this site (`GET /v1/site`).
    pub async fn site_audit(&self) -> Result<SiteAudit, ClientError> {
        self.call(Method::GET, "/v1/site", None::<&()>).await
    }

    /// Creates or overwrites users with their roles and password hashes (`POST
    /// /v1/identity/sync`, admins only).
    pub async fn sync_identity(&self, sync: &IdentitySync) -> Result<IdentitySynced, ClientError> {
        self.call(Method::POST, "/v1/identity/sync", Some(sync))
            .await
    }

    async fn dc_call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: DcBody<'_>,
    ) -> Result<T, ClientError> {
        let response = self.dc_send(method, path, body).await?;
        let url = response.url().to_string();
        response
            .json::<T>()
            .await
            .map_err(|e| ClientError::Protocol {
                url,
                reason: e.to_string(),
            })
    }

    async fn dc_send(
        &self,
        method: Method,
        path: &str,
        body: DcBody<'_>,
    ) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .request(method, format!("{}{DC_BASE}{path}", self.base))
            .header(reqwest::header::ACCEPT, "application/json")
            .timeout(REQUEST_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.header(AUTH_HEADER, token);
        }
        request = match body {
            DcBody::None => request,
            DcBody::Json(fields) => request.json(fields),
            DcBody::Value(value) => request.json(value),
            DcBody::Form(form) => {
                let (content_type, bytes) = form.encode();
                request
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(bytes)
            }
        };
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<DcErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api {
                status: status.as_u16(),
                code: body.title,
                message: body.description,
            }),
            // Convoy's own routes answer Convoy's error body (authentication, for one).
            Err(_) => self.check_text(status, text),
        }
    }

    fn check_text(
        &self,
        status: reqwest::StatusCode,
        text: String,
    ) -> Result<reqwest::Response, ClientError> {
        match serde_json::from_str::<crate::ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            }),
            Err(_) => Err(ClientError::Api {
                status: status.as_u16(),
                code: status.as_str().into(),
                message: format!("{} answered {status}", self.base),
            }),
        }
    }
}

/// A reference as one URL path segment.
fn segment(reference: &str) -> String {
    reference
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_encodes_text_and_file_parts() {
        let (content_type, body) = Form::new()
            .text("name", "sc1")
            .file("bootstrap_values", "b.yaml", "name: sc1\n")
            .encode();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        let body = String::from_utf8(body).unwrap();
        assert!(body.starts_with(&format!("--{boundary}\r\n")));
        assert!(body.contains("name=\"name\"\r\n\r\nsc1\r\n"));
        assert!(body.contains("filename=\"b.yaml\""));
        assert!(body.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn references_are_escaped_as_one_segment() {
        assert_eq!(segment("sc-1"), "sc-1");
        assert_eq!(segment("a/b c"), "a%2Fb%20c");
    }
}

//! Talking to a subcloud's convoyd: the trust its address needs, and a logged-in client for
//! the System Controller's service account, its token kept in memory between audits.

use std::collections::HashMap;
use std::sync::Mutex;

use convoy_api::{Client, ClientError, Trust};
use convoy_store::subclouds::SubcloudRecord;

use super::DcSettings;

/// How to trust a subcloud's certificate: the configured CA, else the pinned fingerprint, else
/// (plain HTTP) nothing to trust.
pub fn trust(settings: &DcSettings, fingerprint: Option<&str>) -> Result<Trust, ClientError> {
    if let Some(ca) = &settings.subcloud_ca {
        return Ok(ca.clone());
    }
    match fingerprint {
        Some(pinned) => Trust::fingerprint(pinned).map_err(|e| ClientError::Protocol {
            url: String::new(),
            reason: e.to_string(),
        }),
        None => Ok(Trust::System),
    }
}

/// Tokens of the service accounts, by subcloud id. A token is reused until the subcloud refuses
/// it, so an audit costs the subcloud a password hash only once per token lifetime.
#[derive(Debug, Default)]
pub struct Sessions {
    tokens: Mutex<HashMap<i64, String>>,
}

impl Sessions {
    /// A client for the subcloud logged in as the service account.
    pub async fn client(
        &self,
        settings: &DcSettings,
        subcloud: &SubcloudRecord,
    ) -> Result<Client, ClientError> {
        let trust = trust(settings, subcloud.tls_fingerprint.as_deref())?;
        let client = Client::with_trust(&subcloud.address, &trust)?;
        let cached = self.tokens.lock().unwrap().get(&subcloud.id).cloned();
        if let Some(token) = cached {
            return Ok(client.with_token(token));
        }
        let token = client
            .login(&subcloud.service_user, &subcloud.service_password)
            .await?;
        self.tokens
            .lock()
            .unwrap()
            .insert(subcloud.id, token.clone());
        Ok(client.with_token(token))
    }

    /// Forgets a subcloud's token (it was refused, or the subcloud is gone).
    pub fn forget(&self, id: i64) {
        self.tokens.lock().unwrap().remove(&id);
    }
}

/// Whether an error means the token is no longer good (log in again).
pub fn token_refused(error: &ClientError) -> bool {
    error.status() == Some(401)
}

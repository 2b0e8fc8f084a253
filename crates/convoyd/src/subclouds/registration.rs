//! Attaching a site controller as a subcloud: the sysadmin (`admin`) password is used once, to
//! create the System Controller's service account there; only that account's credential is
//! kept. Over HTTPS without a configured CA, the subcloud's certificate is pinned first, and
//! the password is sent only to the holder of that certificate.

use convoy_api::users::NewUser;
use convoy_api::{Client, ClientError, Trust};
use convoy_core::role::Role;

use super::DcSettings;
use super::connection::Sessions;
use crate::secrets;

/// What the System Controller keeps of a subcloud it attached.
#[derive(Debug, Clone)]
pub struct Attached {
    pub tls_fingerprint: Option<String>,
    pub service_user: String,
    pub service_password: String,
    pub software_version: String,
}

/// Why attaching failed; nothing was kept.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot reach it at {address}: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("the sysadmin password is wrong")]
    WrongPassword,
    #[error("its controller refused: {0}")]
    Refused(String),
}

/// The sysadmin account of a Convoy site.
pub(crate) const SYSADMIN: &str = "admin";

pub async fn attach(
    settings: &DcSettings,
    sessions: &Sessions,
    address: &str,
    sysadmin_password: &str,
) -> Result<Attached, AttachError> {
    let unreachable = |e: ClientError| match e {
        ClientError::Unreachable { reason, .. } => AttachError::Unreachable {
            address: address.into(),
            reason,
        },
        ClientError::InvalidUrl { reason, .. } => AttachError::Unreachable {
            address: address.into(),
            reason,
        },
        other => AttachError::Refused(other.to_string()),
    };
    let tls_fingerprint = if address.starts_with("https://") && settings.subcloud_ca.is_none() {
        let probe = Client::with_trust(address, &Trust::FirstUse).map_err(unreachable)?;
        probe.controller_fingerprint().await.map_err(unreachable)?
    } else {
        None
    };
    let client = match &tls_fingerprint {
        Some(pinned) => {
            let trust = super::connection::trust(settings, Some(pinned))
                .map_err(|e| AttachError::Refused(e.to_string()))?;
            Client::with_trust(address, &trust).map_err(unreachable)?
        }
        // Trusted by CA, or plain HTTP: the connection pool every such subcloud shares.
        None => sessions
            .shared(settings)
            .map_err(unreachable)?
            .with_base(address),
    };
    let admin_token = match client.login(SYSADMIN, sysadmin_password).await {
        Ok(token) => token,
        Err(ClientError::Api { status: 401, .. }) => return Err(AttachError::WrongPassword),
        Err(e) => return Err(unreachable(e)),
    };
    let admin = client.clone().with_token(admin_token.clone());
    let service_user = secrets::generate("systemcontroller-", 8).to_lowercase();
    let service_password = secrets::generate("", 32);
    let result = async {
        let site = admin.site_audit().await?;
        admin
            .add_user(&NewUser {
                name: service_user.clone(),
                password: service_password.clone(),
                role: Role::Admin,
            })
            .await?;
        Ok::<_, ClientError>(site)
    }
    .await;
    // The sysadmin's token is not kept.
    let _ = admin.revoke_token(&admin_token).await;
    let site = result.map_err(|e| AttachError::Refused(e.to_string()))?;
    Ok(Attached {
        tls_fingerprint,
        service_user,
        service_password,
        software_version: site.software_version,
    })
}

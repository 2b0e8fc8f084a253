//! How a client decides whether the controller at the other end of an `https://` URL is the
//! real one: the platform's trust store, a CA certificate the operator names, or the exact
//! certificate, by the SHA-256 fingerprint convoyd prints when it makes its own.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// What a client trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The platform's trust store (a certificate from a public or the company's CA).
    #[default]
    System,
    /// Certificates issued by one of these CA certificates (or one of them itself, such as
    /// convoyd's self-signed certificate), for the URL's host name.
    Ca(Vec<CertificateDer<'static>>),
    /// Exactly the certificate with this SHA-256 fingerprint, whatever names it holds.
    Fingerprint([u8; 32]),
    /// Whatever certificate the server presents (its handshake signature still checked): only
    /// for learning the fingerprint to pin, before anything secret is sent.
    FirstUse,
}

/// Why a trust setting could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("cannot read the CA certificate {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error(
        "invalid certificate fingerprint {text:?}: expected 64 hex digits (SHA-256), as convoyd \
         prints them, optionally with a sha256: prefix and colons"
    )]
    Fingerprint { text: String },
}

impl Trust {
    /// Trusts the CA certificates in the PEM file at `path`.
    pub fn ca_file(path: &Path) -> Result<Trust, TrustError> {
        let failed = |reason: String| TrustError::CaFile {
            path: path.display().to_string(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| failed(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(e.to_string()))?;
        if certs.is_empty() {
            return Err(failed("it holds no PEM certificate".into()));
        }
        Ok(Trust::Ca(certs))
    }

    /// Trusts exactly the certificate with this fingerprint.
    pub fn fingerprint(text: &str) -> Result<Trust, TrustError> {
        parse_fingerprint(text).map(Trust::Fingerprint)
    }

    /// `builder` with this trust (the platform's is reqwest's default and changes nothing).
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match self.client_config() {
            Some(config) => builder.use_preconfigured_tls(config),
            None => builder,
        }
    }

    /// The TLS configuration for this trust; None for the platform's (reqwest's default).
    fn client_config(&self) -> Option<rustls::ClientConfig> {
        let builder = rustls::ClientConfig::builder();
        match self {
            Trust::System => None,
            Trust::Ca(certs) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs {
                    // A certificate rustls cannot use as an anchor is left out; the
                    // handshake then fails naming the unknown issuer.
                    let _ = roots.add(cert.clone());
                }
                Some(builder.with_root_certificates(roots).with_no_client_auth())
            }
            Trust::Fingerprint(expected) => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                        expected: *expected,
                        provider: rustls::crypto::ring::default_provider(),
                        first_use: false,
                    }))
                    .with_no_client_auth(),
            ),
            Trust::FirstUse => Some(
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(PinnedCertificate {
                        expected: [0; 32],
                        provider: rustls::crypto::ring::default_provider(),
                        first_use: true,
                    }))
                    .with_no_client_auth(),
            ),
        }
    }
}

/// Whether `url` is plain HTTP to another machine: what clients warn about, once. Plain HTTP
/// on loopback never crosses a network.
pub fn insecure_over_network(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return false;
    };
    if parsed.scheme() != "http" {
        return false;
    }
    let host = parsed.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => host != "localhost",
    }
}

/// `sha256:` and 64 lowercase hex digits: how Convoy shows a certificate's fingerprint.
pub fn fingerprint_of(cert_der: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(cert_der)))
}

/// Reads a fingerprint with or without the `sha256:` prefix, in either case, with or
/// without colons.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32], TrustError> {
    let failed = || TrustError::Fingerprint { text: text.into() };
    let trimmed = text.trim();
    let digits: String = trimmed
        .strip_prefix("sha256:")
        .or_else(|| trimmed.strip_prefix("SHA256:"))
        .unwrap_or(trimmed)
        .chars()
        .filter(|c| *c != ':')
        .collect();
    if digits.len() != 64 {
        return Err(failed());
    }
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).map_err(|_| failed())?;
    }
    Ok(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Accepts exactly one certificate, by fingerprint; the handshake's signatures are still
/// checked against that certificate's key, so only its holder can answer.
#[derive(Debug)]
struct PinnedCertificate {
    expected: [u8; 32],
    provider: rustls::crypto::CryptoProvider,
    /// Accept any certificate (`Trust::FirstUse`).
    first_use: bool,
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.first_use || Sha256::digest(end_entity.as_ref()).as_slice() == self.expected {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the controller's certificate ({}) is not the one pinned (sha256:{})",
                fingerprint_of(end_entity.as_ref()),
                hex(&self.expected)
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_back_in_every_usual_spelling() {
        let shown = fingerprint_of(b"a certificate");
        let bytes = parse_fingerprint(&shown).unwrap();
        let bare = shown.trim_start_matches("sha256:");
        let colons: Vec<String> = bare
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap().to_uppercase())
            .collect();
        for spelling in [bare.to_string(), format!("SHA256:{}", colons.join(":"))] {
            assert_eq!(parse_fingerprint(&spelling).unwrap(), bytes, "{spelling}");
        }
        for bad in ["", "sha256:abc", &format!("{}zz", &bare[..62])] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_plain_http_to_another_machine_is_insecure() {
        for (url, insecure) in [
            ("http://10.0.0.1:7400", true),
            ("http://controller:7400", true),
            ("http://127.0.0.1:7400", false),
            ("http://localhost:7400", false),
            ("http://[::1]:7400", false),
            ("https://10.0.0.1:7400", false),
        ] {
            assert_eq!(insecure_over_network(url), insecure, "{url}");
        }
    }
}

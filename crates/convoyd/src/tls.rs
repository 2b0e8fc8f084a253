//! HTTPS for convoyd: the operator's certificate and key (`--tls-cert`, `--tls-key`), or, on
//! first start without them, a self-signed pair made in `DATA_DIR/tls/` whose fingerprint
//! clients pin. Plain HTTP only with `--insecure-http`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;

/// What convoyd serves HTTPS with.
pub struct ServerTls {
    pub acceptor: TlsAcceptor,
    /// The certificate file clients may trust as a CA (`--ca-cert`).
    pub cert_path: PathBuf,
    /// Its SHA-256 fingerprint, as clients pin it.
    pub fingerprint: String,
}

/// The TLS this controller serves with, or None with `--insecure-http`.
pub fn prepare(settings: &Settings) -> anyhow::Result<Option<ServerTls>> {
    if settings.insecure_http {
        return Ok(None);
    }
    let (cert_path, key_path) = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => self_signed(&settings.data_dir, &settings.tls_names)?,
        _ => bail!("--tls-cert and --tls-key go together: give both, or neither"),
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read the TLS certificate {}", cert_path.display()))?;
    let Some(leaf) = certs.first() else {
        bail!("{} holds no PEM certificate", cert_path.display());
    };
    let fingerprint = convoy_api::trust::fingerprint_of(leaf.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read the TLS key {}", key_path.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(ServerTls {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        cert_path,
        fingerprint,
    }))
}

/// `DATA_DIR/tls/{cert,key}.pem`, made on first start: valid for loopback, this machine's
/// name and `names`. The key is readable by convoyd's user only.
fn self_signed(data_dir: &Path, names: &[String]) -> anyhow::Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("tls");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut subject_names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
        && !host.trim().is_empty()
    {
        subject_names.push(host.trim().to_string());
    }
    subject_names.extend(names.iter().cloned());
    subject_names.dedup();
    let made = rcgen::generate_simple_self_signed(subject_names)
        .context("cannot make a self-signed TLS certificate")?;
    // The key first, then the certificate: a certificate on disk means its key is too.
    write_new(
        &key_path,
        made.signing_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write_new(&cert_path, made.cert.pem().as_bytes(), 0o644)?;
    tracing::info!(
        cert = %cert_path.display(),
        "made a self-signed TLS certificate; clients trust it with --ca-cert {} or by its \
         fingerprint",
        cert_path.display()
    );
    Ok((cert_path, key_path))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

//! Fetching a bundle from the controller: `GET /v1/agent/patches/{id}` with the host
//! credential in `X-Auth-Token`, streamed to `bundles/<id>.patch.part` while it is hashed,
//! then checked against the size and SHA-256 the command announced and renamed to
//! `<id>.patch`. The hash only catches a damaged or wrong download; trust comes from the
//! signature, which is verified after.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use convoy_api::error::ErrorBody;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::layout::Layout;
use super::plan::Step;

/// A download that receives nothing for this long has failed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The controller the agent fetches bundles from.
#[derive(Debug, Clone)]
pub struct BundleSource {
    base: String,
    credential: String,
    http: reqwest::Client,
}

impl BundleSource {
    pub fn new(
        base_url: &str,
        credential: &str,
        trust: &convoy_api::Trust,
    ) -> anyhow::Result<BundleSource> {
        // Idempotent; lets tests and `install-local` build a source without main's setup.
        convoy_api::install_crypto_provider();
        let http = trust
            .apply(reqwest::Client::builder().connect_timeout(Duration::from_secs(5)))
            .build()
            .context("cannot set up the HTTP client for downloads")?;
        Ok(BundleSource {
            base: base_url.trim_end_matches('/').to_string(),
            credential: credential.to_string(),
            http,
        })
    }

    /// Downloads the bundle of `step` into the layout's bundle directory; returns its path.
    /// A controller that is away (restarting, say) is tried again with backoff for up to
    /// [`RETRY_FOR`]; a refusal or a bundle that is not the one announced fails at once.
    pub async fn fetch(&self, step: &Step, layout: &Layout) -> anyhow::Result<PathBuf> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(200);
        loop {
            match self.fetch_once(step, layout).await {
                Ok(path) => return Ok(path),
                Err(Failure::Transient(e)) if tokio::time::Instant::now() + pause < deadline => {
                    tracing::warn!("{e:#}; trying again in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(Failure::Transient(e) | Failure::Final(e)) => return Err(e),
            }
        }
    }

    async fn fetch_once(&self, step: &Step, layout: &Layout) -> Result<PathBuf, Failure> {
        let id = &step.id;
        let url = format!("{}/v1/agent/patches/{id}", self.base);
        let response = self
            .http
            .get(&url)
            .header(convoy_api::AUTH_HEADER, &self.credential)
            .send()
            .await
            .map_err(|e| {
                Failure::Transient(anyhow::anyhow!(
                    "cannot download {id} from {url}: {}",
                    root_cause(&e)
                ))
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let reason = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error.message)
                .unwrap_or_else(|_| format!("{url} answered {status}"));
            let error =
                anyhow::anyhow!("the controller refused the download of {id} ({status}): {reason}");
            return Err(if status.is_server_error() {
                Failure::Transient(error)
            } else {
                Failure::Final(error)
            });
        }
        self.receive(step, layout, response).await
    }

    /// Streams an answered download to disk and checks it against what was announced.
    async fn receive(
        &self,
        step: &Step,
        layout: &Layout,
        response: reqwest::Response,
    ) -> Result<PathBuf, Failure> {
        let id = &step.id;
        let last = |e: anyhow::Error| Failure::Final(e);
        let max = step
            .size
            .unwrap_or(convoy_bundle::Limits::default().max_total_size);
        if let Some(length) = response.content_length()
            && length > max
        {
            return Err(last(anyhow::anyhow!(
                "the controller sends {length} bytes for {id}, more than the {max} expected"
            )));
        }

        let part = layout.partial_bundle(id);
        let mut file = tokio::fs::File::create(&part)
            .await
            .with_context(|| format!("cannot create {}", part.display()))
            .map_err(last)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut response = response;
        loop {
            let chunk = tokio::time::timeout(IDLE_TIMEOUT, response.chunk())
                .await
                .map_err(|_| {
                    Failure::Transient(anyhow::anyhow!(
                        "the download of {id} stalled: nothing for {} s",
                        IDLE_TIMEOUT.as_secs()
                    ))
                })?
                .map_err(|e| {
                    Failure::Transient(anyhow::anyhow!(
                        "the download of {id} broke off: {}",
                        root_cause(&e)
                    ))
                })?;
            let Some(chunk) = chunk else { break };
            received += chunk.len() as u64;
            if received > max {
                return Err(last(anyhow::anyhow!(
                    "the controller sent more than the {max} bytes expected for {id}"
                )));
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .with_context(|| format!("cannot write {}", part.display()))
                .map_err(last)?;
        }
        file.sync_all()
            .await
            .with_context(|| format!("cannot write {}", part.display()))
            .map_err(last)?;
        drop(file);

        if let Some(size) = step.size
            && received != size
        {
            return Err(last(anyhow::anyhow!(
                "the download of {id} is {received} bytes, the controller announced {size}"
            )));
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = &step.sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(last(anyhow::anyhow!(
                "the download of {id} has SHA-256 {sha256}, the controller announced {expected}"
            )));
        }
        let bundle = layout.bundle(id);
        tokio::fs::rename(&part, &bundle)
            .await
            .with_context(|| format!("cannot rename {} to {}", part.display(), bundle.display()))
            .map_err(last)?;
        Ok(bundle)
    }
}

/// How long a download is tried again while the controller is away.
const RETRY_FOR: Duration = Duration::from_secs(60);

/// Why one attempt at a download failed.
enum Failure {
    /// The controller was away or broke off: worth another try.
    Transient(anyhow::Error),
    /// Refused, or not the bundle announced: another try would fail the same way.
    Final(anyhow::Error),
}

fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patches::testing::FakeController;

    fn step(id: &str, bytes: Option<&[u8]>) -> Step {
        Step {
            id: id.parse().unwrap(),
            reboot_required: false,
            sha256: bytes.map(|b| hex::encode(Sha256::digest(b))),
            size: bytes.map(|b| b.len() as u64),
        }
    }

    #[tokio::test]
    async fn a_bundle_is_downloaded_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create().unwrap();
        let (fake, url) = FakeController::start("cvh_secret").await;
        let bytes = vec![7u8; 300_000];
        fake.put("P1", bytes.clone());
        let source = BundleSource::new(&url, "cvh_secret", &Default::default()).unwrap();

        let path = source
            .fetch(&step("P1", Some(&bytes)), &layout)
            .await
            .unwrap();
        assert_eq!(path, layout.bundle(&"P1".parse().unwrap()));
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        let wrong = Step {
            sha256: Some("00".repeat(32)),
            ..step("P1", Some(&bytes))
        };
        let err = source.fetch(&wrong, &layout).await.unwrap_err();
        assert!(err.to_string().contains("has SHA-256"), "{err}");
        let short = Step {
            size: Some(10),
            ..step("P1", None)
        };
        let err = source.fetch(&short, &layout).await.unwrap_err();
        assert!(err.to_string().contains("more than the 10"), "{err}");

        let err = source.fetch(&step("P9", None), &layout).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the controller refused the download of P9 (404 Not Found): no patch P9"
        );
        let stranger = BundleSource::new(&url, "cvh_other", &Default::default()).unwrap();
        let err = stranger
            .fetch(&step("P1", None), &layout)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bad credential"), "{err}");
    }
}

//! Signed test bundles, the site's keys and snapshots of a root: shared by the agent's unit
//! tests (`patches::testing`) and its binary's tests (`tests/common`, which include this file).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use convoy_bundle::{BuildSpec, PayloadFile, Script, Section, SigningKey};

/// The key the site signs with.
pub fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// A key nobody trusts.
pub fn stranger() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}

/// A bundle to build: in-service (not reboot-required) unless told otherwise.
pub struct Bundle {
    spec: BuildSpec,
    sources: PathBuf,
}

impl Bundle {
    pub fn new(dir: &Path, id: &str) -> Bundle {
        let sources = dir.join("sources").join(id);
        std::fs::create_dir_all(&sources).unwrap();
        let mut spec = BuildSpec::new(id.parse().unwrap(), "25.09".parse().unwrap());
        spec.reboot_required = false;
        Bundle { spec, sources }
    }

    fn source(&self, bytes: &[u8], mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.sources.join(format!(
            "f{}",
            self.spec.payload.len() + self.spec.scripts.len()
        ));
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    pub fn file(self, section: Section, install_path: &str, bytes: &[u8]) -> Bundle {
        self.file_with_mode(section, install_path, bytes, 0o644)
    }

    pub fn file_with_mode(
        mut self,
        section: Section,
        install_path: &str,
        bytes: &[u8],
        mode: u32,
    ) -> Bundle {
        let source = self.source(bytes, mode);
        self.spec.payload.push(PayloadFile {
            section,
            source,
            install_path: install_path.into(),
        });
        self
    }

    pub fn script(mut self, script: Script, body: &str) -> Bundle {
        let source = self.source(format!("#!/bin/sh\n{body}\n").as_bytes(), 0o755);
        self.spec.scripts.insert(script, source);
        self
    }

    pub fn requires(mut self, id: &str) -> Bundle {
        self.spec.requires.push(id.parse().unwrap());
        self
    }

    pub fn release(mut self, release: &str) -> Bundle {
        self.spec.sw_version = release.parse().unwrap();
        self
    }

    pub fn reboot_required(mut self) -> Bundle {
        self.spec.reboot_required = true;
        self
    }

    pub fn unremovable(mut self) -> Bundle {
        self.spec.unremovable = true;
        self
    }

    /// Signed with the site's key, into `<dir>/bundles/`.
    pub fn build(self) -> PathBuf {
        self.build_with(&key())
    }

    pub fn build_with(self, key: &SigningKey) -> PathBuf {
        let out = self
            .sources
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("bundles")
            .join(key.id().as_str());
        std::fs::create_dir_all(&out).unwrap();
        convoy_bundle::build(&self.spec, key, &out).unwrap()
    }
}

/// Every entry under `root` with its mode and contents (a link's target; nothing for a
/// directory).
pub fn tree(root: &Path) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let name = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let contents = if meta.is_symlink() {
            std::fs::read_link(&path)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if meta.is_file() {
            std::fs::read(&path).unwrap()
        } else {
            walk(root, &path, out);
            Vec::new()
        };
        out.insert(name, (meta.mode(), contents));
    }
}

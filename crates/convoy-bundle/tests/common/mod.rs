//! A good bundle to start from, built from files in a temporary directory.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use convoy_bundle::{
    BuildSpec, Limits, PayloadFile, Script, Section, SigningKey, TrustedKeys, VerifiedBundle,
    VerifyError, build, verify,
};
use convoy_core::patch::PatchId;

/// The key every fixture is signed with.
pub fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32])
}

/// A key nobody trusts.
pub fn stranger() -> SigningKey {
    SigningKey::from_seed(&[9; 32])
}

pub fn trusted() -> TrustedKeys {
    TrustedKeys::new([key().public_key()])
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub bundle: PathBuf,
}

impl Fixture {
    /// `PATCH_0001`: a file for every host, one per personality, an executable, and a
    /// pre-install and post-install script.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let write = |name: &str, bytes: &[u8], mode: u32| -> PathBuf {
            let path = src.join(name);
            std::fs::write(&path, bytes).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        };
        let mut spec = BuildSpec::new(id("PATCH_0001"), "25.09".parse().unwrap());
        spec.summary = "Fix the frobnicator".into();
        spec.requires = vec![id("PATCH_0000")];
        let file = |section, source: PathBuf, install: &str| PayloadFile {
            section,
            source,
            install_path: install.into(),
        };
        spec.payload = vec![
            file(Section::All, write("motd", b"welcome\n", 0o644), "etc/motd"),
            file(
                Section::Controller,
                write("ctl.conf", b"role=controller\n", 0o600),
                "etc/convoy/role.conf",
            ),
            file(
                Section::Worker,
                write("tool", &[0xAB; 3000], 0o755),
                "usr/local/bin/tool",
            ),
            file(
                Section::Storage,
                write("st.conf", b"role=storage\n", 0o644),
                "etc/convoy/role.conf",
            ),
        ];
        spec.scripts.insert(
            Script::PreInstall,
            write("pre", b"#!/bin/sh\nexit 0\n", 0o755),
        );
        spec.scripts.insert(
            Script::PostInstall,
            write("post", b"#!/bin/sh\nexit 0\n", 0o644),
        );
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let bundle = build(&spec, &key(), &out).unwrap();
        Fixture { dir, bundle }
    }

    /// A path for a tampered copy.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

pub fn id(text: &str) -> PatchId {
    text.parse().unwrap()
}

pub fn verify_default(path: &Path) -> Result<VerifiedBundle, VerifyError> {
    verify(path, &trusted(), &Limits::default())
}

//! Tampered bundles, one per attack, made from a good bundle (feature `tamper`; for tests).
//!
//! Each attack rewrites the archive at the tar level, as an attacker with the file would,
//! recomputing tar header checksums so that only the attack itself is wrong.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use serde_json::Value;

use crate::digest::sha256_hex;
use crate::keys::SigningKey;
use crate::layout::{MANIFEST, METADATA, SIGNATURE};
use crate::signature::SignatureFile;

/// A way to tamper with a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// One bit of the first payload file flipped.
    PayloadByteFlipped,
    /// `status` in metadata.json changed (DEV and REL swapped: the same size).
    MetadataFieldChanged,
    /// A payload file changed and its new hash written into manifest.json, signature kept.
    ManifestEdited,
    /// One bit of the signature flipped.
    SignatureFlipped,
    /// manifest.sig removed.
    SignatureMissing,
    /// The first payload file renamed to `payload/all/../../../etc/cron.d/convoy`.
    ParentDirPath,
    /// The first payload file renamed to `/etc/cron.d/convoy`.
    AbsolutePath,
    /// The first payload file replaced by a symbolic link to `/etc/shadow`.
    Symlink,
    /// The first payload file replaced by a hard link to `etc/shadow`.
    Hardlink,
    /// The first payload file replaced by a character device.
    Device,
    /// A file that the manifest does not list appended.
    ExtraMember,
    /// The last payload file removed.
    MissingMember,
}

impl Attack {
    pub const ALL: [Attack; 12] = [
        Attack::PayloadByteFlipped,
        Attack::MetadataFieldChanged,
        Attack::ManifestEdited,
        Attack::SignatureFlipped,
        Attack::SignatureMissing,
        Attack::ParentDirPath,
        Attack::AbsolutePath,
        Attack::Symlink,
        Attack::Hardlink,
        Attack::Device,
        Attack::ExtraMember,
        Attack::MissingMember,
    ];
}

/// A raw archive member: its header as found, and its bytes.
#[derive(Clone)]
pub struct RawMember {
    pub header: tar::Header,
    pub data: Vec<u8>,
}

impl RawMember {
    pub fn name(&self) -> String {
        String::from_utf8_lossy(&self.header.path_bytes()).into_owned()
    }

    /// Sets the name's bytes as they are, bypassing the tar crate's own path checks.
    pub fn set_raw_name(&mut self, name: &[u8]) {
        let old = self.header.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        if let Some(ustar) = self.header.as_ustar_mut() {
            ustar.prefix = [0; 155];
        }
        self.header.set_cksum();
    }

    pub fn set_data(&mut self, data: Vec<u8>) {
        self.header.set_size(data.len() as u64);
        self.header.set_cksum();
        self.data = data;
    }
}

/// Reads every member of an archive, raw.
pub fn read_members(path: &Path) -> io::Result<Vec<RawMember>> {
    let mut archive = tar::Archive::new(File::open(path)?);
    let mut members = Vec::new();
    for entry in archive.entries()?.raw(true) {
        let mut entry = entry?;
        let mut data = Vec::new();
        entry.read_to_end(&mut data)?;
        members.push(RawMember {
            header: entry.header().clone(),
            data,
        });
    }
    Ok(members)
}

/// Writes members as an archive, headers as they are.
pub fn write_members(path: &Path, members: &[RawMember]) -> io::Result<()> {
    let mut builder = tar::Builder::new(File::create(path)?);
    for member in members {
        builder.append(&member.header, &member.data[..])?;
    }
    builder.into_inner()?;
    Ok(())
}

/// Writes to `out` the bundle `good` tampered with by `attack`.
pub fn tamper(good: &Path, attack: Attack, out: &Path) -> io::Result<()> {
    let mut members = read_members(good)?;
    let payload = members
        .iter()
        .position(|m| m.name().starts_with("payload/"))
        .ok_or_else(|| io::Error::other("the bundle has no payload to tamper with"))?;
    let named = |members: &[RawMember], name: &str| {
        members
            .iter()
            .position(|m| m.name() == name)
            .ok_or_else(|| io::Error::other(format!("the bundle has no {name}")))
    };
    match attack {
        Attack::PayloadByteFlipped => members[payload].data[0] ^= 0x01,
        Attack::MetadataFieldChanged => {
            let i = named(&members, METADATA)?;
            let text = String::from_utf8_lossy(&members[i].data).into_owned();
            let changed = if text.contains("\"DEV\"") {
                text.replace("\"DEV\"", "\"REL\"")
            } else {
                text.replace("\"REL\"", "\"DEV\"")
            };
            members[i].data = changed.into_bytes();
        }
        Attack::ManifestEdited => {
            members[payload].data[0] ^= 0x01;
            let name = members[payload].name();
            let new_hash = sha256_hex(&members[payload].data);
            let i = named(&members, MANIFEST)?;
            let mut manifest: Value = serde_json::from_slice(&members[i].data)?;
            for entry in manifest["members"].as_array_mut().into_iter().flatten() {
                if entry["path"] == name.as_str() {
                    entry["sha256"] = Value::String(new_hash.clone());
                }
            }
            members[i].set_data(serde_json::to_vec_pretty(&manifest)?);
        }
        Attack::SignatureFlipped => {
            let i = named(&members, SIGNATURE)?;
            let mut sig: Value = serde_json::from_slice(&members[i].data)?;
            let mut bytes = hex::decode(sig["signature"].as_str().unwrap_or_default())
                .map_err(io::Error::other)?;
            bytes[7] ^= 0x20;
            sig["signature"] = Value::String(hex::encode(bytes));
            members[i].set_data(serde_json::to_vec_pretty(&sig)?);
        }
        Attack::SignatureMissing => {
            let i = named(&members, SIGNATURE)?;
            members.remove(i);
        }
        Attack::ParentDirPath => {
            members[payload].set_raw_name(b"payload/all/../../../etc/cron.d/convoy");
        }
        Attack::AbsolutePath => members[payload].set_raw_name(b"/etc/cron.d/convoy"),
        Attack::Symlink | Attack::Hardlink | Attack::Device => {
            let member = &mut members[payload];
            let (kind, target): (_, &[u8]) = match attack {
                Attack::Symlink => (tar::EntryType::Symlink, b"/etc/shadow"),
                Attack::Hardlink => (tar::EntryType::Link, b"etc/shadow"),
                _ => (tar::EntryType::Char, b""),
            };
            member.header.set_entry_type(kind);
            member.header.as_old_mut().linkname = [0; 100];
            member.header.as_old_mut().linkname[..target.len()].copy_from_slice(target);
            member.set_data(Vec::new());
        }
        Attack::ExtraMember => {
            let mut extra = members[payload].clone();
            extra.set_raw_name(b"payload/all/usr/local/bin/backdoor");
            extra.set_data(b"#!/bin/sh\necho owned\n".to_vec());
            members.push(extra);
        }
        Attack::MissingMember => {
            let last = members
                .iter()
                .rposition(|m| m.name().starts_with("payload/"))
                .unwrap_or(payload);
            members.remove(last);
        }
    }
    for member in &mut members {
        member.header.set_cksum();
    }
    write_members(out, &members)
}

/// Writes to `out` the bundle `good` re-signed by `key`: a well-formed bundle from a signer
/// the verifier may not trust.
pub fn resign(good: &Path, key: &SigningKey, out: &Path) -> io::Result<()> {
    let mut members = read_members(good)?;
    let manifest_at = members
        .iter()
        .position(|m| m.name() == MANIFEST)
        .ok_or_else(|| io::Error::other("the bundle has no manifest"))?;
    let mut manifest: Value = serde_json::from_slice(&members[manifest_at].data)?;
    manifest["key_id"] = Value::String(key.id().to_string());
    let mut bytes = serde_json::to_vec_pretty(&manifest)?;
    bytes.push(b'\n');
    let signature = SignatureFile::sign(&bytes, key).to_bytes();
    members[manifest_at].set_data(bytes);
    if let Some(sig) = members.iter_mut().find(|m| m.name() == SIGNATURE) {
        sig.set_data(signature);
    }
    write_members(out, &members)
}

//! Which members a bundle holds and where a host installs them.
//!
//! ```text
//! manifest.json                 signed list of every other member (first member)
//! manifest.sig                  ed25519 signature of manifest.json (second member)
//! metadata.json                 the patch's metadata
//! scripts/pre-install           optional scripts, run by the installing agent
//! scripts/post-install
//! scripts/pre-remove
//! payload/all/<path>            installed at <root>/<path> on every host (--all-nodes)
//! payload/controller/<path>     ... on controllers
//! payload/worker/<path>         ... on workers
//! payload/storage/<path>        ... on storage hosts
//! ```

use std::fmt;

use convoy_core::host::Personality;
use serde::{Deserialize, Serialize};

use crate::path::{PathProblem, plain_relative};

pub const MANIFEST: &str = "manifest.json";
pub const SIGNATURE: &str = "manifest.sig";
pub const METADATA: &str = "metadata.json";
const SCRIPTS_DIR: &str = "scripts/";
const PAYLOAD_DIR: &str = "payload/";

/// A part of the payload: files for every host, or for the hosts of one personality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    /// Every host (`--all-nodes`).
    All,
    Controller,
    Worker,
    Storage,
}

impl Section {
    pub const ALL: [Section; 4] = [
        Section::All,
        Section::Controller,
        Section::Worker,
        Section::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Section::All => "all",
            Section::Controller => "controller",
            Section::Worker => "worker",
            Section::Storage => "storage",
        }
    }

    /// The sections a host of `personality` installs. An all-in-one host (controller+worker)
    /// installs both the controller's and the worker's files.
    pub fn for_personality(personality: Personality) -> &'static [Section] {
        match personality {
            Personality::Controller => &[Section::All, Section::Controller],
            Personality::Worker => &[Section::All, Section::Worker],
            Personality::Storage => &[Section::All, Section::Storage],
            Personality::ControllerWorker => &[Section::All, Section::Controller, Section::Worker],
        }
    }

    /// The member that holds the file installed at `install_path`.
    pub fn member(self, install_path: &str) -> String {
        format!("{PAYLOAD_DIR}{}/{install_path}", self.as_str())
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A script the installing agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Script {
    /// Before the payload is installed; a failure stops the install.
    PreInstall,
    /// After the payload is installed.
    PostInstall,
    /// Before the payload is removed; a failure stops the removal.
    PreRemove,
}

impl Script {
    pub const ALL: [Script; 3] = [Script::PreInstall, Script::PostInstall, Script::PreRemove];

    pub fn as_str(self) -> &'static str {
        match self {
            Script::PreInstall => "pre-install",
            Script::PostInstall => "post-install",
            Script::PreRemove => "pre-remove",
        }
    }

    pub fn member(self) -> String {
        format!("{SCRIPTS_DIR}{}", self.as_str())
    }
}

impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a member listed in the manifest is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind<'a> {
    Metadata,
    Script(Script),
    Payload {
        section: Section,
        install_path: &'a str,
    },
}

/// Why a name cannot be a member listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayoutProblem {
    Unsafe(PathProblem),
    /// A plain path, but not one of the layout's places.
    Unknown,
}

/// Classifies a manifest member name; `manifest.json` and `manifest.sig` are not listed in
/// the manifest, so they are `Unknown` here.
pub fn classify(name: &str) -> Result<MemberKind<'_>, LayoutProblem> {
    plain_relative(name.as_bytes()).map_err(LayoutProblem::Unsafe)?;
    if name == METADATA {
        return Ok(MemberKind::Metadata);
    }
    if let Some(script) = name.strip_prefix(SCRIPTS_DIR) {
        return Script::ALL
            .into_iter()
            .find(|s| s.as_str() == script)
            .map(MemberKind::Script)
            .ok_or(LayoutProblem::Unknown);
    }
    if let Some(rest) = name.strip_prefix(PAYLOAD_DIR) {
        let (section, install_path) = rest.split_once('/').ok_or(LayoutProblem::Unknown)?;
        let section = Section::ALL
            .into_iter()
            .find(|s| s.as_str() == section)
            .ok_or(LayoutProblem::Unknown)?;
        return Ok(MemberKind::Payload {
            section,
            install_path,
        });
    }
    Err(LayoutProblem::Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_classified() {
        assert_eq!(classify("metadata.json"), Ok(MemberKind::Metadata));
        assert_eq!(
            classify("scripts/pre-remove"),
            Ok(MemberKind::Script(Script::PreRemove))
        );
        assert_eq!(
            classify("payload/worker/usr/bin/tool"),
            Ok(MemberKind::Payload {
                section: Section::Worker,
                install_path: "usr/bin/tool"
            })
        );
        for unknown in [
            "manifest.json",
            "scripts/other",
            "payload/compute/x",
            "payload/all",
            "extra",
        ] {
            assert_eq!(classify(unknown), Err(LayoutProblem::Unknown), "{unknown}");
        }
        assert_eq!(
            classify("payload/all/../../etc/passwd"),
            Err(LayoutProblem::Unsafe(PathProblem::ParentDir))
        );
    }

    #[test]
    fn a_member_name_round_trips() {
        for section in Section::ALL {
            let name = section.member("etc/x.conf");
            assert_eq!(
                classify(&name),
                Ok(MemberKind::Payload {
                    section,
                    install_path: "etc/x.conf"
                })
            );
        }
        for script in Script::ALL {
            assert_eq!(classify(&script.member()), Ok(MemberKind::Script(script)));
        }
    }

    #[test]
    fn every_host_installs_the_all_section() {
        for p in Personality::ALL {
            assert_eq!(Section::for_personality(p)[0], Section::All);
        }
    }
}

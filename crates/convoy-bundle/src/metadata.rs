//! The patch's metadata (`metadata.json`): the fields of StarlingX's `metadata.xml` that make
//! sense here, and their rules.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use convoy_core::host::Personality;
use serde::{Deserialize, Serialize};

use crate::layout::{Script, Section};
use crate::path::{PathProblem, plain_relative};

/// A patch's development status. Only `REL` patches may be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Status {
    /// In development (the default, as in StarlingX's patch recipes).
    #[serde(rename = "DEV")]
    Development,
    #[serde(rename = "REL")]
    Released,
    #[serde(rename = "OBS")]
    Obsolete,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Development => "DEV",
            Status::Released => "REL",
            Status::Obsolete => "OBS",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = MetadataError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "DEV" => Ok(Status::Development),
            "REL" => Ok(Status::Released),
            "OBS" => Ok(Status::Obsolete),
            other => Err(MetadataError::InvalidStatus(other.to_string())),
        }
    }
}

/// The files of each section, by install path (relative to the host's root), sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contents {
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub controller: Vec<String>,
    #[serde(default)]
    pub worker: Vec<String>,
    #[serde(default)]
    pub storage: Vec<String>,
}

impl Contents {
    pub fn section(&self, section: Section) -> &[String] {
        match section {
            Section::All => &self.all,
            Section::Controller => &self.controller,
            Section::Worker => &self.worker,
            Section::Storage => &self.storage,
        }
    }

    pub(crate) fn section_mut(&mut self, section: Section) -> &mut Vec<String> {
        match section {
            Section::All => &mut self.all,
            Section::Controller => &mut self.controller,
            Section::Worker => &mut self.worker,
            Section::Storage => &mut self.storage,
        }
    }

    /// Every payload file as (section, install path).
    pub fn files(&self) -> impl Iterator<Item = (Section, &str)> {
        Section::ALL
            .into_iter()
            .flat_map(move |s| self.section(s).iter().map(move |p| (s, p.as_str())))
    }

    pub fn is_empty(&self) -> bool {
        self.files().next().is_none()
    }
}

/// A patch's metadata. Field names follow StarlingX's `metadata.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The patch id; the bundle's file is `<id>.patch`.
    pub id: String,
    /// The release the patch applies to, e.g. `25.09`.
    pub sw_version: String,
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub install_instructions: String,
    #[serde(default)]
    pub warnings: String,
    pub status: Status,
    /// A patch that may never be removed once applied.
    pub unremovable: bool,
    /// Installing it needs the host locked and rebooted.
    pub reboot_required: bool,
    /// It may only be applied to a system running `sw_version`.
    pub apply_active_release_only: bool,
    /// Ids of patches that must be applied with or before this one, sorted.
    #[serde(default)]
    pub requires: Vec<String>,
    pub contents: Contents,
    /// The scripts the bundle holds, in `Script::ALL` order.
    #[serde(default)]
    pub scripts: Vec<Script>,
}

/// Why metadata is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error(
        "invalid patch id {0:?}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
    )]
    InvalidId(String),
    #[error("invalid release {0:?}: give it as MAJOR.MINOR, e.g. 25.09")]
    InvalidRelease(String),
    #[error("invalid status {0:?}: use DEV, REL or OBS")]
    InvalidStatus(String),
    #[error("invalid required patch id {0:?}")]
    InvalidRequirement(String),
    #[error("patch {0} cannot require itself")]
    RequiresItself(String),
    #[error("invalid install path {path:?}: {problem}")]
    InvalidInstallPath { path: String, problem: PathProblem },
    #[error("{path} is listed twice in {section}")]
    DuplicateFile { path: String, section: Section },
    #[error(
        "{path} is in both {first} and {second}: a host that installs both would get two files at one path"
    )]
    Conflict {
        path: String,
        first: Section,
        second: Section,
    },
    #[error("{path} is both a file and a directory in the payload a host installs")]
    FileAndDirectory { path: String },
    #[error("requires and scripts must be sorted and without duplicates")]
    NotCanonical,
}

/// Checks a patch id: 1-100 of `[A-Za-z0-9._-]`, starting with a letter or digit (so the
/// file name `<id>.patch` is neither hidden nor a path).
pub fn validate_patch_id(id: &str) -> Result<(), MetadataError> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(MetadataError::InvalidId(id.to_string()))
    }
}

/// Checks a release: `MAJOR.MINOR`, each 1-4 digits (`25.09`, `22.12`).
pub fn validate_release(release: &str) -> Result<(), MetadataError> {
    let number = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    match release.split_once('.') {
        Some((major, minor)) if number(major) && number(minor) => Ok(()),
        _ => Err(MetadataError::InvalidRelease(release.to_string())),
    }
}

impl Metadata {
    /// Checks every rule: id and release, requirements, and that every install path is
    /// plain and appears once among the sections any one host installs.
    pub fn validate(&self) -> Result<(), MetadataError> {
        validate_patch_id(&self.id)?;
        validate_release(&self.sw_version)?;
        for req in &self.requires {
            validate_patch_id(req).map_err(|_| MetadataError::InvalidRequirement(req.clone()))?;
            if *req == self.id {
                return Err(MetadataError::RequiresItself(req.clone()));
            }
        }
        if !self.requires.windows(2).all(|w| w[0] < w[1])
            || !self.scripts.windows(2).all(|w| w[0] < w[1])
        {
            return Err(MetadataError::NotCanonical);
        }
        for (_, path) in self.contents.files() {
            plain_relative(path.as_bytes()).map_err(|problem| {
                MetadataError::InvalidInstallPath {
                    path: path.to_string(),
                    problem,
                }
            })?;
        }
        // Each host must get one file per path, and no path may be both a file and the
        // directory of another file.
        for personality in Personality::ALL {
            let mut paths: BTreeMap<&str, Section> = BTreeMap::new();
            for &section in Section::for_personality(personality) {
                for path in self.contents.section(section) {
                    match paths.insert(path, section) {
                        Some(first) if first == section => {
                            return Err(MetadataError::DuplicateFile {
                                path: path.clone(),
                                section,
                            });
                        }
                        Some(first) => {
                            return Err(MetadataError::Conflict {
                                path: path.clone(),
                                first,
                                second: section,
                            });
                        }
                        None => {}
                    }
                }
            }
            for path in paths.keys() {
                if let Some((i, _)) = path
                    .match_indices('/')
                    .find(|(i, _)| paths.contains_key(&path[..*i]))
                {
                    return Err(MetadataError::FileAndDirectory {
                        path: path[..i].to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Every payload file a host of this personality installs: (install path, member name).
    pub fn install_files(&self, personality: Personality) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = Section::for_personality(personality)
            .iter()
            .flat_map(|s| {
                self.contents
                    .section(*s)
                    .iter()
                    .map(move |p| (p.clone(), s.member(p)))
            })
            .collect();
        files.sort();
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Metadata {
        Metadata {
            id: "PATCH_0001".into(),
            sw_version: "25.09".into(),
            summary: "Fix foo".into(),
            description: String::new(),
            install_instructions: String::new(),
            warnings: String::new(),
            status: Status::Development,
            unremovable: false,
            reboot_required: true,
            apply_active_release_only: false,
            requires: vec!["PATCH_0000".into()],
            contents: Contents {
                all: vec!["etc/motd".into()],
                controller: vec!["etc/x.conf".into()],
                worker: vec!["usr/bin/tool".into()],
                storage: vec!["etc/x.conf".into()],
            },
            scripts: vec![Script::PreInstall],
        }
    }

    #[test]
    fn ids_follow_starlingx() {
        for ok in ["PATCH_0001", "TS_19.12_PATCH_0003", "a", "0-fix.1"] {
            assert_eq!(validate_patch_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "..",
            "é",
            &"x".repeat(101),
        ] {
            assert!(validate_patch_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn releases_are_major_dot_minor() {
        for ok in ["25.09", "22.12", "1.0"] {
            assert_eq!(validate_release(ok), Ok(()), "{ok}");
        }
        for bad in ["", "25", "25.", ".09", "25.09.1", "v25.09", "25.x"] {
            assert!(validate_release(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_sample_is_valid_and_round_trips_through_json() {
        let m = sample();
        m.validate().unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""status":"DEV""#), "{json}");
        assert!(json.contains(r#""scripts":["pre-install"]"#), "{json}");
        let back: Metadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value = serde_json::to_value(sample()).unwrap();
        value["surprise"] = serde_json::json!(1);
        assert!(serde_json::from_value::<Metadata>(value).is_err());
    }

    #[test]
    fn a_path_installed_twice_on_one_host_is_refused() {
        let mut m = sample();
        m.contents.worker.push("etc/motd".into());
        assert!(matches!(
            m.validate(),
            Err(MetadataError::Conflict {
                first: Section::All,
                second: Section::Worker,
                ..
            })
        ));
        let mut m = sample();
        m.contents.worker.push("etc/x.conf".into());
        assert!(matches!(m.validate(), Err(MetadataError::Conflict { .. })));
        let mut m = sample();
        m.contents.worker.push("etc/motd/inner".into());
        assert!(matches!(
            m.validate(),
            Err(MetadataError::FileAndDirectory { .. })
        ));
    }

    #[test]
    fn unsafe_install_paths_are_refused() {
        let mut m = sample();
        m.contents.worker.push("../etc/passwd".into());
        assert!(matches!(
            m.validate(),
            Err(MetadataError::InvalidInstallPath {
                problem: PathProblem::ParentDir,
                ..
            })
        ));
    }

    #[test]
    fn a_host_installs_its_sections() {
        let m = sample();
        let names = |p| -> Vec<String> { m.install_files(p).into_iter().map(|f| f.1).collect() };
        assert_eq!(
            names(Personality::Worker),
            ["payload/all/etc/motd", "payload/worker/usr/bin/tool"]
        );
        assert_eq!(
            names(Personality::ControllerWorker),
            [
                "payload/all/etc/motd",
                "payload/controller/etc/x.conf",
                "payload/worker/usr/bin/tool"
            ]
        );
    }
}

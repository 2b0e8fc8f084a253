//! What a patch says about itself: the `metadata.json` inside a bundle (spec/patching.md §1.4,
//! sw-patch's `metadata.xml` as plain JSON), and the checks a controller runs before trusting it.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::ValidationError;
use crate::host::Personality;

/// Longest patch id accepted.
pub const MAX_PATCH_ID_LEN: usize = 64;

/// A patch's id, e.g. `PATCH_0001` or `starlingx-25.09.1`: 1 to 64 characters, ASCII letters,
/// digits, `.`, `_` and `-`, starting with a letter or digit.
///
/// The id names the bundle file (`<id>.patch`) and appears in URLs, so the rule keeps it a
/// single safe path segment; a value of this type has always passed it. Ids compare
/// byte-wise, which is the order every list of ids is shown in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PatchId(String);

impl PatchId {
    /// Checks `value`; errors name `field` (`"id"`, `"requires"`, a CLI option...).
    pub fn parse(field: &str, value: &str) -> Result<PatchId, ValidationError> {
        if value.is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if value.len() > MAX_PATCH_ID_LEN {
            return Err(ValidationError::new(
                field,
                format!(
                    "{value:?} is {} characters; a patch id has at most {MAX_PATCH_ID_LEN}",
                    value.len()
                ),
            ));
        }
        if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                field,
                format!("{value:?} must start with a letter or a digit"),
            ));
        }
        if let Some(bad) = value
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(ValidationError::new(
                field,
                format!("{value:?} contains {bad:?}; use letters, digits, '.', '_' and '-'"),
            ));
        }
        Ok(PatchId(value.to_owned()))
    }

    /// The id of the bundle file `name` (`<id>.patch`), with sw-patch's message for another
    /// extension.
    pub fn from_file_name(name: &str) -> Result<PatchId, ValidationError> {
        let Some(stem) = name.strip_suffix(BUNDLE_EXTENSION) else {
            return Err(ValidationError::new(
                "file",
                format!("File must end in {BUNDLE_EXTENSION} extension: {name}"),
            ));
        };
        PatchId::parse("file", stem)
    }

    /// The bundle's file name, `<id>.patch`.
    pub fn file_name(&self) -> String {
        format!("{}{BUNDLE_EXTENSION}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The extension every bundle file carries.
pub const BUNDLE_EXTENSION: &str = ".patch";

impl fmt::Display for PatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PatchId {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PatchId::parse("patch_id", s)
    }
}

impl TryFrom<String> for PatchId {
    type Error = ValidationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        PatchId::parse("patch_id", &value)
    }
}

impl From<PatchId> for String {
    fn from(id: PatchId) -> String {
        id.0
    }
}

impl AsRef<str> for PatchId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A software release, `MAJOR.MINOR` (`25.09`) or, for USM patch releases,
/// `MAJOR.MINOR.PATCH` (`24.09.1`).
///
/// The text is kept as written, so `25.09` stays `25.09` (never `25.9`) and two releases are
/// equal only when written the same way, as sw-patch compares them. Ordering is numeric, so
/// `9.10` sorts before `10.0`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Release(String);

impl Release {
    /// Checks `value`; errors name `field` (`"sw_version"`, `"release"`...).
    pub fn parse(field: &str, value: &str) -> Result<Release, ValidationError> {
        if value.is_empty() {
            return Err(ValidationError::new(
                field,
                "must not be empty; give the release, e.g. 25.09",
            ));
        }
        // 32 characters is far beyond any real release and keeps every component a u32.
        let parts: Vec<&str> = value.split('.').collect();
        let well_formed = value.len() <= 32
            && (2..=3).contains(&parts.len())
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()));
        if !well_formed {
            return Err(ValidationError::new(
                field,
                format!(
                    "{value:?} is not a release; use MAJOR.MINOR or MAJOR.MINOR.PATCH, e.g. 25.09"
                ),
            ));
        }
        Ok(Release(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Major, minor and patch level (0 when absent).
    pub fn numbers(&self) -> [u32; 3] {
        let mut numbers = [0; 3];
        for (slot, part) in numbers.iter_mut().zip(self.0.split('.')) {
            // Validated on construction: at most nine digits each.
            *slot = part.parse().unwrap_or(0);
        }
        numbers
    }
}

impl Ord for Release {
    fn cmp(&self, other: &Self) -> Ordering {
        // The text breaks ties between spellings of one number (`25.9`, `25.09`), which keeps
        // the order consistent with `Eq`.
        (self.numbers(), &self.0).cmp(&(other.numbers(), &other.0))
    }
}

impl PartialOrd for Release {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Release {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Release::parse("release", s)
    }
}

impl TryFrom<String> for Release {
    type Error = ValidationError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Release::parse("release", &value)
    }
}

impl From<Release> for String {
    fn from(release: Release) -> String {
        release.0
    }
}

/// How far a patch is along its build life (sw-patch `STATUS_DEVELOPEMENT/RELEASED/OBSOLETE`).
/// Only a site whose every patch is `REL` may commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum PatchStatus {
    #[default]
    #[serde(rename = "DEV")]
    Development,
    #[serde(rename = "REL")]
    Released,
    #[serde(rename = "OBS")]
    Obsolete,
}

impl PatchStatus {
    pub const ALL: [PatchStatus; 3] = [
        PatchStatus::Development,
        PatchStatus::Released,
        PatchStatus::Obsolete,
    ];

    /// The code shown and stored: `DEV`, `REL` or `OBS`.
    pub fn as_str(self) -> &'static str {
        match self {
            PatchStatus::Development => "DEV",
            PatchStatus::Released => "REL",
            PatchStatus::Obsolete => "OBS",
        }
    }
}

impl fmt::Display for PatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchStatus {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PatchStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| ValidationError::new("status", format!("{s:?} is not DEV, REL or OBS")))
    }
}

/// A patch's metadata, as built by `convoy patch build` and signed inside the bundle.
///
/// A plain data type: deserializing checks only the shape and the id/release syntax; call
/// [`PatchMetadata::validate`] before accepting one. Unknown fields are refused, so a field
/// added by a newer builder is never silently ignored by an older controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchMetadata {
    pub id: PatchId,
    /// The release the patch is built for; it is installed only on hosts running it.
    pub sw_version: Release,
    /// One line, shown in tables.
    #[serde(default)]
    pub summary: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub install_instructions: String,
    #[serde(default)]
    pub warnings: String,
    #[serde(default)]
    pub status: PatchStatus,
    /// Once applied, `remove` refuses it unless told to remove unremovable patches.
    #[serde(default)]
    pub unremovable: bool,
    /// Hosts must be locked to install it and rebooted afterwards. sw-patch treats anything
    /// but an explicit `N` as `Y`, so a missing field means `true`.
    #[serde(default = "reboot_required_default")]
    pub reboot_required: bool,
    /// Refused by `apply` when the site runs another release (during an upgrade).
    #[serde(default)]
    pub apply_active_release_only: bool,
    /// Patches that must be applied before (or together with) this one.
    #[serde(default)]
    pub requires: Vec<PatchId>,
    /// Per personality, the files the patch installs, relative to the host's root. A host
    /// takes the patch only if its personality has an entry here; an empty list is a patch
    /// that only runs its scripts there.
    pub contents: BTreeMap<Personality, Vec<String>>,
}

fn reboot_required_default() -> bool {
    true
}

/// Longest summary accepted; it is shown in a table column.
pub const MAX_SUMMARY_LEN: usize = 256;
/// Longest description, install instructions or warnings accepted.
pub const MAX_TEXT_LEN: usize = 16 * 1024;
/// Longest content path accepted (Linux's `PATH_MAX`).
pub const MAX_CONTENT_PATH_LEN: usize = 4096;

impl PatchMetadata {
    /// Every problem with the metadata, each naming its field (`contents.worker` for a path
    /// in the worker list). The id and release were checked when the value was built.
    pub fn validate(&self) -> Result<(), Vec<ValidationError>> {
        let mut errors = Vec::new();
        check_text(
            &mut errors,
            "summary",
            &self.summary,
            MAX_SUMMARY_LEN,
            false,
        );
        check_text(
            &mut errors,
            "description",
            &self.description,
            MAX_TEXT_LEN,
            true,
        );
        check_text(
            &mut errors,
            "install_instructions",
            &self.install_instructions,
            MAX_TEXT_LEN,
            true,
        );
        check_text(&mut errors, "warnings", &self.warnings, MAX_TEXT_LEN, true);

        let mut seen = BTreeSet::new();
        for req in &self.requires {
            if *req == self.id {
                errors.push(ValidationError::new(
                    "requires",
                    format!("{req} must not require itself"),
                ));
            } else if !seen.insert(req) {
                errors.push(ValidationError::new(
                    "requires",
                    format!("{req} is listed twice"),
                ));
            }
        }

        if self.contents.is_empty() {
            // sw-patch's builder: "Cannot generate empty patch".
            errors.push(ValidationError::new(
                "contents",
                "must name at least one personality; a patch that no host takes cannot be built",
            ));
        }
        for (personality, paths) in &self.contents {
            let field = format!("contents.{personality}");
            let mut seen = BTreeSet::new();
            for path in paths {
                if let Err(reason) = check_content_path(path) {
                    errors.push(ValidationError::new(&field, reason));
                } else if !seen.insert(path) {
                    errors.push(ValidationError::new(
                        &field,
                        format!("{path:?} is listed twice"),
                    ));
                }
            }
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Whether a host of `personality` takes this patch (on its release).
    pub fn is_for(&self, personality: Personality) -> bool {
        self.contents.contains_key(&personality)
    }

    /// The files a host of `personality` installs; empty if it does not take the patch.
    pub fn files_for(&self, personality: Personality) -> &[String] {
        self.contents
            .get(&personality)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

fn check_text(
    errors: &mut Vec<ValidationError>,
    field: &str,
    value: &str,
    max: usize,
    multiline: bool,
) {
    if value.len() > max {
        errors.push(ValidationError::new(
            field,
            format!("is {} bytes; at most {max} are accepted", value.len()),
        ));
    }
    // Control characters would break the tables and terminals the text is printed to.
    if let Some(bad) = value
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\t')))
    {
        errors.push(ValidationError::new(
            field,
            format!("contains the control character {bad:?}"),
        ));
    }
}

/// A content path must stay inside the host root it is installed under: relative, no `.` or
/// `..` component, no empty component, no control characters.
fn check_content_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("contains an empty path".into());
    }
    if path.len() > MAX_CONTENT_PATH_LEN {
        return Err(format!(
            "a path is {} bytes; at most {MAX_CONTENT_PATH_LEN} are accepted",
            path.len()
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "{path:?} is absolute; give it relative to the host root"
        ));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(format!(
            "{path:?} contains a control character or a backslash"
        ));
    }
    if path
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{path:?} has an empty, '.' or '..' component; paths must stay inside the host root"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> PatchMetadata {
        PatchMetadata {
            id: "PATCH_0002".parse().unwrap(),
            sw_version: "25.09".parse().unwrap(),
            summary: "Fix foo".into(),
            description: "Fixes foo.\nAlso bar.".into(),
            install_instructions: String::new(),
            warnings: String::new(),
            status: PatchStatus::Released,
            unremovable: false,
            reboot_required: true,
            apply_active_release_only: false,
            requires: vec!["PATCH_0001".parse().unwrap()],
            contents: BTreeMap::from([
                (Personality::Controller, vec!["usr/bin/foo".into()]),
                (Personality::Worker, vec![]),
            ]),
        }
    }

    #[test]
    fn patch_ids_follow_starlingx_names() {
        for ok in [
            "PATCH_0001",
            "TS_19.12_PATCH_0003",
            "starlingx-25.09.1",
            "0",
        ] {
            assert_eq!(ok.parse::<PatchId>().unwrap().as_str(), ok);
        }
        let err = PatchId::parse("requires", "").unwrap_err();
        assert_eq!(err.to_string(), "requires: must not be empty");
        for bad in ["-x", ".hidden", "..", "a/b", "a b", "é"] {
            assert!(bad.parse::<PatchId>().is_err(), "{bad}");
        }
        assert!(PatchId::parse("id", &"x".repeat(64)).is_ok());
        assert!(PatchId::parse("id", &"x".repeat(65)).is_err());
    }

    #[test]
    fn bundle_file_names_carry_the_id() {
        let id = PatchId::from_file_name("PATCH_0001.patch").unwrap();
        assert_eq!(id.as_str(), "PATCH_0001");
        assert_eq!(id.file_name(), "PATCH_0001.patch");
        let err = PatchId::from_file_name("PATCH_0001.tar.gz").unwrap_err();
        assert_eq!(
            err.reason,
            "File must end in .patch extension: PATCH_0001.tar.gz"
        );
        assert!(PatchId::from_file_name(".patch").is_err());
    }

    #[test]
    fn releases_keep_their_spelling_and_sort_numerically() {
        let r: Release = "25.09".parse().unwrap();
        assert_eq!(r.to_string(), "25.09");
        assert_eq!(r.numbers(), [25, 9, 0]);
        assert_eq!("24.09.1".parse::<Release>().unwrap().numbers(), [24, 9, 1]);
        for bad in [
            "",
            "25",
            "25.",
            ".09",
            "25.09.1.2",
            "v25.09",
            "25.x",
            "1234567890.1",
        ] {
            let err = Release::parse("sw_version", bad).unwrap_err();
            assert_eq!(err.field, "sw_version", "{bad}");
        }
        let mut list: Vec<Release> = ["10.0", "9.10", "9.9", "9.09"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        list.sort();
        let shown: Vec<&str> = list.iter().map(Release::as_str).collect();
        assert_eq!(shown, ["9.09", "9.9", "9.10", "10.0"]);
        assert_ne!(
            "25.9".parse::<Release>().unwrap(),
            "25.09".parse::<Release>().unwrap()
        );
    }

    #[test]
    fn status_uses_sw_patch_codes() {
        for status in PatchStatus::ALL {
            assert_eq!(status.as_str().parse::<PatchStatus>(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!("rel".parse::<PatchStatus>().unwrap_err().field, "status");
    }

    #[test]
    fn metadata_round_trips_as_snake_case_json() {
        let meta = sample();
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(json["sw_version"], "25.09");
        assert_eq!(json["status"], "REL");
        assert_eq!(json["requires"][0], "PATCH_0001");
        assert_eq!(json["contents"]["controller"][0], "usr/bin/foo");
        assert_eq!(json["apply_active_release_only"], false);
        let back: PatchMetadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta);
        assert_eq!(meta.validate(), Ok(()));
    }

    #[test]
    fn defaults_follow_sw_patch() {
        let meta: PatchMetadata = serde_json::from_str(
            r#"{"id":"P1","sw_version":"25.09","contents":{"controller+worker":[]}}"#,
        )
        .unwrap();
        assert!(meta.reboot_required, "anything but an explicit N is Y");
        assert!(!meta.unremovable);
        assert_eq!(meta.status, PatchStatus::Development);
        assert!(meta.is_for(Personality::ControllerWorker));
        assert!(!meta.is_for(Personality::Controller));
        assert!(meta.files_for(Personality::Storage).is_empty());
    }

    #[test]
    fn unknown_fields_and_bad_ids_are_refused_when_parsing() {
        let unknown = r#"{"id":"P1","sw_version":"25.09","contents":{},"restart_script":"x"}"#;
        assert!(serde_json::from_str::<PatchMetadata>(unknown).is_err());
        let bad_req = r#"{"id":"P1","sw_version":"25.09","contents":{},"requires":["../x"]}"#;
        let err = serde_json::from_str::<PatchMetadata>(bad_req).unwrap_err();
        assert!(err.to_string().contains("patch_id"), "{err}");
        let bad_personality = r#"{"id":"P1","sw_version":"25.09","contents":{"router":[]}}"#;
        assert!(serde_json::from_str::<PatchMetadata>(bad_personality).is_err());
    }

    #[test]
    fn validation_names_each_field() {
        let mut meta = sample();
        meta.summary = "two\nlines".into();
        meta.warnings = "bell\u{7}".into();
        meta.requires = vec![
            "PATCH_0002".parse().unwrap(),
            "PATCH_0001".parse().unwrap(),
            "PATCH_0001".parse().unwrap(),
        ];
        meta.contents = BTreeMap::from([(
            Personality::Worker,
            vec![
                "/etc/passwd".into(),
                "usr/../../etc".into(),
                "usr//bin".into(),
                "ok/file".into(),
                "ok/file".into(),
            ],
        )]);
        let errors = meta.validate().unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "summary",
                "warnings",
                "requires",
                "requires",
                "contents.worker",
                "contents.worker",
                "contents.worker",
                "contents.worker"
            ]
        );
        assert_eq!(
            errors[2].to_string(),
            "requires: PATCH_0002 must not require itself"
        );
        assert!(errors[4].reason.contains("absolute"), "{}", errors[4]);

        meta = sample();
        meta.contents.clear();
        assert_eq!(meta.validate().unwrap_err()[0].field, "contents");
    }

    proptest! {
        #[test]
        fn accepted_ids_are_single_safe_path_segments(value in "\\PC{0,70}") {
            if let Ok(id) = value.parse::<PatchId>() {
                prop_assert!(id.as_str().len() <= MAX_PATCH_ID_LEN);
                prop_assert!(!id.as_str().contains('/'));
                prop_assert!(!id.as_str().starts_with('.'));
                prop_assert!(id.as_str().chars().all(|c| c.is_ascii_graphic()));
                prop_assert_eq!(PatchId::from_file_name(&id.file_name()), Ok(id));
            }
        }

        #[test]
        fn accepted_content_paths_stay_inside_the_root(path in "[a-z./]{0,12}") {
            if check_content_path(&path).is_ok() {
                // Resolving the path lexically never leaves the root.
                let mut depth = 0i32;
                for part in path.split('/') {
                    match part {
                        ".." => depth -= 1,
                        "." | "" => {}
                        _ => depth += 1,
                    }
                    prop_assert!(depth >= 0);
                }
                prop_assert!(!path.starts_with('/'));
            }
        }

        #[test]
        fn release_order_is_consistent_with_equality(
            a in "[0-9]{1,3}\\.[0-9]{1,3}(\\.[0-9]{1,2})?",
            b in "[0-9]{1,3}\\.[0-9]{1,3}(\\.[0-9]{1,2})?",
        ) {
            let (ra, rb): (Release, Release) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(ra.cmp(&rb) == Ordering::Equal, ra == rb);
            prop_assert_eq!(ra.cmp(&rb), rb.cmp(&ra).reverse());
        }
    }
}

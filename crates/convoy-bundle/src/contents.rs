//! Which personalities take a patch, which files each installs, and which member holds each.
//!
//! `metadata.json` (`convoy_core::patch::PatchMetadata`) lists, per personality, every path a
//! host of that personality installs. The archive stores each file's bytes once, in the
//! section it was given for: `payload/all/` for every host, `payload/<personality>/` for
//! one. A host installs the sections of `Section::for_personality`, so its list in the
//! metadata is the union of those sections, and each path it lists is held by exactly one
//! of them.

use std::collections::BTreeMap;

use convoy_core::host::Personality;

use crate::layout::Section;
use crate::path::{PathProblem, plain_relative};

/// `PatchMetadata::contents`: per personality that takes the patch, its install paths, sorted.
pub type Contents = BTreeMap<Personality, Vec<String>>;

/// Why payload files cannot be installed as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutConflict {
    #[error("invalid install path {path:?}: {problem}")]
    UnsafePath { path: String, problem: PathProblem },
    #[error("{path} is given twice for {section}")]
    Duplicate { path: String, section: Section },
    #[error(
        "{path} is given for both {first} and {second}: a {personality} host would install two files at one path"
    )]
    Twice {
        path: String,
        first: Section,
        second: Section,
        personality: Personality,
    },
    #[error("{path} is both a file and a directory for a {personality} host")]
    FileAndDirectory {
        path: String,
        personality: Personality,
    },
}

/// The contents that payload files (section, install path) give each personality. A
/// personality whose sections hold no file does not take the patch, except that a patch with
/// no payload at all (scripts only) is taken by every host.
pub fn contents_of<'a>(
    files: impl IntoIterator<Item = (Section, &'a str)>,
) -> Result<Contents, LayoutConflict> {
    let mut sections: BTreeMap<Section, Vec<&str>> = BTreeMap::new();
    for (section, path) in files {
        plain_relative(path.as_bytes()).map_err(|problem| LayoutConflict::UnsafePath {
            path: path.to_string(),
            problem,
        })?;
        sections.entry(section).or_default().push(path);
    }
    let scripts_only = sections.is_empty();
    let mut contents = Contents::new();
    for personality in Personality::ALL {
        let mut paths: BTreeMap<&str, Section> = BTreeMap::new();
        for &section in Section::for_personality(personality) {
            for &path in sections.get(&section).into_iter().flatten() {
                match paths.insert(path, section) {
                    Some(first) if first == section => {
                        return Err(LayoutConflict::Duplicate {
                            path: path.to_string(),
                            section,
                        });
                    }
                    Some(first) => {
                        return Err(LayoutConflict::Twice {
                            path: path.to_string(),
                            first,
                            second: section,
                            personality,
                        });
                    }
                    None => {}
                }
            }
        }
        // `etc/x` as a file and `etc/x/y` as a file cannot both be installed on one host.
        for path in paths.keys() {
            if let Some((i, _)) = path
                .match_indices('/')
                .find(|(i, _)| paths.contains_key(&path[..*i]))
            {
                return Err(LayoutConflict::FileAndDirectory {
                    path: path[..i].to_string(),
                    personality,
                });
            }
        }
        if !paths.is_empty() || scripts_only {
            contents.insert(personality, paths.into_keys().map(str::to_owned).collect());
        }
    }
    Ok(contents)
}

/// The member holding `path` for a host of `personality`: the first of its sections for
/// which `exists` says the member is there.
pub(crate) fn member_for(
    personality: Personality,
    path: &str,
    exists: impl Fn(&str) -> bool,
) -> Option<String> {
    Section::for_personality(personality)
        .iter()
        .map(|s| s.member(path))
        .find(|m| exists(m))
}

/// How `actual` differs from `expected`, for a refusal message; `None` if they are equal.
pub(crate) fn difference(expected: &Contents, actual: &Contents) -> Option<String> {
    for personality in Personality::ALL {
        match (expected.get(&personality), actual.get(&personality)) {
            (None, None) => {}
            (Some(want), None) => {
                return Some(format!(
                    "contents has no {personality} entry, but the payload gives {personality} hosts {} files",
                    want.len()
                ));
            }
            (None, Some(_)) => {
                return Some(format!(
                    "contents has a {personality} entry, but no payload member is for {personality} hosts"
                ));
            }
            (Some(want), Some(have)) if want != have => {
                if let Some(extra) = have.iter().find(|p| !want.contains(p)) {
                    return Some(format!(
                        "contents.{personality} lists {extra}, which no member holds for {personality} hosts"
                    ));
                }
                if let Some(missing) = want.iter().find(|p| !have.contains(p)) {
                    return Some(format!(
                        "the payload holds {missing} for {personality} hosts, which contents.{personality} does not list"
                    ));
                }
                return Some(format!(
                    "contents.{personality} is not sorted or lists a path twice"
                ));
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<(Section, &'static str)> {
        vec![
            (Section::All, "etc/motd"),
            (Section::Controller, "etc/x.conf"),
            (Section::Worker, "usr/bin/tool"),
        ]
    }

    #[test]
    fn each_personality_gets_its_sections() {
        let contents = contents_of(sample()).unwrap();
        assert_eq!(
            contents[&Personality::Controller],
            ["etc/motd", "etc/x.conf"]
        );
        assert_eq!(contents[&Personality::Worker], ["etc/motd", "usr/bin/tool"]);
        assert_eq!(contents[&Personality::Storage], ["etc/motd"]);
        assert_eq!(
            contents[&Personality::ControllerWorker],
            ["etc/motd", "etc/x.conf", "usr/bin/tool"]
        );
    }

    #[test]
    fn a_personality_without_files_does_not_take_the_patch() {
        let contents = contents_of([(Section::Worker, "usr/bin/tool")]).unwrap();
        let takers: Vec<Personality> = contents.keys().copied().collect();
        assert_eq!(takers, [Personality::Worker, Personality::ControllerWorker]);
    }

    #[test]
    fn a_scripts_only_patch_is_for_every_host() {
        let contents = contents_of([]).unwrap();
        assert_eq!(contents.len(), Personality::ALL.len());
        assert!(contents.values().all(Vec::is_empty));
    }

    #[test]
    fn two_files_at_one_path_on_one_host_are_refused() {
        let mut files = sample();
        files.push((Section::Storage, "etc/x.conf"));
        contents_of(files).unwrap();

        let mut files = sample();
        files.push((Section::Worker, "etc/motd"));
        assert!(matches!(
            contents_of(files),
            Err(LayoutConflict::Twice {
                first: Section::All,
                second: Section::Worker,
                ..
            })
        ));
        let mut files = sample();
        files.push((Section::Worker, "etc/x.conf"));
        assert!(matches!(
            contents_of(files),
            Err(LayoutConflict::Twice {
                personality: Personality::ControllerWorker,
                ..
            })
        ));
        let mut files = sample();
        files.push((Section::Worker, "usr/bin/tool"));
        assert!(matches!(
            contents_of(files),
            Err(LayoutConflict::Duplicate { .. })
        ));
        let mut files = sample();
        files.push((Section::Storage, "etc/motd/inner"));
        assert!(matches!(
            contents_of(files),
            Err(LayoutConflict::FileAndDirectory { .. })
        ));
    }

    #[test]
    fn unsafe_install_paths_are_refused() {
        let err = contents_of([(Section::All, "../etc/passwd")]).unwrap_err();
        assert!(matches!(
            err,
            LayoutConflict::UnsafePath {
                problem: PathProblem::ParentDir,
                ..
            }
        ));
    }

    #[test]
    fn differences_are_named() {
        let expected = contents_of(sample()).unwrap();
        assert_eq!(difference(&expected, &expected), None);
        let mut actual = expected.clone();
        actual.remove(&Personality::Storage);
        assert!(
            difference(&expected, &actual)
                .unwrap()
                .contains("no storage entry")
        );
        let mut actual = expected.clone();
        actual
            .get_mut(&Personality::Worker)
            .unwrap()
            .push("usr/bin/other".into());
        assert_eq!(
            difference(&expected, &actual).unwrap(),
            "contents.worker lists usr/bin/other, which no member holds for worker hosts"
        );
    }

    #[test]
    fn members_are_found_in_the_hosts_sections() {
        let exists = |m: &str| m == "payload/all/etc/motd" || m == "payload/worker/usr/bin/tool";
        assert_eq!(
            member_for(Personality::ControllerWorker, "usr/bin/tool", exists).as_deref(),
            Some("payload/worker/usr/bin/tool")
        );
        assert_eq!(
            member_for(Personality::Storage, "usr/bin/tool", exists),
            None
        );
    }
}

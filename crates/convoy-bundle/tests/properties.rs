//! Properties: any contents survive build and verify unchanged, and no single-byte change to
//! an archive yields different verified content.

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::{Fixture, key, verify_default};
use convoy_bundle::{BuildSpec, PayloadFile, Section, VerifiedBundle, build};
use convoy_core::host::Personality;
use proptest::prelude::*;

fn section() -> impl Strategy<Value = Section> {
    prop::sample::select(Section::ALL.to_vec())
}

/// Install paths with contents, none a directory of another.
fn files() -> impl Strategy<Value = BTreeMap<String, (Section, Vec<u8>, bool)>> {
    prop::collection::btree_map(
        "[a-z]{1,6}(/[a-z0-9_-][a-z0-9._-]{0,5}){0,3}",
        (
            section(),
            prop::collection::vec(any::<u8>(), 0..3000),
            any::<bool>(),
        ),
        1..8,
    )
    .prop_filter("a path is also a directory", |files| {
        files.keys().all(|p| {
            p.match_indices('/')
                .all(|(i, _)| !files.contains_key(&p[..i]))
        })
    })
}

/// Everything a verified bundle hands out: metadata, manifest and every member's bytes.
fn content(bundle: &VerifiedBundle) -> (String, String, Vec<Vec<u8>>) {
    let members = bundle
        .manifest()
        .members
        .iter()
        .map(|m| bundle.read_member(&m.path).unwrap())
        .collect();
    (
        serde_json::to_string(bundle.metadata()).unwrap(),
        serde_json::to_string(bundle.manifest()).unwrap(),
        members,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn build_then_verify_round_trips(files in files()) {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = BuildSpec::new("P-1".parse().unwrap(), "1.0".parse().unwrap());
        for (i, (path, (section, bytes, executable))) in files.iter().enumerate() {
            let source = dir.path().join(format!("src{i}"));
            std::fs::write(&source, bytes).unwrap();
            if *executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
            spec.payload.push(PayloadFile {
                section: *section,
                source,
                install_path: path.clone(),
            });
        }
        let bundle = build(&spec, &key(), dir.path()).unwrap();
        let verified = verify_default(&bundle).unwrap();
        for (path, (section, bytes, executable)) in &files {
            let member = section.member(path);
            prop_assert_eq!(&verified.read_member(&member).unwrap(), bytes);
            prop_assert_eq!(verified.manifest().entry(&member).unwrap().executable, *executable);
        }
        for personality in Personality::ALL {
            let expected: Vec<&String> = files
                .iter()
                .filter(|(_, (s, _, _))| Section::for_personality(personality).contains(s))
                .map(|(p, _)| p)
                .collect();
            let dest = dir.path().join(personality.as_str());
            std::fs::create_dir(&dest).unwrap();
            let unpacked = verified.unpack_payload(personality, &dest).unwrap();
            let got: Vec<&String> = unpacked.iter().map(|f| &f.install_path).collect();
            prop_assert_eq!(got, expected);
            for file in &unpacked {
                prop_assert_eq!(
                    &std::fs::read(dest.join(&file.install_path)).unwrap(),
                    &files[&file.install_path].1
                );
            }
        }
    }
}

struct Good {
    _fixture: Fixture,
    bytes: Vec<u8>,
    content: (String, String, Vec<Vec<u8>>),
}

fn good() -> &'static Good {
    static GOOD: OnceLock<Good> = OnceLock::new();
    GOOD.get_or_init(|| {
        let fixture = Fixture::new();
        let bytes = std::fs::read(&fixture.bundle).unwrap();
        let content = content(&verify_default(&fixture.bundle).unwrap());
        Good {
            _fixture: fixture,
            bytes,
            content,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_single_byte_change_is_refused_or_harmless(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let good = good();
        let mut bytes = good.bytes.clone();
        let at = at.index(bytes.len());
        bytes[at] ^= xor;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("changed.patch");
        std::fs::write(&path, &bytes).unwrap();
        if let Ok(bundle) = verify_default(&path) {
            prop_assert_eq!(&content(&bundle), &good.content, "byte {} ^ {:#x} changed the content", at, xor);
        }
    }
}

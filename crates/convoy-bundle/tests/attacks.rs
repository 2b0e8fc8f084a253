//! One test per attack: each tampered bundle is refused, with a message that says which
//! member or key is at fault (in the manner of tough's tests/data/<attack>/).

mod common;

use common::{Fixture, key, stranger, verify_default};
use convoy_bundle::tamper::{Attack, resign, tamper};
use convoy_bundle::{Limit, Limits, PathProblem, TrustedKeys, VerifyError, verify};

/// Tampers with the good fixture and returns the verifier's refusal.
fn refused(attack: Attack) -> VerifyError {
    let fixture = Fixture::new();
    let bad = fixture.path("tampered.patch");
    tamper(&fixture.bundle, attack, &bad).unwrap();
    let err = verify_default(&bad).expect_err("a tampered bundle must be refused");
    assert!(err.is_rejection());
    err
}

#[test]
fn the_good_bundle_verifies() {
    let fixture = Fixture::new();
    let bundle = verify_default(&fixture.bundle).unwrap();
    assert_eq!(bundle.metadata().id.as_str(), "PATCH_0001");
    assert_eq!(bundle.key_id(), key().id());
}

#[test]
fn payload_byte_flipped() {
    let err = refused(Attack::PayloadByteFlipped);
    assert!(
        matches!(&err, VerifyError::HashMismatch { path } if path == "payload/all/etc/motd"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "altered member: the SHA-256 of payload/all/etc/motd differs from the manifest"
    );
}

#[test]
fn metadata_field_changed() {
    let err = refused(Attack::MetadataFieldChanged);
    assert!(
        matches!(&err, VerifyError::HashMismatch { path } if path == "metadata.json"),
        "{err}"
    );
}

#[test]
fn manifest_edited() {
    let err = refused(Attack::ManifestEdited);
    assert!(matches!(err, VerifyError::AlteredManifest { .. }), "{err}");
    assert!(err.to_string().starts_with("altered manifest: "), "{err}");
}

#[test]
fn signature_flipped() {
    let err = refused(Attack::SignatureFlipped);
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "bad signature: manifest.sig does not verify manifest.json with key {}",
            key().id()
        )
    );
}

#[test]
fn signature_missing() {
    let err = refused(Attack::SignatureMissing);
    assert!(matches!(err, VerifyError::MissingSignature { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "missing signature: the second member must be manifest.sig, found \"metadata.json\""
    );
}

#[test]
fn untrusted_key() {
    let fixture = Fixture::new();
    let bad = fixture.path("resigned.patch");
    resign(&fixture.bundle, &stranger(), &bad).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert!(matches!(err, VerifyError::UntrustedKey { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "untrusted key: the bundle is signed by key {}, which is not trusted (trusted: {})",
            stranger().id(),
            key().id()
        )
    );
    // The same bundle verifies for a verifier that trusts the other key.
    let theirs = TrustedKeys::new([stranger().public_key()]);
    verify(&bad, &theirs, &Limits::default()).unwrap();
}

#[test]
fn no_trusted_keys_at_all() {
    let fixture = Fixture::new();
    let err = verify(&fixture.bundle, &TrustedKeys::default(), &Limits::default()).unwrap_err();
    assert!(err.to_string().contains("(trusted: none)"), "{err}");
}

#[test]
fn parent_dir_path() {
    let err = refused(Attack::ParentDirPath);
    assert!(
        matches!(
            &err,
            VerifyError::UnsafePath {
                problem: PathProblem::ParentDir,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "unsafe path: member \"payload/all/../../../etc/cron.d/convoy\" is refused because it climbs out with '..'"
    );
}

#[test]
fn absolute_path() {
    let err = refused(Attack::AbsolutePath);
    assert!(
        matches!(
            &err,
            VerifyError::UnsafePath {
                problem: PathProblem::Absolute,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("\"/etc/cron.d/convoy\""), "{err}");
}

#[test]
fn symlink() {
    let err = refused(Attack::Symlink);
    assert_eq!(
        err.to_string(),
        "not a regular file: member \"payload/all/etc/motd\" is a symbolic link"
    );
}

#[test]
fn hardlink() {
    let err = refused(Attack::Hardlink);
    assert_eq!(
        err.to_string(),
        "not a regular file: member \"payload/all/etc/motd\" is a hard link"
    );
}

#[test]
fn device() {
    let err = refused(Attack::Device);
    assert!(
        matches!(
            err,
            VerifyError::NotRegularFile {
                kind: "character device",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn extra_member() {
    let err = refused(Attack::ExtraMember);
    assert_eq!(
        err.to_string(),
        "extra member: payload/all/usr/local/bin/backdoor is not listed in the manifest"
    );
}

#[test]
fn missing_member() {
    let err = refused(Attack::MissingMember);
    assert_eq!(
        err.to_string(),
        "missing member: payload/worker/usr/local/bin/tool is listed in the manifest but not in the archive"
    );
}

#[test]
fn oversized_member() {
    let fixture = Fixture::new();
    let limits = Limits {
        max_member_size: 1000,
        ..Limits::default()
    };
    let err = verify(&fixture.bundle, &common::trusted(), &limits).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::LimitExceeded {
                limit: Limit::MemberSize,
                actual: 3000,
                max: 1000,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "limit exceeded: member payload/worker/usr/local/bin/tool is 3000 bytes, over max_member_size (1000)"
    );
}

#[test]
fn oversized_bundle_metadata_and_member_count() {
    let fixture = Fixture::new();
    let check = |limits: Limits, expected: &str| {
        let err = verify(&fixture.bundle, &common::trusted(), &limits).unwrap_err();
        assert!(err.to_string().contains(expected), "{expected}: {err}");
    };
    check(
        Limits {
            max_total_size: 4096,
            ..Limits::default()
        },
        "limit exceeded: the bundle is",
    );
    check(
        Limits {
            max_metadata_size: 100,
            ..Limits::default()
        },
        "over max_metadata_size",
    );
    check(
        Limits {
            max_manifest_size: 100,
            ..Limits::default()
        },
        "limit exceeded: member manifest.json",
    );
    check(
        Limits {
            max_members: 5,
            ..Limits::default()
        },
        "limit exceeded: 9 members, over max_members (5)",
    );
}

#[test]
fn trailing_data() {
    let fixture = Fixture::new();
    let bad = fixture.path("trailing.patch");
    let mut bytes = std::fs::read(&fixture.bundle).unwrap();
    let len = bytes.len();
    bytes[len - 1] = b'x';
    std::fs::write(&bad, bytes).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert!(matches!(err, VerifyError::TrailingData), "{err}");
}

#[test]
fn not_a_bundle() {
    let fixture = Fixture::new();
    let bad = fixture.path("text.patch");
    std::fs::write(&bad, "hello, I am not a tar archive\n".repeat(40)).unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert!(matches!(err, VerifyError::Corrupt(_)), "{err}");

    std::fs::write(&bad, "").unwrap();
    let err = verify_default(&bad).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing member: the first member must be manifest.json, found nothing"
    );

    let err = verify_default(&fixture.path("absent.patch")).unwrap_err();
    assert!(!err.is_rejection(), "{err}");
}

#[test]
fn every_attack_is_refused() {
    let fixture = Fixture::new();
    for attack in Attack::ALL {
        let bad = fixture.path(&format!("{attack:?}.patch"));
        tamper(&fixture.bundle, attack, &bad).unwrap();
        assert!(verify_default(&bad).is_err(), "{attack:?} was accepted");
    }
}

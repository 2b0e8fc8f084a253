//! `convoy patch build | inspect | verify`: the offline patch tools.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use convoy_bundle::{
    BuildSpec, Inspection, Limits, PayloadFile, Script, Section, SigningKey, TrustedKeys,
    VerifyError,
};
use convoy_core::host::Personality;
use convoy_core::patch::{PatchId, PatchStatus, Release};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::failure::Failure;
use crate::output::Output;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusArg {
    #[value(name = "DEV")]
    Dev,
    #[value(name = "REL")]
    Rel,
    #[value(name = "OBS")]
    Obs,
}

impl From<StatusArg> for PatchStatus {
    fn from(s: StatusArg) -> PatchStatus {
        match s {
            StatusArg::Dev => PatchStatus::Development,
            StatusArg::Rel => PatchStatus::Released,
            StatusArg::Obs => PatchStatus::Obsolete,
        }
    }
}

/// Payload arguments take FILE=INSTALL_PATH (e.g. build/tool=usr/bin/tool) or a directory
/// DIR[=UNDER] whose tree mirrors the host's root.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The patch id, e.g. PATCH_0001: letters, digits, '.', '_', '-'.
    #[arg(long)]
    id: String,
    /// The release the patch is for, MAJOR.MINOR (e.g. 25.09) [default: $PLATFORM_RELEASE].
    #[arg(long, env = "PLATFORM_RELEASE", hide_env = true)]
    release: String,
    /// Development status.
    #[arg(long, value_enum, default_value = "DEV")]
    status: StatusArg,
    /// The patch may never be removed once applied.
    #[arg(long)]
    unremovable: bool,
    /// Whether installing the patch needs the host locked and rebooted.
    #[arg(long, value_name = "Y|N", value_parser = ["Y", "N"], default_value = "Y")]
    reboot_required: String,
    /// The patch may only be applied on a system running its release.
    #[arg(long)]
    apply_active_release_only: bool,
    /// One-line summary.
    #[arg(long, value_name = "TEXT")]
    summary: Option<String>,
    /// Description.
    #[arg(long, value_name = "TEXT")]
    desc: Option<String>,
    /// Warnings.
    #[arg(long, value_name = "TEXT")]
    warn: Option<String>,
    /// Install instructions.
    #[arg(long, value_name = "TEXT")]
    inst: Option<String>,
    /// A patch this one requires (repeatable).
    #[arg(long = "req", value_name = "ID")]
    requires: Vec<String>,
    /// A file (FILE=PATH) or tree (DIR[=UNDER]) for controllers (repeatable).
    #[arg(long, value_name = "SOURCE")]
    controller: Vec<String>,
    /// A file or tree for workers (repeatable).
    #[arg(long, value_name = "SOURCE")]
    worker: Vec<String>,
    /// A file or tree for storage hosts (repeatable).
    #[arg(long, value_name = "SOURCE")]
    storage: Vec<String>,
    /// A file or tree for every host (repeatable).
    #[arg(long, value_name = "SOURCE")]
    all_nodes: Vec<String>,
    /// Script run on a host before it installs the patch.
    #[arg(long, value_name = "SCRIPT")]
    pre_install: Option<PathBuf>,
    /// Script run on a host after it installs the patch.
    #[arg(long, value_name = "SCRIPT")]
    post_install: Option<PathBuf>,
    /// Script run on a host before it removes the patch.
    #[arg(long, value_name = "SCRIPT")]
    pre_remove: Option<PathBuf>,
    /// The signing key (PKCS#8 PEM, as written by `convoy key generate`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// Directory to write <ID>.patch in.
    #[arg(short = 'o', long = "out-dir", value_name = "DIR", default_value = ".")]
    out_dir: PathBuf,
}

#[derive(Serialize)]
struct Built {
    patch_file: String,
    id: String,
    key_id: String,
    members: usize,
    size: u64,
}

impl BuildArgs {
    pub fn run(self, out: &Output) -> Result<(), Failure> {
        let key = SigningKey::read(&self.key).map_err(|e| Failure::bad_input(e.to_string()))?;
        let bad = |e: convoy_core::ValidationError| Failure::bad_input(e.to_string());
        let id = PatchId::parse("--id", &self.id).map_err(bad)?;
        let release = Release::parse("--release", &self.release).map_err(bad)?;
        let mut spec = BuildSpec::new(id, release);
        spec.status = self.status.into();
        spec.unremovable = self.unremovable;
        spec.reboot_required = self.reboot_required == "Y";
        spec.apply_active_release_only = self.apply_active_release_only;
        spec.summary = self.summary.unwrap_or_default();
        spec.description = self.desc.unwrap_or_default();
        spec.warnings = self.warn.unwrap_or_default();
        spec.install_instructions = self.inst.unwrap_or_default();
        spec.requires = self
            .requires
            .iter()
            .map(|r| PatchId::parse("--req", r))
            .collect::<Result<_, _>>()
            .map_err(bad)?;
        let sections = [
            (Section::Controller, self.controller),
            (Section::Worker, self.worker),
            (Section::Storage, self.storage),
            (Section::All, self.all_nodes),
        ];
        for (section, args) in sections {
            for arg in args {
                spec.payload
                    .extend(PayloadFile::from_arg(section, &arg).map_err(build_failure)?);
            }
        }
        let scripts = [
            (Script::PreInstall, self.pre_install),
            (Script::PostInstall, self.post_install),
            (Script::PreRemove, self.pre_remove),
        ];
        spec.scripts = scripts
            .into_iter()
            .filter_map(|(script, path)| path.map(|p| (script, p)))
            .collect();
        if !self.out_dir.is_dir() {
            return Err(Failure::bad_input(format!(
                "-o {}: no such directory",
                self.out_dir.display()
            )));
        }

        let path = convoy_bundle::build(&spec, &key, &self.out_dir).map_err(build_failure)?;
        let inspection = inspect(&path)?;
        out.one(&Built {
            patch_file: path.display().to_string(),
            id: inspection.metadata.id.to_string(),
            key_id: key.id().to_string(),
            members: inspection.manifest.members.len() + 2,
            size: inspection.size,
        })
    }
}

fn build_failure(e: convoy_bundle::BuildError) -> Failure {
    if e.is_bad_input() {
        Failure::bad_input(e.to_string())
    } else {
        Failure::failed(e.to_string())
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The patch file.
    file: PathBuf,
}

impl InspectArgs {
    pub fn run(self, out: &Output) -> Result<(), Failure> {
        let inspection = inspect(&self.file)?;
        out.one(&inspection_record(&inspection, out.is_table()))
    }
}

fn inspect(path: &Path) -> Result<Inspection, Failure> {
    convoy_bundle::inspect(path).map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))
}

/// The fields of `convoy patch inspect`. Lists are one item per line in a table, arrays
/// otherwise.
fn inspection_record(inspection: &Inspection, table: bool) -> Map<String, Value> {
    let m = &inspection.metadata;
    let list = |items: Vec<String>| -> Value {
        if table {
            Value::String(items.join("\n"))
        } else {
            Value::from(items)
        }
    };
    let yes_no = |b: bool| Value::from(if b { "Y" } else { "N" });
    let mut record = Map::new();
    record.insert("id".into(), m.id.as_str().into());
    record.insert("sw_version".into(), m.sw_version.as_str().into());
    record.insert("status".into(), m.status.as_str().into());
    record.insert("summary".into(), m.summary.clone().into());
    record.insert("description".into(), m.description.clone().into());
    record.insert(
        "install_instructions".into(),
        m.install_instructions.clone().into(),
    );
    record.insert("warnings".into(), m.warnings.clone().into());
    record.insert("unremovable".into(), yes_no(m.unremovable));
    record.insert("reboot_required".into(), yes_no(m.reboot_required));
    record.insert(
        "apply_active_release_only".into(),
        yes_no(m.apply_active_release_only),
    );
    record.insert(
        "requires".into(),
        list(m.requires.iter().map(ToString::to_string).collect()),
    );
    // Per personality: the files its hosts install; nothing if it does not take the patch.
    for personality in Personality::ALL {
        let files = match m.contents.get(&personality) {
            None if table => Value::String("(not for these hosts)".into()),
            None => Value::Null,
            Some(files) if files.is_empty() && table => Value::String("(scripts only)".into()),
            Some(files) => list(files.clone()),
        };
        record.insert(personality.as_str().into(), files);
    }
    record.insert(
        "scripts".into(),
        list(
            inspection
                .manifest
                .scripts()
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
        ),
    );
    record.insert(
        "signed_by".into(),
        inspection
            .signed_by
            .as_ref()
            .map_or(Value::Null, |k| k.as_str().into()),
    );
    record.insert(
        "members".into(),
        (inspection.manifest.members.len() + 2).into(),
    );
    record.insert("size".into(), inspection.size.into());
    record.insert(
        "verified".into(),
        if table {
            "no (inspect trusts nothing; use convoy patch verify)".into()
        } else {
            false.into()
        },
    );
    record
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The patch file.
    file: PathBuf,
    /// A public key to trust (PEM, as written by `convoy key generate`; repeatable).
    #[arg(long = "trusted-key", value_name = "PUB", required = true)]
    trusted_keys: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Verified {
    verified: bool,
    id: String,
    key_id: String,
    members: usize,
    size: u64,
}

impl VerifyArgs {
    pub fn run(self, out: &Output) -> Result<(), Failure> {
        let trusted =
            TrustedKeys::read(&self.trusted_keys).map_err(|e| Failure::bad_input(e.to_string()))?;
        let file = self.file.display();
        let bundle = convoy_bundle::verify(&self.file, &trusted, &Limits::default()).map_err(
            |e| match e {
                VerifyError::Io { .. } => Failure::bad_input(e.to_string()),
                e => Failure::failed(format!("{file} failed verification: {e}")),
            },
        )?;
        let id = &bundle.metadata().id;
        // A repository finds a patch by its file name, as StarlingX's does.
        let expected = id.file_name();
        if self.file.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
            return Err(Failure::failed(format!(
                "{file} failed verification: it holds patch {id}, so it must be named {expected}"
            )));
        }
        if out.is_table() {
            out.note(&format!(
                "verified: {file} is patch {id}, signed by trusted key {}",
                bundle.key_id()
            ));
            return Ok(());
        }
        out.one(&Verified {
            verified: true,
            id: id.to_string(),
            key_id: bundle.key_id().to_string(),
            members: bundle.manifest().members.len() + 2,
            size: bundle.size(),
        })
    }
}

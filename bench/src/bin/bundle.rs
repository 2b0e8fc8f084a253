//! Building and verifying a 1 GiB patch, against `sha256sum` over the same payload bytes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use convoy_bench::write_payload;
use convoy_bundle::{BuildSpec, Limits, PayloadFile, Section, SigningKey, TrustedKeys};
use convoy_core::host::Personality;
use convoy_launch::Binaries;

struct Options {
    size_mib: u64,
    files: u64,
    rounds: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        size_mib: 1024,
        files: 16,
        rounds: 3,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every option takes a value")?;
        match pair[0].as_str() {
            "--size-mib" => options.size_mib = value.parse()?,
            "--files" => options.files = value.parse()?,
            "--rounds" => options.rounds = value.parse()?,
            other => bail!("unknown option {other}; options: --size-mib N --files N --rounds N"),
        }
    }
    if options.files == 0 || !options.size_mib.is_multiple_of(options.files) {
        bail!("--size-mib must be a multiple of --files");
    }
    Ok(options)
}

/// The same SHA-256 code convoy uses, over a file read in 1 MiB chunks: what verification
/// costs without the archive, the manifest and the signature.
fn sha256_file(path: &Path) -> anyhow::Result<()> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    std::hint::black_box(hasher.finalize());
    Ok(())
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / 1e6 / time.as_secs_f64()
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    if cfg!(debug_assertions) {
        eprintln!("warning: a debug build; run with --release for meaningful figures");
    }
    let dir = tempfile::Builder::new().prefix("convoy-bench-").tempdir()?;
    let sources = dir.path().join("payload");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&sources)?;
    std::fs::create_dir_all(&out)?;

    eprintln!(
        "writing {} MiB of payload in {} files...",
        options.size_mib, options.files
    );
    let per_file = options.size_mib / options.files;
    let mut spec = BuildSpec::new("BENCH_0001".parse()?, "25.09".parse()?);
    let mut paths: Vec<PathBuf> = Vec::new();
    for i in 0..options.files {
        let path = sources.join(format!("file-{i:02}"));
        write_payload(&path, per_file, 0x9E37_79B9_7F4A_7C15 ^ i)?;
        spec.payload.push(PayloadFile {
            section: Section::Worker,
            source: path.clone(),
            install_path: format!("opt/bench/file-{i:02}"),
        });
        paths.push(path);
    }
    let payload_bytes = options.size_mib << 20;
    let key = SigningKey::generate()?;
    let trusted = TrustedKeys::new([key.public_key()]);
    let limits = Limits::default();

    let started = Instant::now();
    let bundle = convoy_bundle::build(&spec, &key, &out)?;
    let build = started.elapsed();
    let bundle_bytes = std::fs::metadata(&bundle)?.len();

    // Floor and verify alternate, so neither always runs on a warmer cache; best of each.
    let (mut floors, mut verifies, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.rounds {
        let started = Instant::now();
        let status = Command::new("sha256sum")
            .args(&paths)
            .stdout(std::process::Stdio::null())
            .status()?;
        floors.push(started.elapsed());
        if !status.success() {
            bail!("sha256sum failed: {status}");
        }
        let started = Instant::now();
        let verified = convoy_bundle::verify(&bundle, &trusted, &limits)?;
        verifies.push(started.elapsed());
        drop(verified);
        let started = Instant::now();
        for path in &paths {
            sha256_file(path)?;
        }
        hashes.push(started.elapsed());
    }
    let (floor, verify, hash) = (best(&floors), best(&verifies), best(&hashes));

    // The operator's path: the real `convoy` binary beside this one, if it was built.
    let convoy = Binaries::default_dir()?.join("convoy");
    let cli = if convoy.exists() {
        let public = dir.path().join("patch-signing.pub.pem");
        key.public_key().write(&public)?;
        let started = Instant::now();
        let output = Command::new(&convoy)
            .args(["patch", "verify"])
            .arg(&bundle)
            .arg("--trusted-key")
            .arg(&public)
            .output()?;
        if !output.status.success() {
            bail!(
                "convoy patch verify failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Some(started.elapsed())
    } else {
        eprintln!("{} is not built; skipping the CLI run", convoy.display());
        None
    };

    let verified = convoy_bundle::verify(&bundle, &trusted, &limits)?;
    let dest = dir.path().join("root");
    std::fs::create_dir(&dest)?;
    let started = Instant::now();
    verified.unpack_payload(Personality::Worker, &dest)?;
    let unpack = started.elapsed();

    println!(
        "patch of {} MiB payload in {} files ({} bytes as a bundle), best of {} rounds:",
        options.size_mib, options.files, bundle_bytes, options.rounds
    );
    let line = |what: &str, time: Duration| {
        println!(
            "  {what:<36} {:>8.3} s  {:>8.1} MB/s  {:>5.2}x the floor's time",
            time.as_secs_f64(),
            mb_per_s(payload_bytes, time),
            time.as_secs_f64() / floor.as_secs_f64()
        );
    };
    line("floor (sha256sum of the payload)", floor);
    line("sha2 crate reading the payload", hash);
    line("convoy_bundle::verify", verify);
    if let Some(cli) = cli {
        line("convoy patch verify (the binary)", cli);
    }
    line("convoy build (hash, sign, write)", build);
    line("unpack for a worker (rehash, write)", unpack);
    println!(
        "  verify/floor ratio: {:.2}x (goal: within 1.5x)",
        verify.as_secs_f64() / floor.as_secs_f64()
    );
    Ok(())
}

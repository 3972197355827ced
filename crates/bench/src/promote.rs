//! `promote dev test` of the example, in two parts printed side by side with their baselines:
//!
//! (a) the artifact store's copy of the promoted files (`ArtifactStore::import`: clone or copy,
//!     staged, verified, renamed) against `cp --reflink=auto` of the same blob files, for the
//!     example's artifacts and for one artifact of about 20 MiB;
//! (b) the whole `sandpit promote dev test` against `sandpit rollback test --to <that promotion>`:
//!     a redeploy of the same digests into the same environment from the same starting state
//!     (test running the previous digests), through the same daemon path (`deployment::execute`,
//!     replacing every changed component), but with the bytes already in test's store. Both
//!     sides verify, extract and start the same bytes (the daemon removes a replaced
//!     component's extracted directory). The difference is what promoting itself costs: asking
//!     the daemon what FROM runs, importing, verifying.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use sandpit_artifact::{ArtifactStore, ImportMethod, Provenance};
use sandpit_domain::{ArtifactName, ByteSize, CommitId, ComponentKind, Name, Version};
use serde_json::Value;

use crate::{committed_copy, git, make_tree, median, run, run_for_output, RUNS};

/// Promote/redeploy pairs. Each whole command varies by a tenth or more from run to run on a
/// shared two-core machine while the difference sought is a few percent, so more pairs than the
/// other sections' [`RUNS`] (each pair costs a build and three deployments, a few seconds).
const PAIRS: usize = 9;

/// The example's components whose sources [`revise`] touches, so that each revision changes
/// their digests (the model's file is left alone: its bytes, and digest, stay the same).
const REVISED_FILES: [&str; 3] = [
    "jobs/prepare-data/prepare.py",
    "services/assay-ingest/server.py",
    "services/grade-api/server.py",
];

pub fn run_all(sandpit: &Path, example: &Path, scratch: &Path) -> anyhow::Result<()> {
    let scratch = scratch.join("promote");
    let repo = committed_copy(example, &scratch.join("repo"))?;
    let home = scratch.join("home");
    let sandpit_cmd = |args: &[&str]| {
        let mut command = Command::new(sandpit);
        command
            .arg("-C")
            .arg(&repo)
            .args(args)
            .env("SANDPIT_HOME", &home)
            .env("SANDPIT_USER", "bench@sandpit")
            .env("SANDPIT_STOP_GRACE_MS", "2000");
        command
    };
    let result = measure(&sandpit_cmd, &repo, &home, &scratch);
    // Stop the daemon (and what it runs) whether or not the measurements worked.
    let stopped = run(&mut sandpit_cmd(&["daemon", "stop"]));
    let report = result?;
    stopped?;
    report.print();
    Ok(())
}

/// One run's figures.
struct Sample {
    import: Duration,
    cp: Duration,
    promote: Duration,
    redeploy: Duration,
}

struct Report {
    samples: Vec<Sample>,
    files: usize,
    bytes: u64,
    method: ImportMethod,
    large: LargeCopy,
}

fn measure(
    sandpit_cmd: &dyn Fn(&[&str]) -> Command,
    repo: &Path,
    home: &Path,
    scratch: &Path,
) -> anyhow::Result<Report> {
    run(&mut sandpit_cmd(&["deploy", "dev"]))?;
    let mut previous = deployment_id(&json_of(&mut sandpit_cmd(&[
        "promote", "dev", "test", "--json",
    ]))?)?;
    let dev_store = ArtifactStore::open(&home.join("projects/orewise/envs/dev/artifacts"))?;
    let mut samples = Vec::new();
    let (mut files, mut bytes, mut method) = (0, 0, ImportMethod::AlreadyPresent);
    for run_number in 0..PAIRS {
        // New digests in dev, so that the promotion below has bytes to import into test.
        revise(repo, run_number)?;
        run(&mut sandpit_cmd(&["deploy", "dev"]))?;

        let start = Instant::now();
        let promoted = json_of(&mut sandpit_cmd(&["promote", "dev", "test", "--json"]))?;
        let promote = start.elapsed();
        let promoted_id = deployment_id(&promoted)?;

        // Back to the digests test ran before the promotion (not timed), then the same digests
        // the promotion brought, again: the redeploy.
        run(&mut sandpit_cmd(&[
            "rollback",
            "test",
            "--to",
            &previous.to_string(),
        ]))?;
        let start = Instant::now();
        run(&mut sandpit_cmd(&[
            "rollback",
            "test",
            "--to",
            &promoted_id.to_string(),
        ]))?;
        let redeploy = start.elapsed();
        previous = promoted_id;

        // (a) The promoted artifacts, copied again from dev's store into fresh destinations.
        let names = artifact_names(&promoted)?;
        let copy = store_copy(
            &dev_store,
            &names,
            &scratch.join(format!("import-{run_number}")),
        )?;
        let cp = cp_reflink_auto(&copy.blobs, &scratch.join(format!("cp-{run_number}")))?;
        (files, bytes, method) = (copy.blobs.len(), copy.bytes, copy.method);
        samples.push(Sample {
            import: copy.elapsed,
            cp,
            promote,
            redeploy,
        });
    }
    let large = large_copy(scratch)?;
    Ok(Report {
        samples,
        files,
        bytes,
        method,
        large,
    })
}

/// Appends a comment to each of [`REVISED_FILES`] and commits: new input trees, new digests,
/// same behaviour.
fn revise(repo: &Path, run_number: usize) -> anyhow::Result<()> {
    for file in REVISED_FILES {
        let path = repo.join(file);
        let mut text = fs::read_to_string(&path).with_context(|| format!("cannot read {file}"))?;
        text.push_str(&format!("# bench revision {run_number}\n"));
        fs::write(&path, text)?;
    }
    git(repo, &["commit", "-q", "-a", "-m", "bench revision"])
}

fn json_of(command: &mut Command) -> anyhow::Result<Value> {
    let output = run_for_output(command)?;
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{command:?} did not print JSON"))
}

fn deployment_id(deployment: &Value) -> anyhow::Result<i64> {
    deployment["id"]
        .as_i64()
        .with_context(|| format!("no deployment id in {deployment}"))
}

fn artifact_names(deployment: &Value) -> anyhow::Result<Vec<ArtifactName>> {
    let Some(components) = deployment["components"].as_array() else {
        bail!("no components in {deployment}");
    };
    components
        .iter()
        .map(|component| {
            component["artifact"]
                .as_str()
                .and_then(ArtifactName::parse)
                .with_context(|| format!("no artifact name in {component}"))
        })
        .collect()
}

/// What [`store_copy`] did.
struct StoreCopy {
    elapsed: Duration,
    /// The source blobs, each once (for `cp`).
    blobs: Vec<PathBuf>,
    bytes: u64,
    /// How the last blob arrived (they all arrive the same way on one file system).
    method: ImportMethod,
}

/// `ArtifactStore::import` of `names` from `source` into a new store at `root`, timed; the
/// store is opened (its directories made) before the clock starts.
fn store_copy(
    source: &ArtifactStore,
    names: &[ArtifactName],
    root: &Path,
) -> anyhow::Result<StoreCopy> {
    let target = ArtifactStore::open(root)?;
    let mut blobs: Vec<PathBuf> = Vec::new();
    let mut bytes = 0;
    let mut method = ImportMethod::AlreadyPresent;
    let start = Instant::now();
    for name in names {
        let imported = target.import(source, name)?;
        let blob = source.blob_path(&imported.artifact.digest);
        if !blobs.contains(&blob) {
            bytes += imported.artifact.size;
            blobs.push(blob);
        }
        if imported.method != ImportMethod::AlreadyPresent {
            method = imported.method;
        }
    }
    Ok(StoreCopy {
        elapsed: start.elapsed(),
        blobs,
        bytes,
        method,
    })
}

/// `cp --reflink=auto` of `files` into a new directory, timed (one process, as a script would).
fn cp_reflink_auto(files: &[PathBuf], destination: &Path) -> anyhow::Result<Duration> {
    fs::create_dir_all(destination)?;
    let mut cp = Command::new("cp");
    cp.arg("--reflink=auto").args(files).arg(destination);
    let start = Instant::now();
    run(&mut cp)?;
    Ok(start.elapsed())
}

/// The same comparison for one artifact the size of a real build output.
struct LargeCopy {
    bytes: u64,
    import: Duration,
    cp: Duration,
}

fn large_copy(scratch: &Path) -> anyhow::Result<LargeCopy> {
    let tree = scratch.join("large-tree");
    make_tree(&tree)?;
    let zip = scratch.join("large.zip");
    let summary = sandpit_artifact::package_dir(&tree, &zip, ByteSize(ByteSize::GIB))?;
    let source = ArtifactStore::open(&scratch.join("large-source"))?;
    let name = ArtifactName::new(
        Name::parse("bench")?,
        Version::clean(CommitId::parse(&"0".repeat(40))?),
    );
    let provenance = Provenance {
        component: name.component.clone(),
        kind: ComponentKind::Service,
        version: name.version.clone(),
        commit: name.version.commit().clone(),
        input_tree: "0".repeat(40),
        input_key: "bench".to_owned(),
        build_command: None,
        builder: None,
        sandpit_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: "2024-01-01T00:00:00Z".to_owned(),
        finished_at: "2024-01-01T00:00:00Z".to_owned(),
        digest: summary.digest.clone(),
        size: summary.zip_bytes,
        reused_from: None,
    };
    source.put(&name, &zip, provenance)?;
    let mut imports = Vec::new();
    let mut copies = Vec::new();
    for run_number in 0..RUNS {
        let copy = store_copy(
            &source,
            std::slice::from_ref(&name),
            &scratch.join(format!("large-import-{run_number}")),
        )?;
        imports.push(copy.elapsed);
        copies.push(cp_reflink_auto(
            &copy.blobs,
            &scratch.join(format!("large-cp-{run_number}")),
        )?);
    }
    Ok(LargeCopy {
        bytes: summary.zip_bytes,
        import: median(imports),
        cp: median(copies),
    })
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn median_ms(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

impl Report {
    fn print(&self) {
        let pick = |field: fn(&Sample) -> Duration| {
            median(self.samples.iter().map(field).collect::<Vec<_>>())
        };
        let (import, cp) = (pick(|s| s.import), pick(|s| s.cp));
        let (promote, redeploy) = (pick(|s| s.promote), pick(|s| s.redeploy));
        // Paired per run, so that a slow moment of the machine counts against both sides.
        let overhead = median_ms(
            self.samples
                .iter()
                .map(|s| ms(s.promote) - ms(s.redeploy))
                .collect(),
        );
        let method = match self.method {
            ImportMethod::Reflink => "reflink: the file system clones files",
            ImportMethod::Copy => "copy: the file system cannot clone files",
            ImportMethod::AlreadyPresent => "nothing copied",
        };
        println!("promote dev -> test of the example ({PAIRS} runs, median; the 20 MiB copy {RUNS} runs):");
        println!("  (a) the store's copy of the promoted files ({method}):");
        println!(
            "      {} files, {:.1} KiB: ArtifactStore::import {:>7.2} ms   cp --reflink=auto {:>7.2} ms   ratio {:.2}",
            self.files,
            self.bytes as f64 / 1024.0,
            ms(import),
            ms(cp),
            import.as_secs_f64() / cp.as_secs_f64()
        );
        println!(
            "      1 file, {:.1} MiB:  ArtifactStore::import {:>7.2} ms   cp --reflink=auto {:>7.2} ms   ratio {:.2}",
            self.large.bytes as f64 / (1024.0 * 1024.0),
            ms(self.large.import),
            ms(self.large.cp),
            self.large.import.as_secs_f64() / self.large.cp.as_secs_f64()
        );
        println!(
            "      (import = verify in the source + clone or copy + fsync + verify the staged copy + verify under its name; cp = one copy, no fsync, and starting a process)"
        );
        println!("  (b) the whole command, test running the previous digests before each:");
        println!(
            "      sandpit promote dev test                   {:>8.0} ms   (import into test's store + deploy)",
            ms(promote)
        );
        println!(
            "      sandpit rollback test --to <that promotion> {:>7.0} ms   (redeploy of the same digests, already in test's store)",
            ms(redeploy)
        );
        let pairs: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{:.0}/{:.0}", ms(s.promote), ms(s.redeploy)))
            .collect();
        println!("      per run, promote/redeploy ms: {}", pairs.join(" "));
        println!(
            "      promotion's own overhead: {:+.0} ms = {:+.1}% of the redeploy (median of per-run differences)",
            overhead,
            overhead / ms(redeploy) * 100.0
        );
    }
}

//! Test support for `tests/api`: the real `sluice` binary, Azurite, and shared data.
//!
//! It lives in the root package's library (the design card keeps `tests/` at the top),
//! so it ships nothing: the root package exists only to host the black-box suite.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared` beside the repository (data and wire fixtures).
pub fn shared_dir() -> PathBuf {
    let dir = repo_root().join("../shared");
    assert!(
        dir.join("README.md").exists(),
        "tests need ../shared beside the repository"
    );
    dir
}

pub fn adult(file: &str) -> PathBuf {
    shared_dir().join("data/adult").join(file)
}

pub fn fixture(path: &str) -> serde_json::Value {
    let p = shared_dir().join("fixtures").join(path);
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The `sluice` binary, built once per test process with the same cargo and profile.
/// (A root-package test cannot use `CARGO_BIN_EXE_*` for another package's binary.)
pub fn sluice_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/api-… → target/<profile>/sluice
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target layout")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            // Every target of the workspace, as the test build selects them: the same
            // features (dev-dependencies' included), so no dependency is built twice.
            .args(["build", "--quiet", "--workspace", "--all-targets"])
            .env("CARGO_TARGET_DIR", &target_dir)
            .current_dir(repo_root())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the sluice binary failed");
        let bin = profile_dir.join("sluice");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// Runs `sluice` from the repository root on the local store at `root`, with `scratch`
/// as its scratch folder and `args` after those; asserts it succeeded and returns what
/// it printed.
pub fn sluice_run(
    root: &Path,
    scratch: &Path,
    args: impl IntoIterator<Item = impl AsRef<std::ffi::OsStr>>,
) -> String {
    let output = Command::new(sluice_bin())
        .current_dir(repo_root())
        .arg("--root")
        .arg(root)
        .arg("--scratch-dir")
        .arg(scratch)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Runs the `sluice` CLI on the local store at `root` with `args`.
pub fn sluice_cli(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(sluice_bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("running sluice")
}

/// ONNX Runtime for this test process, fetched by `sluice setup`'s code on first use
/// (pip download of the pinned wheel, under a file lock shared by parallel tests).
pub fn onnxruntime() -> &'static sluice_shared::model::Runtime {
    sluice::onnxruntime::load_or_setup(None).expect("ONNX Runtime")
}

/// A child process killed when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Debian's Chromium, installed with apt-get when the machine has none (once per
/// machine; parallel test processes wait on a lock).
pub fn chromium() -> PathBuf {
    let find = || {
        ["chromium", "chromium-browser"].iter().find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
    };
    if let Some(found) = find() {
        return found;
    }
    let lock =
        std::fs::File::create(std::env::temp_dir().join("sluice-chromium-install.lock")).unwrap();
    lock.lock().unwrap();
    if let Some(found) = find() {
        return found;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "chromium"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get must be installed to install Chromium")
            .success()
    };
    // Package lists may be stale on a fresh machine: refresh them once if needed.
    if !install() {
        let updated = Command::new("apt-get")
            .args(["update", "-q"])
            .status()
            .expect("apt-get update");
        assert!(
            updated.success() && install(),
            "apt-get install chromium failed"
        );
    }
    find().expect("chromium on PATH after installing it")
}

/// Azurite's blob service on 127.0.0.1 (a free port), storing in a temp directory.
pub struct Azurite {
    pub endpoint: String,
    _child: ChildGuard,
    _dir: tempfile::TempDir,
}

impl Azurite {
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={};BlobEndpoint={};",
            sluice_shared::storage::azure::AZURITE_KEY,
            self.endpoint
        )
    }
}

/// Installs Azurite from `tests/azurite/package-lock.json` if needed, then starts it.
pub fn start_azurite() -> Azurite {
    let pkg = repo_root().join("tests/azurite");
    let bin = pkg.join("node_modules/.bin/azurite-blob");
    // Test processes run in parallel: one installs, the others wait on the lock.
    let lock =
        std::fs::File::create(std::env::temp_dir().join("sluice-azurite-install.lock")).unwrap();
    lock.lock().unwrap();
    if !bin.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&pkg)
            .status()
            .expect("npm must be installed to run Azurite");
        assert!(status.success(), "npm ci for Azurite failed");
    }
    drop(lock);
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--disableTelemetry",
            "--location",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting Azurite");
    let stdout = child.stdout.take().unwrap();
    let child = ChildGuard(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.split("successfully listens on ").nth(1) {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("Azurite did not start within 60 s");
    // No trailing slash: the SDK would otherwise address `//container`.
    Azurite {
        endpoint: format!("{}/devstoreaccount1", url.trim_end_matches('/')),
        _child: child,
        _dir: dir,
    }
}

/// The `bin/` of a venv holding the Python tools pinned in `tests/python-tools.txt`
/// (checkov, yamllint, actionlint, numpy, onnx, the scikit-learn trainer's packages),
/// installed into `$SLUICE_TOOLS_DIR` (default `~/.cache/sluice-tools`).
pub fn python_tools() -> PathBuf {
    pinned_venv("tests/python-tools.txt", "sluice-tools", "SLUICE_TOOLS_DIR")
}

/// `spark-submit` from the `pyspark` pinned in `tests/spark-tools.txt`, installed into
/// `$SLUICE_SPARK_DIR` (default `~/.cache/sluice-spark`): local Spark on the machine's Java.
pub fn spark_submit() -> PathBuf {
    static JAVA: OnceLock<()> = OnceLock::new();
    JAVA.get_or_init(check_java);
    pinned_venv("tests/spark-tools.txt", "sluice-spark", "SLUICE_SPARK_DIR").join("spark-submit")
}

/// pyspark 4 runs on Java 17 or later, which the machine provides (the suite does not
/// install a JDK): fail with that said plainly rather than with Spark's own error.
fn check_java() {
    let java = std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin/java"))
        .unwrap_or_else(|| "java".into());
    let output = Command::new(&java).arg("-version").output();
    let text = match &output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stderr).into_owned(),
        _ => panic!(
            "the Spark tests need Java 17 or later and {} could not run; install it \
             (Debian: apt-get install openjdk-17-jre-headless) or set JAVA_HOME",
            java.display()
        ),
    };
    // `openjdk version "17.0.15" …` or `java version "21" …`
    let major = text
        .split('"')
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    assert!(
        major.is_some_and(|m| m >= 17),
        "the Spark tests need Java 17 or later; {} says: {}",
        java.display(),
        text.lines().next().unwrap_or_default()
    );
}

/// A venv with the pins of `requirements` (a path under the repo), installed from PyPI
/// the first time into `$<env>` or `~/.cache/<cache>`, one venv per version of the pins,
/// so a machine installs each once. Test processes run in parallel: one installs, the
/// others wait on the lock.
fn pinned_venv(requirements: &str, cache: &str, env: &str) -> PathBuf {
    use sha2::Digest;
    let requirements = repo_root().join(requirements);
    let pins = std::fs::read(&requirements).unwrap();
    let hash = hex::encode(&sha2::Sha256::digest(&pins)[..6]);
    let root = std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME"))
            .join(".cache")
            .join(cache)
    });
    std::fs::create_dir_all(&root).unwrap();
    let venv = root.join(format!("venv-{hash}"));
    let lock = std::fs::File::create(root.join(".install.lock")).unwrap();
    lock.lock().unwrap();
    if !venv.join(".complete").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".into());
        let made = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the Python tools");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "pip install -r {requirements:?} failed"
        );
        std::fs::write(venv.join(".complete"), &pins).unwrap();
    }
    venv.join("bin")
}

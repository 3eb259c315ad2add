//! Where the ONNX Runtime shared library comes from, and `sluice setup`, which fetches it.
//!
//! ort's default build downloads ONNX Runtime from a CDN, which machines without general
//! internet cannot reach. Sluice instead loads the library at run time and looks, in
//! order: an explicit setting (`--onnxruntime` / `SLUICE_ONNXRUNTIME`), `ORT_DYLIB_PATH`,
//! beside the executable (how the deployment package ships it), then the setup folder
//! that `sluice setup` fills from PyPI's `onnxruntime` wheel (a standalone
//! `capi/libonnxruntime.so.1.32.0` that needs only glibc and libstdc++), checked against
//! a pinned SHA-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sluice_shared::model::runtime::{ONNXRUNTIME_VERSION, Runtime};

/// The file name inside the wheel and on disk.
pub const LIBRARY: &str = "libonnxruntime.so.1.32.0";
/// SHA-256 of `onnxruntime/capi/libonnxruntime.so.1.32.0` (identical in every CPython
/// wheel of the release for manylinux x86-64).
const LIBRARY_SHA256: &str = "6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f";

/// The setup folder: `$XDG_CACHE_HOME/sluice` or `~/.cache/sluice`, per release.
pub fn setup_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache
        .join("sluice")
        .join(format!("onnxruntime-{ONNXRUNTIME_VERSION}"))
}

/// Every place looked at, in order.
pub fn candidates(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = explicit {
        out.push(p.to_owned());
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    {
        out.push(dir.join(LIBRARY));
        out.push(dir.join("libonnxruntime.so"));
    }
    out.push(setup_dir().join(LIBRARY));
    out
}

#[derive(Debug, thiserror::Error)]
#[error(
    "ONNX Runtime {ONNXRUNTIME_VERSION} was not found (looked at: {}). Run `sluice setup` to fetch it \
     from PyPI (the onnxruntime=={ONNXRUNTIME_VERSION} wheel's capi/{LIBRARY}), or point \
     SLUICE_ONNXRUNTIME or ORT_DYLIB_PATH at the library",
    .looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
)]
pub struct NotFound {
    pub looked: Vec<PathBuf>,
}

/// The first candidate that exists. An explicit path that does not exist is an error
/// of its own: silently using another library would hide a misconfiguration.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, NotFound> {
    if let Some(p) = explicit
        && !p.exists()
    {
        return Err(NotFound {
            looked: vec![p.to_owned()],
        });
    }
    let looked = candidates(explicit);
    looked
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(NotFound { looked })
}

/// Loads ONNX Runtime from where [`locate`] finds it.
pub fn load(explicit: Option<&Path>) -> anyhow::Result<&'static Runtime> {
    let path = locate(explicit)?;
    Ok(Runtime::load(&path)?)
}

/// Loads ONNX Runtime, running [`setup`] first when it is nowhere to be found (the
/// local host does this so that its one command needs no preparation).
pub fn load_or_setup(explicit: Option<&Path>) -> anyhow::Result<&'static Runtime> {
    match locate(explicit) {
        Ok(path) => Ok(Runtime::load(&path)?),
        Err(_) if explicit.is_none() => {
            let path = setup(&setup_dir())?;
            Ok(Runtime::load(&path)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Fetches the pinned wheel with pip into `dir` and extracts the library (once; later
/// calls return at once). Safe to run from several processes at the same time.
pub fn setup(dir: &Path) -> anyhow::Result<PathBuf> {
    let target = dir.join(LIBRARY);
    if target.is_file() {
        return Ok(target);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = std::fs::File::create(dir.join(".setup.lock"))?;
    lock.lock()?;
    if target.is_file() {
        return Ok(target);
    }
    eprintln!(
        "setting up ONNX Runtime {ONNXRUNTIME_VERSION} in {} (pip download onnxruntime=={ONNXRUNTIME_VERSION}) …",
        dir.display()
    );
    let work = tempfile::tempdir_in(dir)?;
    let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".into());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
        ])
        .arg(format!("onnxruntime=={ONNXRUNTIME_VERSION}"))
        .arg("-d")
        .arg(work.path())
        .status()
        .with_context(|| format!("running {python} -m pip (Python 3 with pip is needed)"))?;
    if !status.success() {
        bail!("pip could not download onnxruntime=={ONNXRUNTIME_VERSION} from PyPI");
    }
    let wheel = std::fs::read_dir(work.path())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip downloaded no wheel")?;
    let staged = work.path().join(LIBRARY);
    // A wheel is a zip; Python's zipfile avoids a zip dependency here.
    let status = Command::new(&python)
        .args([
            "-c",
            "import sys, zipfile; open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))",
        ])
        .arg(&wheel)
        .arg(format!("onnxruntime/capi/{LIBRARY}"))
        .arg(&staged)
        .status()?;
    if !status.success() {
        bail!("could not extract {LIBRARY} from {}", wheel.display());
    }
    let digest = hex::encode(Sha256::digest(std::fs::read(&staged)?));
    if digest != LIBRARY_SHA256 {
        bail!("{LIBRARY} from PyPI has SHA-256 {digest}, expected {LIBRARY_SHA256}; refusing it");
    }
    std::fs::rename(&staged, &target)?;
    eprintln!("ONNX Runtime ready: {}", target.display());
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_does_not_exist_is_named_in_the_error() {
        let err = locate(Some(Path::new("/nowhere/libonnxruntime.so"))).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("/nowhere/libonnxruntime.so"), "{message}");
        assert!(message.contains("sluice setup"), "{message}");
    }

    #[test]
    fn the_setup_folder_is_looked_at_last() {
        let all = candidates(None);
        assert_eq!(all.last(), Some(&setup_dir().join(LIBRARY)));
    }
}

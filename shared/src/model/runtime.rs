//! ONNX Runtime, loaded from a shared library at run time (`ort`'s `load-dynamic`):
//! Sluice never downloads anything at build time. Where the library comes from is the
//! caller's decision (see the `sluice` binary's `onnxruntime` module); this module
//! loads it once per process and builds sessions on it.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;

/// The ONNX Runtime release Sluice is built and tested against.
pub const ONNXRUNTIME_VERSION: &str = "1.32.0";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("loading ONNX Runtime from {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("ONNX Runtime is already loaded from {loaded}, not {requested}")]
    Conflict { loaded: PathBuf, requested: PathBuf },
    #[error("ONNX Runtime could not load the model: {0}")]
    Model(String),
}

/// The process's ONNX Runtime environment (ONNX Runtime allows one per process).
pub struct Runtime {
    environment: Environment,
    path: PathBuf,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static LOADING: Mutex<()> = Mutex::new(());

impl Runtime {
    /// Loads the library at `path` the first time; later calls return the same runtime
    /// (and refuse a different path rather than silently ignoring it).
    pub fn load(path: &Path) -> Result<&'static Runtime, RuntimeError> {
        let _guard = LOADING.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = RUNTIME.get() {
            return if same_file(&rt.path, path) {
                Ok(rt)
            } else {
                Err(RuntimeError::Conflict {
                    loaded: rt.path.clone(),
                    requested: path.to_owned(),
                })
            };
        }
        let fail = |message: String| RuntimeError::Load {
            path: path.to_owned(),
            message,
        };
        let environment = ort::init_from(path)
            .map_err(|e| fail(e.to_string()))?
            .with_name("sluice")
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(RUNTIME.get_or_init(|| Runtime {
            environment,
            path: path.to_owned(),
        }))
    }

    /// The runtime, if some caller loaded it.
    pub fn get() -> Option<&'static Runtime> {
        RUNTIME.get()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A session for an ONNX model held in memory. Sessions use one intra-op thread:
    /// tabular models are small, and requests run in parallel instead. ONNX Runtime's
    /// CPU arena is off: a run's buffers then come from `malloc` (mimalloc in `sluice`),
    /// which makes a small run about 15% faster, and memory a run used goes back.
    pub fn session(&self, onnx: &[u8]) -> Result<Session, RuntimeError> {
        let fail = |e: &dyn std::fmt::Display| RuntimeError::Model(e.to_string());
        Session::builder(&self.environment)
            .map_err(|e| fail(&e))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| fail(&e))?
            .with_intra_threads(1)
            .map_err(|e| fail(&e))?
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(|e| fail(&e))?
            .commit_from_memory(onnx)
            .map_err(|e| fail(&e))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

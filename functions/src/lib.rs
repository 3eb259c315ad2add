//! Sluice's Azure Functions custom handler, its local host (`sluice dev`) and CLI.
//!
//! `functions/` is thin on purpose: two front doors to the domain in `sluice-shared`.
//! [`host`] is the custom handler: it decodes the host's invocations, calls the domain
//! and encodes the result. [`cli`] is the command line: it parses a command, calls the
//! same domain functions and renders the answer; its dev host plays the Functions host
//! locally. `settings`, `onnxruntime`, `telemetry` and `otlp` serve both.

pub mod cli;
pub mod host;
pub mod onnxruntime;
pub mod otlp;
pub mod settings;
pub mod telemetry;

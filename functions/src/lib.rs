//! Sluice's Azure Functions custom handler, its local host (`sluice dev`) and CLI.
//!
//! `functions/` is thin on purpose: it decodes the host's invocations, calls the domain
//! in `sluice-shared`, and encodes the result. `main.rs` only parses the command line.

pub mod auth;
pub mod bench;
pub mod cli;
pub mod devhost;
pub mod error;
pub mod handlers;
pub mod health;
pub mod invocation;
pub mod models;
pub mod onnxruntime;
pub mod ops;
pub mod otlp;
pub mod package;
pub mod retrain;
pub mod score;
pub mod settings;
pub mod shards;
pub mod startup;
pub mod state;
pub mod telemetry;

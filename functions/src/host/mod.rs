//! The custom handler the Functions host invokes: the functions it serves and their
//! router (`startup`), what they share (`state`), one file per group of functions
//! (`ingest`, `retrain`, `models`, `monitoring`, `score`, `health`), and the host's wire format
//! (`invocation`, and `trigger`: what every trigger function does first), errors, keys
//! and the scoring shards.

pub mod auth;
pub mod console;
pub mod error;
pub mod health;
pub mod ingest;
pub mod invocation;
pub mod models;
pub mod monitoring;
pub mod notify;
pub mod retrain;
pub mod score;
pub mod shards;
pub mod startup;
pub mod state;
pub mod trigger;

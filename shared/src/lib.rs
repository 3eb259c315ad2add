//! Sluice's domain: datasets, contracts, validation, profiling and versioning, plus the
//! storage and messaging contracts their adapters implement. No HTTP framework and no
//! Functions-host types live here; `functions/` decodes invocations and calls in.

pub mod audit;
pub mod catalog;
pub mod cloud;
pub mod dataset;
pub mod model;
pub mod monitoring;
pub mod name;
pub mod notify;
pub mod registry;
pub mod runs;
pub mod scoring;
pub mod storage;
pub mod training;

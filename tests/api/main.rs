//! The black-box suite: drives Sluice over HTTP with the Functions host's payloads.
//! Tests named `contract_*` check against a cloud service's documented wire contract
//! (Functions host, Event Grid) where the service itself cannot run here.

mod adult;
mod azureml;
mod azurite;
mod bad_input;
mod binary;
mod browser;
mod cloud;
mod concurrency;
mod console;
mod deploy;
mod feedback;
mod helpers;
mod host_contract;
mod mlops_loop;
mod monitoring;
mod notifications;
mod score;
mod spark;
mod tasks;
mod training;

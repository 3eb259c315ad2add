//! `sluice dev`: a local stand-in for the Functions host, Event Grid and Service Bus.
//!
//! It watches `landing/` in the configured store, turns each new blob (key + ETag) into
//! the exact invocation the Functions host sends for an Event Grid `BlobCreated` event,
//! and sends it through the same router `sluice serve` uses (in-process, no port).
//! Deliveries go through the embedded durable queue: a 5xx answer is retried with
//! backoff and dead-lettered after too many attempts, a 4xx answer is dead-lettered at
//! once with its reason, and `datasetEvents` outputs are published to a second queue.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::{DatasetEvent, ingest, layout};
use sluice_shared::queue::{Delivery, EmbeddedQueue};
use sluice_shared::storage::{ObjectMeta, ObjectStore};
use tower::ServiceExt;

use crate::handlers::DATASET_EVENTS_BINDING;
use crate::startup::{AppState, router};

/// How often a message is delivered before it is dead-lettered (Service Bus' default).
const MAX_DELIVERIES: u32 = 10;

pub struct DevOptions {
    /// Contracts (`*.json`) to store for datasets that have none yet.
    pub contracts_dir: Option<PathBuf>,
    /// Files to push into `landing/<dataset>/` at start (`<dataset>=<path>`).
    pub push: Vec<(String, PathBuf)>,
    /// Stop once there is nothing left to do (for scripts and tests).
    pub exit_when_idle: bool,
    pub poll: Duration,
}

pub struct DevHost {
    store: Arc<dyn ObjectStore>,
    router: Router,
    blob_events: EmbeddedQueue,
    dataset_events: EmbeddedQueue,
}

impl DevHost {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        scratch: PathBuf,
        queue_dir: &Path,
    ) -> anyhow::Result<Self> {
        let open = |name: &str| {
            EmbeddedQueue::open(queue_dir.join(name), MAX_DELIVERIES)
                .with_context(|| format!("opening queue {name}"))
        };
        Ok(Self {
            router: router(AppState::new(store.clone(), scratch)),
            store,
            blob_events: open("blob-created")?,
            dataset_events: open("dataset-events")?,
        })
    }

    pub async fn run(&self, options: DevOptions) -> anyhow::Result<()> {
        let recovered = self.blob_events.recover()? + self.dataset_events.recover()?;
        if recovered > 0 {
            println!("↻ redelivering {recovered} message(s) left in flight by the last run");
        }
        if let Some(dir) = &options.contracts_dir {
            self.seed_contracts(dir).await?;
        }
        for (dataset, path) in &options.push {
            let key = crate::cli::push_file(self.store.as_ref(), dataset, path).await?;
            println!("↑ pushed {} to {key}", path.display());
        }
        let landing =
            sluice_shared::storage::ObjectKey::parse(layout::LANDING.trim_end_matches('/'))?;
        println!(
            "watching {}/ for uploads (Ctrl-C to stop)",
            self.store.uri(&landing)
        );
        loop {
            let found = self.watch_landing().await?;
            let mut worked = found > 0;
            while let Some(delivery) = self.blob_events.receive()? {
                worked = true;
                self.dispatch(delivery).await?;
            }
            while let Some(delivery) = self.dataset_events.receive()? {
                worked = true;
                println!("  event {}", delivery.message.body);
                self.dataset_events.complete(delivery)?;
            }
            if options.exit_when_idle && !worked && self.blob_events.messages("ready")?.is_empty() {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(options.poll) => {}
                _ = tokio::signal::ctrl_c() => return Ok(()),
            }
        }
    }

    async fn seed_contracts(&self, dir: &Path) -> anyhow::Result<()> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let contract = Contract::from_json(&std::fs::read(&path)?)
                .with_context(|| format!("contract {}", path.display()))?;
            if ingest::current_contract(self.store.as_ref(), &contract.dataset)
                .await?
                .is_none()
            {
                let stored = ingest::store_contract(self.store.as_ref(), contract).await?;
                println!(
                    "✎ stored contract {} v{} from {}",
                    stored.dataset,
                    stored.version,
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Enqueues a BlobCreated delivery for each landing blob not seen before.
    async fn watch_landing(&self) -> anyhow::Result<usize> {
        let mut found = 0;
        for meta in self.store.list(layout::LANDING).await? {
            let id = format!("{}#{}", meta.key, meta.etag);
            if self
                .blob_events
                .enqueue(&id, self.blob_created_invocation(&meta))?
            {
                println!("→ {}: new upload ({} bytes)", meta.key, meta.size);
                found += 1;
            }
        }
        Ok(found)
    }

    /// What the Functions host POSTs for an Event Grid trigger (see shared/fixtures).
    fn blob_created_invocation(&self, meta: &ObjectMeta) -> Value {
        let id = uuid::Uuid::new_v4().to_string();
        let now = chrono::Utc::now().to_rfc3339();
        let data = json!({
            "api": "PutBlob",
            "eTag": meta.etag.0,
            "contentType": "application/octet-stream",
            "contentLength": meta.size,
            "blobType": "BlockBlob",
            "url": self.store.uri(&meta.key),
            "sequencer": format!("{:032x}", meta.last_modified.timestamp_nanos_opt().unwrap_or_default()),
        });
        let event = json!({
            "topic": "/sluice/dev",
            "subject": format!("/blobServices/default/containers/sluice/blobs/{}", meta.key),
            "eventType": "Microsoft.Storage.BlobCreated",
            "eventTime": now,
            "id": id,
            "data": data,
            "dataVersion": "",
            "metadataVersion": "1",
        });
        json!({
            "Data": {"event": event},
            "Metadata": {"data": data, "sys": {"MethodName": "DatasetIngest", "UtcNow": now, "RandGuid": id}},
        })
    }

    async fn dispatch(&self, delivery: Delivery) -> anyhow::Result<()> {
        let request = Request::post("/DatasetIngest")
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&delivery.message.body)?))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            if let Some(event) = answer.pointer(&format!("/Outputs/{DATASET_EVENTS_BINDING}")) {
                // The event's own id makes redelivered events collapse into one message.
                let id = serde_json::from_value::<DatasetEvent>(event.clone())
                    .map_or_else(|_| event.to_string(), |e| e.id());
                self.dataset_events.enqueue(&id, event.clone())?;
            }
            print_outcome(&answer["ReturnValue"]);
            self.blob_events.complete(delivery)?;
        } else if status.is_client_error() {
            println!(
                "✗ invocation refused ({status}): {answer}; set aside in the dead-letter area"
            );
            self.blob_events
                .dead_letter(delivery, &format!("{status}: {answer}"))?;
        } else {
            println!(
                "… transient failure ({status}); will retry (delivery {})",
                delivery.message.delivery_count
            );
            self.blob_events
                .abandon(delivery, &format!("{status}: {answer}"))?;
        }
        Ok(())
    }
}

fn print_outcome(r: &Value) {
    let dup = if r["duplicate"].as_bool() == Some(true) {
        " (already done: same content)"
    } else {
        ""
    };
    match r["status"].as_str() {
        Some("versioned") => println!(
            "✓ {} v{}: {} rows, sha256 {}…{dup}",
            r["dataset"].as_str().unwrap_or("?"),
            r["version"],
            r["rows"],
            &r["content_sha256"].as_str().unwrap_or("")
                [..12.min(r["content_sha256"].as_str().unwrap_or("").len())]
        ),
        Some("quarantined") => {
            println!(
                "✗ {} quarantined → {}{dup}",
                r["dataset"].as_str().unwrap_or("?"),
                r["report_key"].as_str().unwrap_or("?")
            );
            for v in r["violations"].as_array().into_iter().flatten() {
                println!(
                    "    {} {}: {} ({} rows)",
                    v["column"].as_str().unwrap_or("(file)"),
                    v["rule"].as_str().unwrap_or("?"),
                    v["message"].as_str().unwrap_or(""),
                    v["count"]
                );
            }
        }
        _ => println!("· ignored: {}", r["reason"].as_str().unwrap_or("")),
    }
}

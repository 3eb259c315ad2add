//! `sluice dev`: a local stand-in for the Functions host, Event Grid and Service Bus.
//!
//! It watches `landing/` in the configured store, turns each new blob (key + ETag) into
//! the exact invocation the Functions host sends for an Event Grid `BlobCreated` event,
//! and sends it through the same router `sluice serve` uses (in-process, no port).
//! Deliveries go through the embedded durable queue: a 5xx answer is retried with
//! backoff and dead-lettered after too many attempts, a 4xx answer is dead-lettered at
//! once with its reason. `Notify` is ticked after each step: the lifecycle events it
//! outputs are published to a second queue, delivered to `DatasetEvents` as Service Bus
//! would, and it delivers to the registered webhooks itself. A third queue stands in for
//! the `retrain-requests` Service Bus queue (`RetrainQueue`), and a timer ticks
//! `RunsTimer` while runs are unfinished, so training, registration, the gate and
//! promotion happen here exactly as in Azure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};
use sluice_shared::dataset::contract::Contract;
use sluice_shared::dataset::{Contracts, DatasetName, layout};
use sluice_shared::storage::{ObjectKey, ObjectMeta, ObjectStore, Payload, PutMode};
use sluice_shared::training::TrainingConfig;
use sluice_shared::training::configs::ConfigStoreError;
use tower::ServiceExt;

use crate::cli::queue::{Delivery, EmbeddedQueue};
use crate::host::notify::EVENTS_BINDING;
use crate::host::startup::router;
use crate::host::state::AppState;

/// How often the dev host runs the monitor.
const MONITOR_EVERY: Duration = Duration::from_secs(60);

/// How often a message is delivered before it is dead-lettered (Service Bus' default).
const MAX_DELIVERIES: u32 = 10;

pub struct DevOptions {
    /// Contracts (`*.json`) to store for datasets that have none yet.
    pub contracts_dir: Option<PathBuf>,
    /// Training configs (`*.json`) to store for their models.
    pub configs_dir: Option<PathBuf>,
    /// Files to push into `landing/<dataset>/` at start (`<dataset>=<path>`).
    pub push: Vec<(String, PathBuf)>,
    /// Stop once there is nothing left to do (for scripts and tests).
    pub exit_when_idle: bool,
    pub poll: Duration,
}

pub struct DevHost {
    store: Arc<dyn ObjectStore>,
    state: AppState,
    router: Router,
    blob_events: EmbeddedQueue,
    /// The embedded `sluice-events` topic (its `retrain` subscription: `DatasetEvents`).
    sluice_events: EmbeddedQueue,
    retrain_requests: EmbeddedQueue,
    /// Finished runs already printed (each is reported once per `sluice dev`).
    reported: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Where the embedded stand-in for the `retrain-requests` Service Bus queue lives.
pub fn retrain_queue(queue_dir: &Path) -> anyhow::Result<EmbeddedQueue> {
    EmbeddedQueue::open(queue_dir.join("retrain-requests"), MAX_DELIVERIES)
        .context("opening queue retrain-requests")
}

impl DevHost {
    pub fn new(state: AppState, queue_dir: &Path) -> anyhow::Result<Self> {
        let open = |name: &str| {
            EmbeddedQueue::open(queue_dir.join(name), MAX_DELIVERIES)
                .with_context(|| format!("opening queue {name}"))
        };
        Ok(Self {
            store: state.store.clone(),
            router: router(state.clone()),
            state,
            blob_events: open("blob-created")?,
            sluice_events: open("sluice-events")?,
            retrain_requests: retrain_queue(queue_dir)?,
            reported: Default::default(),
        })
    }

    pub async fn run(&self, options: DevOptions) -> anyhow::Result<()> {
        // Events are told from here on (a store's history is not replayed).
        self.state.notifier.start().await?;
        let recovered = self.blob_events.recover()?
            + self.sluice_events.recover()?
            + self.retrain_requests.recover()?;
        if recovered > 0 {
            println!("↻ redelivering {recovered} message(s) left in flight by the last run");
        }
        if let Some(dir) = &options.contracts_dir {
            self.seed_contracts(dir).await?;
        }
        if let Some(dir) = &options.configs_dir {
            self.seed_configs(dir).await?;
        }
        for (dataset, path) in &options.push {
            let key = push_file(self.store.as_ref(), dataset, path).await?;
            println!("↑ pushed {} to {key}", path.display());
        }
        let landing =
            sluice_shared::storage::ObjectKey::parse(layout::LANDING.trim_end_matches('/'))?;
        // Listening before saying so, so no signal is missed; SIGTERM stops the host as
        // Ctrl-C does, not just its HTTP server.
        let stop = crate::host::startup::shutdown_signal();
        tokio::pin!(stop);
        println!(
            "watching {}/ for uploads (Ctrl-C to stop)",
            self.store.uri(&landing)
        );
        let mut monitored: Option<std::time::Instant> = None;
        loop {
            if monitored.is_none_or(|at| at.elapsed() >= MONITOR_EVERY) {
                self.monitor().await?;
                monitored = Some(std::time::Instant::now());
            }
            let found = self.watch_landing().await?;
            let mut worked = found > 0;
            while let Some(delivery) = self.blob_events.receive()? {
                worked = true;
                self.dispatch(delivery).await?;
            }
            while let Some(delivery) = self.retrain_requests.receive()? {
                worked = true;
                self.deliver(&self.retrain_requests, "RetrainQueue", delivery)
                    .await?;
            }
            let running = self.tick().await?;
            // Last, so what every step above recorded is told before dev may stop.
            worked |= self.notify().await? > 0;
            while let Some(delivery) = self.sluice_events.receive()? {
                worked = true;
                self.deliver(&self.sluice_events, "DatasetEvents", delivery)
                    .await?;
            }
            let waiting = !self.blob_events.messages("ready")?.is_empty()
                || !self.sluice_events.messages("ready")?.is_empty()
                || !self.retrain_requests.messages("ready")?.is_empty();
            if options.exit_when_idle && !worked && !running && !waiting {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(options.poll) => {}
                () = &mut stop => return Ok(()),
            }
        }
    }

    async fn seed_contracts(&self, dir: &Path) -> anyhow::Result<()> {
        for path in json_files(dir)? {
            let contract = Contract::from_json(&std::fs::read(&path)?)
                .with_context(|| format!("contract {}", path.display()))?;
            let contracts = Contracts::new(self.store.clone());
            if contracts.current(&contract.dataset).await?.is_none() {
                let stored = contracts.put(contract, "sluice:dev").await?;
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

    /// Stores each training config in `dir`. A file that is not a valid config is
    /// reported and skipped: the other models still train.
    async fn seed_configs(&self, dir: &Path) -> anyhow::Result<()> {
        for path in json_files(dir)? {
            let stored = match TrainingConfig::from_json(&std::fs::read(&path)?) {
                Ok(config) => {
                    let configs = self.state.runs.configs();
                    configs.put(&config, "sluice:dev", "sluice-dev-start").await
                }
                Err(e) => Err(ConfigStoreError::Invalid(e.to_string())),
            };
            match stored {
                Ok(stored) => println!(
                    "✎ training config for {} v{} ({}) from {}",
                    stored.config.model,
                    stored.version,
                    stored
                        .config
                        .task()
                        .map_or("task decided by its data", |t| t.as_str()),
                    path.display()
                ),
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => println!("✗ {} skipped: {e}", path.display()),
            }
        }
        Ok(())
    }

    /// Ticks `MonitorTimer` (as Azure's timer does every five minutes): prints each
    /// window it judged, the feedback it matched, and each notification it publishes.
    async fn monitor(&self) -> anyhow::Result<()> {
        let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "MonitorTimer"}}});
        let (status, answer) = self.invoke("MonitorTimer", &timer).await?;
        if !status.is_success() {
            println!("… MonitorTimer: {status} {answer}");
            return Ok(());
        }
        for window in answer["ReturnValue"]["windows"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let r = &window["report"];
            println!(
                "◉ {} v{} window {}: {} ({} rows)",
                r["model"], r["model_version"], r["window"], r["verdict"], r["rows"]
            );
        }
        for checked in answer["ReturnValue"]["ground_truth"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for batch in checked["feedback"].as_array().into_iter().flatten() {
                println!(
                    "◉ {} feedback {}: {} matched, {} pending, {} unknown, {} already labelled",
                    checked["model"],
                    batch["batch"],
                    batch["matched"],
                    batch["pending"],
                    batch["unknown"],
                    batch["already_labelled"]
                );
            }
        }
        Ok(())
    }

    /// Ticks `Notify` (as Azure's timer does every minute): publishes the lifecycle
    /// events it outputs on the embedded topic and prints them, with the webhook
    /// deliveries it made. Returns how many events it published.
    async fn notify(&self) -> anyhow::Result<usize> {
        let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "Notify"}}});
        let (status, answer) = self.invoke("Notify", &timer).await?;
        if !status.is_success() {
            println!("… Notify: {status} {answer}");
            return Ok(0);
        }
        let events = answer.pointer(&format!("/Outputs/{EVENTS_BINDING}"));
        let events = events
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for event in &events {
            println!(
                "  event {} {}",
                event["type"].as_str().unwrap_or("?"),
                event["subject"].as_str().unwrap_or("")
            );
            // The event's id makes a redelivered event collapse into one message.
            let id = event["id"]
                .as_str()
                .map_or_else(|| event.to_string(), str::to_owned);
            self.sluice_events.enqueue(&id, event.clone())?;
        }
        for hook in answer["ReturnValue"]["webhooks"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = hook["webhook"].as_str().unwrap_or("?");
            for d in hook["deliveries"].as_array().into_iter().flatten() {
                println!(
                    "  ↗ webhook {name}: {} {} ({})",
                    d["type"].as_str().unwrap_or("?"),
                    d["outcome"].as_str().unwrap_or("?"),
                    d["status"]
                );
            }
            if let Some(at) = hook["retry_at"].as_str() {
                println!(
                    "  … webhook {name}: {}; next attempt at {at}",
                    hook["last_error"].as_str().unwrap_or("failed")
                );
            }
        }
        Ok(events.len())
    }

    /// Ticks `RunsTimer` while runs or delegated scans are unfinished; prints what
    /// changed. True while some run or scan is still going.
    async fn tick(&self) -> anyhow::Result<bool> {
        let runs = self.state.runs.list().await?;
        let seen = self.reported.lock().expect("reported runs").clone();
        // Finished runs are ticked once more (the gate runs in that tick, once).
        if runs
            .iter()
            .all(|r| r.status.is_final() && seen.contains(&r.id))
            && !self.state.ingestor.has_unfinished_delegations().await?
        {
            return Ok(false);
        }
        let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "RunsTimer"}}});
        let (status, answer) = self.invoke("RunsTimer", &timer).await?;
        if !status.is_success() {
            println!("… RunsTimer: {status} {answer}");
            return Ok(true);
        }
        let mut running = false;
        for delegation in answer["ReturnValue"]["delegations"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (upload, state) = (&delegation["upload"], &delegation["state"]);
            match state["state"].as_str() {
                Some("claimed" | "submitted") => running = true,
                Some(done) => println!("■ delegated scan of {upload}: {done} {state}"),
                None => {}
            }
        }
        for entry in answer["ReturnValue"]["runs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let id = entry["run_id"].as_str().unwrap_or("?");
            match entry["status"].as_str() {
                Some("running" | "queued") => running = true,
                _ => {
                    if self
                        .reported
                        .lock()
                        .expect("reported runs")
                        .insert(id.to_owned())
                    {
                        print_run(entry);
                    }
                }
            }
        }
        Ok(running)
    }

    async fn invoke(
        &self,
        function: &str,
        body: &Value,
    ) -> anyhow::Result<(axum::http::StatusCode, Value)> {
        let request = Request::post(format!("/{function}"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(body)?))?;
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// Delivers a queued message to a Service Bus-triggered function the way the host
    /// does (`Data.message`, `Metadata.MessageId`, `DeliveryCount`), settling it by the
    /// answer: 2xx completes, 4xx dead-letters at once, 5xx is retried with backoff.
    async fn deliver(
        &self,
        queue: &EmbeddedQueue,
        function: &str,
        delivery: Delivery,
    ) -> anyhow::Result<()> {
        let body = json!({
            "Data": {"message": delivery.message.body},
            "Metadata": {
                "MessageId": serde_json::to_string(&delivery.message.id)?,
                "DeliveryCount": delivery.message.delivery_count.to_string(),
                "sys": {"MethodName": function},
            },
        });
        let (status, answer) = self.invoke(function, &body).await?;
        if status.is_success() {
            let ret = &answer["ReturnValue"];
            if ret["status"] == "rejected" {
                println!(
                    "✗ {function}: request set aside: {}",
                    ret["reason"].as_str().unwrap_or("")
                );
            }
            for run in ret["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(Some(ret).filter(|r| r.get("run_id").is_some()))
            {
                let dup = if run["duplicate"] == true {
                    " (already requested)"
                } else {
                    ""
                };
                println!(
                    "▶ run {} for {}{dup}",
                    run["run_id"].as_str().unwrap_or("?"),
                    run["run"]["model"].as_str().unwrap_or("?")
                );
            }
            queue.complete(delivery)?;
        } else if status.is_client_error() {
            println!(
                "✗ {function} refused ({status}): {answer}; set aside in the dead-letter area"
            );
            queue.dead_letter(delivery, &format!("{status}: {answer}"))?;
        } else {
            println!("… {function}: transient failure ({status}); will retry");
            queue.abandon(delivery, &format!("{status}: {answer}"))?;
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
        let (status, answer) = self.invoke("DatasetIngest", &delivery.message.body).await?;
        if status.is_success() {
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

/// The `*.json` files of a folder, in name order (none if it does not exist).
fn json_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn print_run(entry: &Value) {
    let id = entry["run_id"].as_str().unwrap_or("?");
    let status = entry["status"].as_str().unwrap_or("?");
    let Some(version) = entry.get("model_version") else {
        println!("■ run {id}: {status}");
        return;
    };
    println!("■ run {id}: {status}, registered model version {version}");
    let gate = &entry["gate"];
    if gate["passed"] == true {
        let releases: Vec<&str> = gate["releases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!("  ✓ gate passed; released as {}", releases.join(", "));
        if gate["awaiting_approval"] == true {
            println!("  ⏸ waiting in staging for `sluice approve`");
        }
    } else if gate["passed"] == false {
        for reason in gate["reasons"].as_array().into_iter().flatten() {
            println!("  ✗ gate: {}", reason.as_str().unwrap_or(""));
        }
    } else {
        println!("  … gate: {gate}");
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
        Some("delegated") => println!(
            "⇢ {}: {} bytes handed to {} (job {}){dup}",
            r["dataset"].as_str().unwrap_or("?"),
            r["bytes"],
            r["engine"].as_str().unwrap_or("?"),
            r["job"].as_str().unwrap_or("?")
        ),
        Some("accepted") => println!(
            "✓ feedback for {}: {} label(s), batch {}{dup}",
            r["model"].as_str().unwrap_or("?"),
            r["labels"],
            r["batch"].as_str().unwrap_or("?")
        ),
        // A feedback file's quarantine names its model; a dataset's, its dataset.
        Some("quarantined") if r["report"]["model"].is_string() => {
            println!(
                "✗ feedback file {} quarantined → {}{dup}",
                r["report"]["upload"].as_str().unwrap_or("?"),
                r["key"].as_str().unwrap_or("?")
            );
            for p in r["report"]["problems"].as_array().into_iter().flatten() {
                println!(
                    "    line {} {}: {}",
                    p["line"],
                    p["field"].as_str().unwrap_or("?"),
                    p["message"].as_str().unwrap_or("")
                );
            }
        }
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

/// Copies a local file to `landing/<dataset>/<file name>`, streaming it.
pub async fn push_file(
    store: &dyn ObjectStore,
    dataset: &str,
    file: &Path,
) -> anyhow::Result<ObjectKey> {
    let dataset = DatasetName::parse(dataset)?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .context("the file needs a UTF-8 name")?;
    let key = layout::landing(&dataset, name)?;
    store
        .put(
            &key,
            Payload::stream_file(file)
                .await
                .with_context(|| format!("reading {}", file.display()))?,
            PutMode::Overwrite,
        )
        .await?;
    Ok(key)
}

//! Adaptive batching: one model version served by a few threads, each with its own ONNX
//! Runtime session, taking requests from one queue. A thread that finds several
//! requests waiting scores them in one run.
//!
//! Why: for a tabular model most of an ONNX Runtime run is fixed cost per run: binding
//! the inputs and walking the graph. Scoring one row takes about as long as scoring
//! eight. Under load, requests queue while the threads are busy. So the threads pick up
//! everything waiting, and the cost per request falls as the load rises. At low load
//! nothing waits: a request that finds a thread idle runs at once, alone. Rows are
//! scored independently, so a request's answer does not depend on its neighbours in
//! the batch (beyond float rounding).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::model::{InferenceError, ModelSession, Predictions, Runtime, Signature, Table};

/// A batch stops growing once it holds this many rows (one request is never split).
pub const MAX_BATCH_ROWS: usize = 64;

type Answer = (Table, Result<Predictions, InferenceError>);

struct Job {
    table: Table,
    reply: oneshot::Sender<Answer>,
}

/// One model version, loaded and served. Dropping it lets its threads finish the
/// requests already queued, then exit; requests in flight hold an `Arc` to it.
pub struct Batcher {
    signature: Signature,
    jobs: mpsc::Sender<Job>,
    runs: Arc<AtomicU64>,
}

impl Batcher {
    /// Loads `threads` sessions of the model (failing if any does not load) and starts a
    /// thread for each; `name` names the threads.
    pub fn start(
        runtime: &Runtime,
        onnx: &[u8],
        signature: Signature,
        threads: usize,
        name: &str,
    ) -> Result<Self, InferenceError> {
        let sessions = (0..threads.max(1))
            .map(|_| ModelSession::new(runtime, onnx, signature.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let (jobs, queue) = mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        let runs = Arc::new(AtomicU64::new(0));
        for (i, session) in sessions.into_iter().enumerate() {
            let (queue, runs) = (queue.clone(), runs.clone());
            std::thread::Builder::new()
                .name(format!("score-{name}-{i}"))
                .spawn(move || serve(&session, &queue, &runs))
                .map_err(|e| InferenceError::Run(format!("starting a scoring thread: {e}")))?;
        }
        Ok(Self {
            signature,
            jobs,
            runs,
        })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// ONNX Runtime runs so far (fewer than requests when requests were batched).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Scores `table`, possibly in one run with other requests; hands the table back
    /// (the prediction log keeps it).
    pub async fn predict(&self, table: Table) -> Answer {
        let (reply, answer) = oneshot::channel();
        let job = Job { table, reply };
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            return (job.table, Err(stopped()));
        }
        // The threads answer every job they take, even when the run fails.
        answer
            .await
            .unwrap_or_else(|_| (Table::default(), Err(stopped())))
    }
}

fn stopped() -> InferenceError {
    InferenceError::Run("the scoring threads stopped".into())
}

/// A scoring thread: take the next request, and whatever else is waiting, run them
/// together and answer each. Ends when the [`Batcher`] is gone and the queue is empty.
fn serve(session: &ModelSession, queue: &Mutex<mpsc::Receiver<Job>>, runs: &AtomicU64) {
    loop {
        let batch = {
            let queue = queue.lock().unwrap_or_else(|e| e.into_inner());
            let Ok(first) = queue.recv() else { return };
            let mut rows = first.table.rows();
            let mut batch = vec![first];
            while rows < MAX_BATCH_ROWS {
                let Ok(next) = queue.try_recv() else { break };
                rows += next.table.rows();
                batch.push(next);
            }
            batch
        };
        runs.fetch_add(1, Ordering::Relaxed);
        if batch.len() > 1 {
            let tables: Vec<&Table> = batch.iter().map(|j| &j.table).collect();
            if let Ok(all) = session.predict(&Table::concat(&tables)) {
                let parts = all.split(batch.iter().map(|j| j.table.rows()));
                for (job, part) in batch.into_iter().zip(parts) {
                    let _ = job.reply.send((job.table, Ok(part)));
                }
                continue;
            }
            // A failed batch is run again request by request, so a request never fails
            // because of its neighbours.
        }
        for job in batch {
            let predicted = session.predict(&job.table);
            let _ = job.reply.send((job.table, predicted));
        }
    }
}

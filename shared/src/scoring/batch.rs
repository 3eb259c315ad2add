//! Adaptive batching: one model version, a few ONNX Runtime sessions of it, and one
//! queue of requests. Whoever runs a session scores everything waiting in one run.
//!
//! Why batch: for a tabular model most of an ONNX Runtime run is fixed cost per run:
//! binding the inputs and walking the graph. Scoring one row takes about as long as
//! scoring eight. Under load, requests queue while a session is busy, so the cost per
//! request falls as the load rises. At low load nothing waits. Rows are scored
//! independently, so a request's answer does not depend on its neighbours in the batch
//! (beyond float rounding).
//!
//! Why on the request's own thread: a small run (≤ [`MAX_BATCH_ROWS`] rows) takes tens
//! of microseconds, about what handing the request to a scoring thread and waking the
//! request back up costs on a loaded machine. So a request queues itself and yields
//! once, which lets the other requests its thread has ready queue theirs; then it takes
//! a free session and scores the whole queue in place. Larger requests run alone on the
//! blocking pool, so they never hold up a runtime thread for long.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{Notify, oneshot};

use crate::model::{InferenceError, ModelSession, Predictions, Runtime, Signature, Table};

/// A batch stops growing once it holds this many rows; larger requests run alone.
pub const MAX_BATCH_ROWS: usize = 64;

type Answer = (Table, Result<Predictions, InferenceError>);

struct Job {
    table: Table,
    reply: oneshot::Sender<Answer>,
}

/// The sessions not running right now, and a signal when one comes back.
struct Pool {
    idle: Mutex<Vec<ModelSession>>,
    returned: Notify,
}

impl Pool {
    fn take(&self) -> Option<ModelSession> {
        lock(&self.idle).pop()
    }

    fn give_back(&self, session: ModelSession) {
        lock(&self.idle).push(session);
        // Everyone waiting looks again: one may find its answer ready, another the session.
        self.returned.notify_waiters();
    }

    /// Waits for an idle session.
    async fn wait(&self) -> ModelSession {
        loop {
            // Listen before looking, so a session given back in between is not missed.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(session) = self.take() {
                return session;
            }
            returned.await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One model version, loaded and served. Requests in flight hold an `Arc` to it, so a
/// version replaced in the scorer's cache is dropped only after them.
pub struct Batcher {
    signature: Signature,
    /// The signature's class names, shared by every answer.
    classes: Vec<Arc<str>>,
    pool: Arc<Pool>,
    queue: Mutex<VecDeque<Job>>,
    runs: Arc<AtomicU64>,
}

impl Batcher {
    /// Loads `sessions` sessions of the model, failing if any does not load.
    pub fn new(
        runtime: &Runtime,
        onnx: &[u8],
        signature: Signature,
        sessions: usize,
    ) -> Result<Self, InferenceError> {
        let idle = (0..sessions.max(1))
            .map(|_| ModelSession::new(runtime, onnx, signature.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            classes: signature
                .classes
                .iter()
                .map(|c| c.as_str().into())
                .collect(),
            signature,
            pool: Arc::new(Pool {
                idle: Mutex::new(idle),
                returned: Notify::new(),
            }),
            queue: Mutex::default(),
            runs: Arc::default(),
        })
    }

    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    pub fn classes(&self) -> &[Arc<str>] {
        &self.classes
    }

    /// ONNX Runtime runs so far (fewer than requests when requests were batched).
    pub fn runs(&self) -> u64 {
        self.runs.load(Ordering::Relaxed)
    }

    /// Scores `table`, possibly in one run with other requests; hands the table back
    /// (the prediction log keeps it).
    pub async fn predict(&self, table: Table) -> Answer {
        if table.rows() > MAX_BATCH_ROWS {
            return self.predict_alone(table).await;
        }
        let (reply, mut answer) = oneshot::channel();
        lock(&self.queue).push_back(Job { table, reply });
        tokio::task::yield_now().await;
        loop {
            match answer.try_recv() {
                Ok(done) => return done,
                Err(oneshot::error::TryRecvError::Closed) => return unanswered(),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let session = match self.pool.take() {
                Some(session) => session,
                None => tokio::select! {
                    done = &mut answer => return done.unwrap_or_else(|_| unanswered()),
                    session = self.pool.wait() => session,
                },
            };
            let batch = self.next_batch();
            let empty = batch.is_empty();
            if !empty {
                self.run(&session, batch);
            }
            self.pool.give_back(session);
            if empty {
                // Another thread took this request into the run it is doing now.
                return answer.await.unwrap_or_else(|_| unanswered());
            }
        }
    }

    /// A large request: one run of its own on the blocking pool. The session goes back
    /// from there, so it is not lost if the request is dropped while it runs.
    async fn predict_alone(&self, table: Table) -> Answer {
        let session = self.pool.wait().await;
        let (pool, runs) = (self.pool.clone(), self.runs.clone());
        tokio::task::spawn_blocking(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            let predicted = guarded(|| session.predict(&table));
            pool.give_back(session);
            (table, predicted)
        })
        .await
        .unwrap_or_else(|_| unanswered())
    }

    /// The requests waiting, oldest first, up to about [`MAX_BATCH_ROWS`] rows.
    fn next_batch(&self) -> Vec<Job> {
        let mut queue = lock(&self.queue);
        let mut batch = Vec::new();
        let mut rows = 0;
        while rows < MAX_BATCH_ROWS {
            let Some(job) = queue.pop_front() else { break };
            rows += job.table.rows();
            batch.push(job);
        }
        batch
    }

    /// Scores `batch` in one run and answers each request with its own rows. If the
    /// batched run fails, each request is run again alone, so a request never fails
    /// because of its neighbours.
    fn run(&self, session: &ModelSession, batch: Vec<Job>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        if batch.len() > 1 {
            let tables: Vec<&Table> = batch.iter().map(|j| &j.table).collect();
            if let Ok(all) = guarded(|| session.predict_all(&tables)) {
                let parts = all.split(batch.iter().map(|j| j.table.rows()));
                for (job, part) in batch.into_iter().zip(parts) {
                    let _ = job.reply.send((job.table, Ok(part)));
                }
                return;
            }
        }
        for job in batch {
            let predicted = guarded(|| session.predict(&job.table));
            let _ = job.reply.send((job.table, predicted));
        }
    }
}

/// A run that panics inside ONNX Runtime's bindings fails its requests, not the thread
/// that holds the session (and the other requests waiting on it).
fn guarded(
    run: impl FnOnce() -> Result<Predictions, InferenceError>,
) -> Result<Predictions, InferenceError> {
    catch_unwind(AssertUnwindSafe(run))
        .unwrap_or_else(|_| Err(InferenceError::Run("the model run panicked".into())))
}

fn unanswered() -> Answer {
    (
        Table::default(),
        Err(InferenceError::Run(
            "the scoring run ended without an answer".into(),
        )),
    )
}

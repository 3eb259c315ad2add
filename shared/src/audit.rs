//! The audit trail: every state change appends a record (who, what, when, why,
//! correlation id). Records are hash-chained — each carries the previous record's hash
//! and its own, over its canonical JSON — so an edited, removed or reordered record is
//! detected by [`AuditLog::verify`].
//!
//! Appending needs no lock: record `n` is written create-only at `audit/records/<n>`, so
//! of two writers racing for the same number one wins and the other moves on to the
//! next. `audit/head.json` is only a hint of the latest number (updated with If-Match,
//! never trusted): a reader walks forward from it to the true end.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::storage::{ObjectKey, ObjectStore, PutMode, StorageError, get_json, put_json};

/// What happened. One name per kind of state change, as in logs and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DatasetVersioned,
    DatasetRejected,
    RunRequested,
    RunRejected,
    RunStarted,
    RunFinished,
    /// A failed or canceled run was tried again (its next attempt).
    RunRetried,
    ModelRegistered,
    GatePassed,
    GateFailed,
    Promoted,
    Approved,
    RolledBack,
    /// A training config was stored (a new version of it).
    ConfigStored,
    /// A window of production's traffic drifted from the model's training data.
    DriftDetected,
    /// A batch of ground truth was kept.
    FeedbackReceived,
    /// A feedback file was quarantined.
    FeedbackRejected,
    /// Production's live metric broke its guard's bound.
    Degraded,
    /// A dataset's contract was stored (a new version of it).
    ContractStored,
    /// A version passed the gate and waits in staging for a person's approval.
    AwaitingApproval,
}

/// A record as appended: the caller's part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub action: Action,
    /// Who or what caused it: a person, a key's name, a system (`sluice:RetrainQueue`).
    pub actor: String,
    /// What it is about: `dataset:adult@1`, `run:run-…`, `model:adult-income@3`.
    pub subject: String,
    pub reason: String,
    /// Ties the records of one flow together (the triggering event or request id).
    pub correlation_id: String,
    #[serde(default)]
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub entry: Entry,
    /// The previous record's `hash` ("" for the first).
    pub prev_hash: String,
    /// SHA-256 of this record's canonical JSON with `hash` empty.
    pub hash: String,
}

impl Record {
    fn compute_hash(&self) -> String {
        let mut unhashed = self.clone();
        unhashed.hash = String::new();
        // serde_json writes struct fields in declaration order and `details` maps
        // sorted (no preserve_order feature), and reads floats back exactly
        // (float_roundtrip), so a record read back hashes as it did when written.
        hex::encode(Sha256::digest(
            serde_json::to_vec(&unhashed).expect("records serialise"),
        ))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("audit record {seq} is broken: {problem}")]
    Broken { seq: u64, problem: String },
}

/// The result of a successful verification.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verified {
    pub records: u64,
    pub last_hash: String,
}

#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn ObjectStore>,
}

fn record_key(seq: u64) -> ObjectKey {
    ObjectKey::parse(format!("audit/records/{seq:012}.json")).expect("valid key")
}

fn head_key() -> ObjectKey {
    ObjectKey::parse("audit/head.json").expect("valid key")
}

/// The marker that says the record named `once` was appended (see
/// [`AuditLog::append_once`]).
fn once_key(once: &str) -> Result<ObjectKey, StorageError> {
    ObjectKey::parse(format!("audit/once/{once}.json"))
}

/// What an [`AuditLog::append_once`] marker holds: the record it stands for.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Once {
    seq: u64,
    hash: String,
}

impl AuditLog {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }

    async fn read(&self, seq: u64) -> Result<Option<Record>, AuditError> {
        match get_json::<Record>(self.store.as_ref(), &record_key(seq)).await {
            Ok((r, _)) => Ok(Some(r)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The last record's number and hash, walking forward from the head hint.
    async fn end(&self) -> Result<(u64, String), AuditError> {
        let (mut seq, mut hash) = match get_json::<Head>(self.store.as_ref(), &head_key()).await {
            Ok((h, _)) => (h.seq, h.hash),
            Err(StorageError::NotFound { .. }) => (0, String::new()),
            Err(e) => return Err(e.into()),
        };
        while let Some(next) = self.read(seq + 1).await? {
            seq = next.seq;
            hash = next.hash;
        }
        Ok((seq, hash))
    }

    /// Appends `entry` and returns the record written.
    pub async fn append(&self, entry: Entry) -> Result<Record, AuditError> {
        let (mut seq, mut prev) = self.end().await?;
        loop {
            let mut record = Record {
                seq: seq + 1,
                at: Utc::now(),
                entry: entry.clone(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            record.hash = record.compute_hash();
            match put_json(
                self.store.as_ref(),
                &record_key(record.seq),
                &record,
                PutMode::Create,
            )
            .await
            {
                Ok(_) => {
                    self.advance_head(&record).await;
                    return Ok(record);
                }
                Err(StorageError::AlreadyExists { .. }) => {
                    // Someone appended first: chain onto theirs.
                    let theirs = self
                        .read(seq + 1)
                        .await?
                        .ok_or_else(|| AuditError::Broken {
                            seq: seq + 1,
                            problem: "exists and does not".into(),
                        })?;
                    (seq, prev) = (theirs.seq, theirs.hash);
                    while let Some(next) = self.read(seq + 1).await? {
                        (seq, prev) = (next.seq, next.hash);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Appends `entry` unless the record named `once` (a path, e.g.
    /// `dataset.versioned/adult/v3`) was appended before; for steps that run again after
    /// a failure and must be recorded exactly when they first happened. The marker is
    /// written after the record, so a crash between the two records the step twice,
    /// never not at all; both records carry `once` in their details as `event_id`, which
    /// is what consumers of the events deduplicate on.
    pub async fn append_once(
        &self,
        once: &str,
        mut entry: Entry,
    ) -> Result<Option<Record>, AuditError> {
        let marker = once_key(once)?;
        match self.store.head(&marker).await {
            Ok(_) => return Ok(None),
            Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if let serde_json::Value::Object(details) = &mut entry.details {
            details.insert("event_id".into(), once.replace('/', ":").into());
        } else {
            entry.details = serde_json::json!({"event_id": once.replace('/', ":")});
        }
        let record = self.append(entry).await?;
        let written = Once {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        match put_json(self.store.as_ref(), &marker, &written, PutMode::Create).await {
            Ok(_) | Err(StorageError::AlreadyExists { .. }) => Ok(Some(record)),
            Err(e) => Err(e.into()),
        }
    }

    /// The record numbered `seq`, if the trail reaches it.
    pub async fn record(&self, seq: u64) -> Result<Option<Record>, AuditError> {
        self.read(seq).await
    }

    /// The newest `n` records, newest first.
    pub async fn recent(&self, n: usize) -> Result<Vec<Record>, AuditError> {
        let last = self.last_seq().await?;
        let mut out = Vec::new();
        for seq in (1..=last).rev().take(n) {
            if let Some(r) = self.read(seq).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// The newest `n` records, newest first, and whether they verify: each one's hash
    /// recomputed and each linked to the record before it (the one before the window
    /// too). What a glance at the trail costs stays bounded by `n`; [`AuditLog::verify`]
    /// checks the whole chain.
    pub async fn recent_verified(
        &self,
        n: usize,
    ) -> Result<(Vec<Record>, Result<(), AuditError>), AuditError> {
        let mut records = self.recent(n + 1).await?;
        let broken = |seq: u64, problem: &str| {
            Err(AuditError::Broken {
                seq,
                problem: problem.to_owned(),
            })
        };
        let mut verdict = Ok(());
        for (i, r) in records.iter().enumerate().take(n) {
            let older = records.get(i + 1);
            verdict = if r.compute_hash() != r.hash {
                broken(r.seq, "its content does not match its hash (edited?)")
            } else if older.is_some_and(|o| o.seq + 1 != r.seq) {
                broken(r.seq, "its number is out of sequence")
            } else if older.map_or(r.seq == 1 && !r.prev_hash.is_empty(), |o| {
                o.hash != r.prev_hash
            }) {
                broken(r.seq, "it does not chain onto the record before it")
            } else {
                continue;
            };
            break;
        }
        records.truncate(n);
        Ok((records, verdict))
    }

    /// The number of the last record (0 for an empty trail).
    pub async fn last_seq(&self) -> Result<u64, AuditError> {
        Ok(self.end().await?.0)
    }

    /// Best effort: the head is a hint, so losing this race costs nothing.
    async fn advance_head(&self, record: &Record) {
        let head = Head {
            seq: record.seq,
            hash: record.hash.clone(),
        };
        let store = self.store.as_ref();
        let mode = match store.head(&head_key()).await {
            Ok(meta) => match get_json::<Head>(store, &head_key()).await {
                Ok((current, etag)) if current.seq < record.seq => PutMode::Update(etag),
                Ok(_) => return,
                Err(_) => PutMode::Update(meta.etag),
            },
            Err(_) => PutMode::Create,
        };
        let _ = put_json(store, &head_key(), &head, mode).await;
    }

    /// The actions recorded, oldest first (what tests compare).
    #[cfg(test)]
    pub(crate) async fn actions(&self) -> Vec<Action> {
        let records = self.records().await.expect("the audit trail reads");
        records.into_iter().map(|r| r.entry.action).collect()
    }

    /// Every record in order (for `sluice audit` and the API).
    pub async fn records(&self) -> Result<Vec<Record>, AuditError> {
        let mut out = Vec::new();
        let mut seq = 1;
        while let Some(r) = self.read(seq).await? {
            out.push(r);
            seq += 1;
        }
        Ok(out)
    }

    /// Checks the chain: numbering without gaps, each hash recomputes, each record
    /// names its predecessor's hash, and nothing lies past the end or before the head.
    pub async fn verify(&self) -> Result<Verified, AuditError> {
        let records = self.records().await?;
        let mut prev = String::new();
        for (i, r) in records.iter().enumerate() {
            let broken = |problem: &str| AuditError::Broken {
                seq: i as u64 + 1,
                problem: problem.to_owned(),
            };
            if r.seq != i as u64 + 1 {
                return Err(broken("its number is out of sequence"));
            }
            if r.compute_hash() != r.hash {
                return Err(broken("its content does not match its hash (edited?)"));
            }
            if r.prev_hash != prev {
                return Err(broken("it does not chain onto the record before it"));
            }
            prev = r.hash.clone();
        }
        let count = records.len() as u64;
        // A record missing in the middle shows as later records past the end.
        let listed = self.store.list("audit/records/").await?.len() as u64;
        if listed != count {
            return Err(AuditError::Broken {
                seq: count + 1,
                problem: format!("missing: {listed} records exist but the chain stops at {count}"),
            });
        }
        if let Ok((head, _)) = get_json::<Head>(self.store.as_ref(), &head_key()).await
            && head.seq > count
        {
            return Err(AuditError::Broken {
                seq: count + 1,
                problem: format!("missing: the log once reached record {}", head.seq),
            });
        }
        Ok(Verified {
            records: count,
            last_hash: prev,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::local::LocalStore;

    /// Trails written by older versions must keep reading: the paths, byte for byte.
    #[test]
    fn the_audit_layout_is_pinned() {
        assert_eq!(record_key(7).as_str(), "audit/records/000000000007.json");
        assert_eq!(head_key().as_str(), "audit/head.json");
        assert_eq!(
            once_key("dataset.versioned/adult/v3").unwrap().as_str(),
            "audit/once/dataset.versioned/adult/v3.json"
        );
    }

    /// A step recorded once stays recorded once, however often it runs again; its
    /// record names the event it stands for.
    #[tokio::test]
    async fn a_step_appended_once_is_recorded_once() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let log = AuditLog::new(store);
        let first = log.append_once("x.happened/a/1", entry(1)).await.unwrap();
        assert_eq!(first.unwrap().entry.details["event_id"], "x.happened:a:1");
        assert!(
            log.append_once("x.happened/a/1", entry(1))
                .await
                .unwrap()
                .is_none()
        );
        log.append_once("x.happened/a/2", entry(2)).await.unwrap();
        assert_eq!(log.last_seq().await.unwrap(), 2);
        assert_eq!(log.record(2).await.unwrap().unwrap().entry.subject, "run:2");
    }

    fn entry(n: u32) -> Entry {
        Entry {
            action: Action::RunRequested,
            actor: "test".into(),
            subject: format!("run:{n}"),
            reason: "because".into(),
            correlation_id: format!("c{n}"),
            details: serde_json::json!({"n": n, "auc": 0.904_966_951_392_169_1, "third": 1.0 / 3.0}),
        }
    }

    /// Floats in details must read back bit for bit, or every verify would fail.
    #[tokio::test]
    async fn concurrent_appends_chain_without_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let log = AuditLog::new(store);
        let tasks: Vec<_> = (0..20)
            .map(|n| {
                let log = log.clone();
                tokio::spawn(async move { log.append(entry(n)).await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let verified = log.verify().await.unwrap();
        assert_eq!(verified.records, 20);
        let subjects: std::collections::BTreeSet<_> = log
            .records()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.entry.subject)
            .collect();
        assert_eq!(subjects.len(), 20, "no append was lost");
    }

    #[tokio::test]
    async fn an_edited_or_deleted_record_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let log = AuditLog::new(store.clone());
        for n in 0..3 {
            log.append(entry(n)).await.unwrap();
        }
        let path = dir.path().join("audit/records/000000000002.json");
        let original = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, original.replace("because", "no reason")).unwrap();
        let err = log.verify().await.unwrap_err().to_string();
        assert!(err.contains("record 2") && err.contains("hash"), "{err}");
        let (shown, verdict) = log.recent_verified(2).await.unwrap();
        assert_eq!(shown.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 2]);
        assert!(
            matches!(verdict, Err(AuditError::Broken { seq: 2, .. })),
            "{verdict:?}"
        );
        // A window that only reaches past the edit still sees it: its newest record's
        // link to the edited one no longer holds once the edit re-hashes it.
        let forged = {
            let mut r: Record = serde_json::from_str(&original).unwrap();
            r.entry.reason = "no reason".into();
            r.hash = r.compute_hash();
            r
        };
        std::fs::write(&path, serde_json::to_string(&forged).unwrap()).unwrap();
        let (_, verdict) = log.recent_verified(1).await.unwrap();
        assert!(
            matches!(verdict, Err(AuditError::Broken { seq: 3, .. })),
            "{verdict:?}"
        );
        std::fs::write(&path, &original).unwrap();
        assert!(log.recent_verified(2).await.unwrap().1.is_ok());
        assert!(
            log.recent_verified(10).await.unwrap().1.is_ok(),
            "down to the first"
        );
        assert_eq!(log.verify().await.unwrap().records, 3);
        std::fs::remove_file(dir.path().join("audit/records/000000000003.json")).unwrap();
        let err = log.verify().await.unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}

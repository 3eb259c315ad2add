//! Promotion policy: the evaluation gate's verdict, and the moves it allows
//! (candidate → staging → production, approvals, rollback).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::dataset::DatasetName;
use crate::model::task::Task;
use crate::training::config::PromotionPolicy;
use crate::training::metrics::Metrics;

use super::{
    ModelName, NewRelease, PRODUCTION, Registry, RegistryError, Release, STAGING, gate_key,
};
use crate::audit::{Action, AuditError, AuditLog, Entry};
use crate::storage::{ObjectStore, StorageError, get_json};

/// The gate's verdict on one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    /// Every reason it failed (empty when it passed).
    pub reasons: Vec<String>,
    pub metric: String,
    pub candidate: Metrics,
    /// Production's metrics on the same data, when there is a production model.
    pub production: Option<Metrics>,
    pub production_version: Option<u32>,
    /// The rows both were scored on (absent in verdicts written before holdouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
}

/// Which rows the gate scored a candidate (and production) on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Evaluation {
    /// Every row of the evaluation dataset version the model's config pins.
    Pinned { dataset: DatasetName, version: u32 },
    /// The rows the candidate's run held out of its training dataset version.
    Holdout {
        dataset: DatasetName,
        version: u32,
        run_id: String,
        /// Whether production held out the same rows of the same version, so neither
        /// model learned from them (None without a production model to compare).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        same_as_production: Option<bool>,
    },
}

impl Evaluation {
    /// The dataset version whose rows are scored.
    pub fn data(&self) -> (&DatasetName, u32) {
        match self {
            Evaluation::Pinned { dataset, version }
            | Evaluation::Holdout {
                dataset, version, ..
            } => (dataset, *version),
        }
    }
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Evaluation::Pinned { dataset, version } => {
                write!(f, "pinned evaluation data {dataset}@{version}")
            }
            Evaluation::Holdout {
                dataset,
                version,
                run_id,
                same_as_production,
            } => {
                write!(f, "the holdout of {dataset}@{version} kept by {run_id}")?;
                if *same_as_production == Some(false) {
                    write!(f, " (production held out other rows)")?;
                }
                Ok(())
            }
        }
    }
}

/// What the gate did with a version (`gate.json`): its verdict and what followed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub model: ModelName,
    pub version: u32,
    /// Written as `result` before the verdict had one name.
    #[serde(alias = "result")]
    pub verdict: Verdict,
    /// Releases made (staging, and production unless an approval is required).
    pub releases: Vec<Release>,
    pub awaiting_approval: bool,
}

/// Judges a candidate's metrics against production's (both on the same evaluation
/// data), or against the policy's floor when there is no production model yet. `metric`
/// decides; the candidate's task's other metrics may not regress by more than the policy
/// allows.
pub fn judge(
    policy: &PromotionPolicy,
    metric: &str,
    candidate: &Metrics,
    production: Option<&Metrics>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let better = |name: &str, a: f64, b: f64| {
        if Metrics::higher_is_better(name) {
            a - b
        } else {
            b - a
        }
    };
    let task = candidate.task;
    if !task.metrics().contains(&metric) {
        reasons.push(format!(
            "promotion.metric {metric:?} does not fit a {task} model (one of {})",
            task.metrics().join(", ")
        ));
        return reasons;
    }
    let value = candidate.get(metric).unwrap_or(f64::NAN);
    if !value.is_finite() {
        reasons.push(format!("{metric} is not a finite number"));
    }
    if let Some(rate) = candidate.positive_rate
        && (rate <= 0.0 || rate >= 1.0)
    {
        reasons.push(format!(
            "degenerate predictions: {:.1}% of rows predicted positive",
            rate * 100.0
        ));
    }
    if task == Task::Multiclass
        && let Some(class) = candidate.single_predicted_class()
    {
        reasons.push(format!(
            "degenerate predictions: every row predicted as {class:?}"
        ));
    }
    match production {
        None => {
            if let Some(floor) = policy.floor
                && better(metric, value, floor) < 0.0
            {
                let side = if Metrics::higher_is_better(metric) {
                    "below"
                } else {
                    "above"
                };
                reasons.push(format!(
                    "{metric} {value:.4} is {side} the floor {floor:.4} for a first model"
                ));
            }
        }
        Some(prod) => {
            let base = prod.get(metric).unwrap_or(f64::NAN);
            let gain = better(metric, value, base);
            if gain < policy.min_improvement {
                reasons.push(format!(
                    "{metric} {value:.4} does not improve on production's {base:.4} by at least {}",
                    policy.min_improvement
                ));
            }
            for guard in task.metrics().iter().filter(|m| **m != metric) {
                let (c, p) = (
                    candidate.get(guard).unwrap_or(f64::NAN),
                    prod.get(guard).unwrap_or(f64::NAN),
                );
                if better(guard, c, p) < -policy.max_regression {
                    reasons.push(format!(
                        "{guard} regresses from {p:.4} to {c:.4} (more than {} allowed)",
                        policy.max_regression
                    ));
                }
            }
        }
    }
    reasons
}

/// Moves `alias` to `version` from wherever it is now (one attempt: a concurrent move
/// makes this one fail with a conflict rather than silently override it).
async fn release_once(
    registry: &Registry,
    model: &ModelName,
    alias: &str,
    version: u32,
    actor: &str,
    reason: &str,
    gate: serde_json::Value,
) -> Result<Release, RegistryError> {
    let current = registry.alias(model, alias).await?;
    registry
        .release(
            model,
            NewRelease {
                alias: alias.to_owned(),
                version,
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                gate,
                rolls_back: None,
            },
            current.as_ref().map(|(a, e)| (a, e)),
        )
        .await
}

/// The releases `alias` could return to, oldest first, its current version last: each
/// release stacks on the one it replaced, and each rollback takes the top off, together
/// with every other release of the version it rolled back. So two rollbacks in a row go
/// two releases back, and a rolled-back version is never returned to by a rollback (a
/// new release of it stacks anew). `history` is the alias's releases in any order.
pub fn rollback_stack(history: &[Release]) -> Vec<&Release> {
    let seq = |r: &Release| {
        r.id.rsplit_once('.')
            .and_then(|(_, n)| n.parse::<u64>().ok())
            .unwrap_or_default()
    };
    let mut ordered: Vec<&Release> = history.iter().collect();
    ordered.sort_by_key(|r| seq(r));
    let mut stack: Vec<&Release> = Vec::new();
    for release in ordered {
        if release.rolls_back.is_some()
            && let Some(undone) = stack.pop()
        {
            stack.retain(|r| r.version != undone.version);
            if stack
                .last()
                .is_some_and(|top| top.version == release.version)
            {
                continue;
            }
        }
        // A release, or a rollback recorded before rollbacks followed this rule (it
        // restored something else): what it put in place stacks like a release.
        stack.push(release);
    }
    stack
}

/// Returns `alias` to the release before the one in place (see [`rollback_stack`]); one
/// attempt, as [`release_once`].
async fn rollback_once(
    registry: &Registry,
    model: &ModelName,
    alias: &str,
    expected: Option<&str>,
    actor: &str,
    reason: &str,
) -> Result<Release, RegistryError> {
    let (current, etag) = registry.require_alias(model, alias).await?;
    if expected.is_some_and(|e| e != current.release.id) {
        return Err(RegistryError::Conflict {
            model: model.to_string(),
            alias: alias.to_owned(),
        });
    }
    let history: Vec<Release> = registry
        .releases(model)
        .await?
        .into_iter()
        .filter(|r| r.alias == alias)
        .collect();
    let mut stack = rollback_stack(&history);
    let undone = stack.pop().map(|r| r.version);
    stack.retain(|r| Some(r.version) != undone);
    let previous = stack.last().ok_or_else(|| {
        RegistryError::Invalid(format!(
            "{alias} of {model} has no earlier release to return to"
        ))
    })?;
    registry
        .release(
            model,
            NewRelease {
                alias: alias.to_owned(),
                version: previous.version,
                actor: actor.to_owned(),
                reason: reason.to_owned(),
                gate: serde_json::Value::Null,
                rolls_back: Some(current.release.id.clone()),
            },
            Some((&current, &etag)),
        )
        .await
}

/// The reason an approval records when its caller gives none.
pub const APPROVED: &str = "approved for production";
/// The reason a rollback records when its caller gives none.
pub const ROLLBACK_REQUESTED: &str = "rollback requested";

/// Who changes an alias, why, and in which flow.
#[derive(Clone, Copy, Debug)]
pub struct Change<'a> {
    pub actor: &'a str,
    pub reason: &'a str,
    pub correlation_id: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Not allowed as asked: the version has not passed the gate, or is not in staging.
    #[error("{0}")]
    Refused(String),
}

/// The promotion workflow, the one way an alias moves: the gate's releases, a person's
/// approval, a manual promotion and a rollback each move the alias (If-Match) and append
/// the audit record. It needs no ONNX Runtime, so a rollback works even when scoring and
/// the gate cannot.
#[derive(Clone)]
pub struct Releases {
    registry: Registry,
    audit: AuditLog,
}

impl Releases {
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            registry: Registry::new(store.clone()),
            audit: AuditLog::new(store),
        }
    }

    /// Moves `alias` to `version` and records it (`gate`: the verdict that justified it).
    pub async fn release(
        &self,
        model: &ModelName,
        alias: &str,
        version: u32,
        gate: serde_json::Value,
        change: Change<'_>,
    ) -> Result<Release, ReleaseError> {
        let release = release_once(
            &self.registry,
            model,
            alias,
            version,
            change.actor,
            change.reason,
            gate,
        )
        .await?;
        let entry = Entry {
            action: Action::Promoted,
            actor: change.actor.to_owned(),
            subject: format!("model:{model}@{version}"),
            reason: format!("{} → {alias}: {}", release.id, change.reason),
            correlation_id: change.correlation_id.to_owned(),
            details: serde_json::json!({"alias": alias, "release": release.id, "previous": release.previous}),
        };
        let once = format!("model.promoted/{model}/{}", release.id);
        self.audit.append_once(&once, entry).await?;
        Ok(release)
    }

    /// A person's approval moves a version that passed the gate and sits in staging to
    /// production.
    pub async fn approve(
        &self,
        model: &ModelName,
        version: u32,
        change: Change<'_>,
    ) -> Result<Release, ReleaseError> {
        let Some(outcome) = self.gate_record(model, version).await? else {
            return Err(ReleaseError::Refused(format!(
                "{model}@{version} has not been through the gate"
            )));
        };
        if !outcome.verdict.passed {
            return Err(ReleaseError::Refused(format!(
                "{model}@{version} failed the gate: {}",
                outcome.verdict.reasons.join("; ")
            )));
        }
        let staged = self.registry.resolve(model, STAGING).await?;
        if staged.version != version {
            return Err(ReleaseError::Refused(format!(
                "{model}@{version} is not in staging (staging is {})",
                staged.version
            )));
        }
        self.audit
            .append(Entry {
                action: Action::Approved,
                actor: change.actor.to_owned(),
                subject: format!("model:{model}@{version}"),
                reason: change.reason.to_owned(),
                correlation_id: change.correlation_id.to_owned(),
                details: serde_json::Value::Null,
            })
            .await?;
        let gate = serde_json::to_value(&outcome.verdict).unwrap_or_default();
        self.release(model, PRODUCTION, version, gate, change).await
    }

    /// Returns production to the release before the one in place, and records it.
    pub async fn rollback(
        &self,
        model: &ModelName,
        change: Change<'_>,
    ) -> Result<Release, ReleaseError> {
        self.rollback_from(model, None, change).await
    }

    /// [`Self::rollback`], only while production is still the release `expected` (else
    /// [`RegistryError::Conflict`]): what an automatic rollback does, so that acting on
    /// one breach twice cannot go back two releases.
    pub async fn rollback_from(
        &self,
        model: &ModelName,
        expected: Option<&str>,
        change: Change<'_>,
    ) -> Result<Release, ReleaseError> {
        let release = rollback_once(
            &self.registry,
            model,
            PRODUCTION,
            expected,
            change.actor,
            change.reason,
        )
        .await?;
        let entry = Entry {
            action: Action::RolledBack,
            actor: change.actor.to_owned(),
            subject: format!("model:{model}@{}", release.version),
            reason: format!(
                "{} rolls back {}: {}",
                release.id,
                release.rolls_back.clone().unwrap_or_default(),
                change.reason
            ),
            correlation_id: change.correlation_id.to_owned(),
            details: serde_json::json!({"release": release.id, "rolls_back": release.rolls_back}),
        };
        let once = format!("model.rolled_back/{model}/{}", release.id);
        self.audit.append_once(&once, entry).await?;
        Ok(release)
    }

    /// What the gate did with a version (its `gate.json`), if it went through the gate.
    pub async fn gate_record(
        &self,
        model: &ModelName,
        version: u32,
    ) -> Result<Option<GateRecord>, ReleaseError> {
        match get_json(self.registry.store().as_ref(), &gate_key(model, version)).await {
            Ok((o, _)) => Ok(Some(o)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::metrics::binary;

    fn approval<'a>(actor: &'a str, correlation_id: &'a str) -> Change<'a> {
        Change {
            actor,
            reason: APPROVED,
            correlation_id,
        }
    }

    fn metrics(p: &[f64]) -> Metrics {
        binary(p, &[0.0, 1.0, 0.0, 1.0], &["n".into(), "y".into()])
    }

    /// A registry holding model `m` with one version per run name, 1 upwards.
    async fn registry_with(runs: &[&str]) -> (tempfile::TempDir, Registry, ModelName) {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn crate::storage::ObjectStore> =
            std::sync::Arc::new(crate::storage::local::LocalStore::new(dir.path()).unwrap());
        let reg = Registry::new(store);
        let m = ModelName::parse("m").unwrap();
        for run in runs {
            reg.register(
                &m,
                super::super::tests::artifacts(run),
                super::super::tests::lineage(run),
                Default::default(),
                String::new(),
            )
            .await
            .unwrap();
        }
        (dir, reg, m)
    }

    /// Moves `m`'s production to `version`, as a person would.
    async fn release(reg: &Registry, m: &ModelName, version: u32) -> Release {
        let null = serde_json::Value::Null;
        release_once(reg, m, "production", version, "ann", "release", null)
            .await
            .unwrap()
    }

    #[test]
    fn a_first_model_must_clear_the_floor_and_later_ones_must_beat_production() {
        let policy = PromotionPolicy {
            floor: Some(0.9),
            ..PromotionPolicy::default()
        };
        let good = metrics(&[0.1, 0.9, 0.2, 0.8]);
        let poor = metrics(&[0.6, 0.4, 0.2, 0.8]);
        assert!(judge(&policy, "roc_auc", &good, None).is_empty());
        let reasons = judge(&policy, "roc_auc", &poor, None);
        assert!(reasons[0].contains("below the floor"), "{reasons:?}");
        let reasons = judge(&policy, "roc_auc", &poor, Some(&good));
        assert!(
            reasons.iter().any(|r| r.contains("does not improve")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("regresses")),
            "{reasons:?}"
        );
        assert!(judge(&policy, "roc_auc", &good, Some(&poor)).is_empty());
    }

    #[test]
    fn degenerate_predictions_fail() {
        let all_negative = metrics(&[0.1, 0.2, 0.1, 0.3]);
        let reasons = judge(
            &PromotionPolicy {
                floor: Some(0.0),
                ..Default::default()
            },
            "roc_auc",
            &all_negative,
            None,
        );
        assert!(
            reasons.iter().any(|r| r.contains("degenerate")),
            "{reasons:?}"
        );
    }

    /// Four releases, then three rollbacks in a row: each goes one release further back,
    /// never to a version already rolled back, and `release_at` answers at every instant.
    #[tokio::test]
    async fn rollbacks_in_a_row_walk_back_through_the_releases() {
        let (_dir, reg, m) = registry_with(&["a", "b", "c", "d"]).await;
        let mut instants = vec![];
        let pause = || async {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            chrono::Utc::now()
        };
        instants.push((pause().await, None));
        for v in 1..=4 {
            release(&reg, &m, v).await;
            instants.push((pause().await, Some(v)));
        }
        for expected in [3, 2, 1] {
            let back = rollback_once(&reg, &m, "production", None, "bob", "undo")
                .await
                .unwrap();
            assert_eq!(back.version, expected);
            assert_eq!(
                reg.resolve(&m, "production").await.unwrap().version,
                expected
            );
            instants.push((pause().await, Some(expected)));
        }
        let err = rollback_once(&reg, &m, "production", None, "bob", "undo").await;
        assert!(matches!(err, Err(RegistryError::Invalid(_))), "{err:?}");
        for (at, version) in instants {
            let release = reg.release_at(&m, "production", at).await.unwrap();
            assert_eq!(release.map(|r| r.version), version, "at {at}");
        }
        // A release of a rolled-back version stacks anew; rolling it back returns to
        // what was under it, never to an older entry of the same version.
        release(&reg, &m, 4).await;
        release(&reg, &m, 2).await;
        let back = rollback_once(&reg, &m, "production", None, "bob", "undo")
            .await
            .unwrap();
        assert_eq!(back.version, 4);
        let back = rollback_once(&reg, &m, "production", None, "bob", "undo")
            .await
            .unwrap();
        assert_eq!(back.version, 1);
    }

    #[tokio::test]
    async fn rollback_returns_production_to_the_previous_release() {
        let (_dir, reg, m) = registry_with(&["a", "b"]).await;
        release(&reg, &m, 1).await;
        release(&reg, &m, 2).await;
        // A rollback meant for another release than production's is refused.
        let stale = rollback_once(&reg, &m, "production", Some("production.1"), "bob", "x");
        assert!(matches!(stale.await, Err(RegistryError::Conflict { .. })));
        let back = rollback_once(
            &reg,
            &m,
            "production",
            Some("production.2"),
            "bob",
            "v2 misbehaves",
        )
        .await
        .unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(back.id, "production.3");
        assert_eq!(back.rolls_back.as_deref(), Some("production.2"));
        assert_eq!(reg.resolve(&m, "production").await.unwrap().version, 1);
        let err = rollback_once(&reg, &m, "production", None, "bob", "again").await;
        assert!(
            matches!(&err, Err(RegistryError::Invalid(e)) if e.contains("no earlier release")),
            "{err:?}"
        );
        let err = rollback_once(
            &reg,
            &ModelName::parse("none").unwrap(),
            "production",
            None,
            "bob",
            "x",
        )
        .await;
        assert!(matches!(err, Err(RegistryError::NoAlias { .. })));
    }

    /// Approvals and rollbacks need no ONNX Runtime: what they rest on is stored. An
    /// approval needs a passing verdict for the version in staging; each move is audited.
    #[tokio::test]
    async fn the_workflow_approves_only_what_passed_and_audits_every_move() {
        let (_dir, reg, m) = registry_with(&["a", "b"]).await;
        let releases = Releases::new(reg.store().clone());
        let change = Change {
            actor: "ann",
            reason: "first",
            correlation_id: "c1",
        };
        let null = serde_json::Value::Null;
        releases
            .release(&m, PRODUCTION, 1, null.clone(), change)
            .await
            .unwrap();
        releases
            .release(&m, STAGING, 2, null, change)
            .await
            .unwrap();
        let refused = releases
            .approve(&m, 2, approval("bob", "c2"))
            .await
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("has not been through the gate"),
            "{refused}"
        );
        let passed = GateRecord {
            model: m.clone(),
            version: 2,
            verdict: Verdict {
                passed: true,
                reasons: vec![],
                metric: "roc_auc".into(),
                candidate: metrics(&[0.2, 0.8, 0.3, 0.7]),
                production: None,
                production_version: Some(1),
                evaluation: None,
            },
            releases: vec![],
            awaiting_approval: true,
        };
        let store = reg.store().as_ref();
        let key = gate_key(&m, 2);
        crate::storage::put_json(store, &key, &passed, crate::storage::PutMode::Create)
            .await
            .unwrap();
        let approved = releases
            .approve(&m, 2, approval("bob", "c2"))
            .await
            .unwrap();
        assert_eq!(
            (approved.version, approved.id.as_str()),
            (2, "production.2")
        );
        let back = releases.rollback(&m, change).await.unwrap();
        assert_eq!(
            (back.version, back.rolls_back.as_deref()),
            (1, Some("production.2"))
        );
        assert_eq!(
            AuditLog::new(reg.store().clone()).actions().await,
            [
                Action::Promoted,
                Action::Promoted,
                Action::Approved,
                Action::Promoted,
                Action::RolledBack
            ]
        );
    }
}

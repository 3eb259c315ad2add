//! Promotion policy: the evaluation gate's verdict, and the moves it allows
//! (candidate → staging → production, approvals, rollback).

use serde::{Deserialize, Serialize};

use crate::training::config::PromotionPolicy;
use crate::training::metrics::Metrics;

use super::{AliasMove, ModelName, Registry, RegistryError, Release};

/// The gate's result for one candidate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub passed: bool,
    /// Every reason it failed (empty when it passed).
    pub reasons: Vec<String>,
    pub metric: String,
    pub candidate: Metrics,
    /// Production's metrics on the same data, when there is a production model.
    pub production: Option<Metrics>,
    pub production_version: Option<u32>,
}

/// Judges a candidate's metrics against production's (both on the pinned evaluation
/// data), or against the policy's floor when there is no production model yet.
pub fn judge(
    policy: &PromotionPolicy,
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
    let metric = policy.metric.as_str();
    let value = candidate.get(metric).unwrap_or(f64::NAN);
    if !value.is_finite() {
        reasons.push(format!("{metric} is not a finite number"));
    }
    if candidate.positive_rate <= 0.0 || candidate.positive_rate >= 1.0 {
        reasons.push(format!(
            "degenerate predictions: {:.1}% of rows predicted positive",
            candidate.positive_rate * 100.0
        ));
    }
    match production {
        None => {
            if better(metric, value, policy.floor) < 0.0 {
                reasons.push(format!(
                    "{metric} {value:.4} is below the floor {:.4} for a first model",
                    policy.floor
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
            for guard in Metrics::NAMES.iter().filter(|m| **m != metric) {
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
pub async fn promote(
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
        .move_alias(
            model,
            AliasMove {
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

/// Returns `alias` to the version of the release before its current one.
pub async fn rollback(
    registry: &Registry,
    model: &ModelName,
    alias: &str,
    actor: &str,
    reason: &str,
) -> Result<Release, RegistryError> {
    let (current, etag) = registry.require_alias(model, alias).await?;
    // Roll back to what this release replaced (following rollbacks to what *they*
    // restored, so two rollbacks in a row go two releases back).
    let previous_id = current.release.previous.clone().ok_or_else(|| {
        RegistryError::Invalid(format!(
            "{alias} of {model} has no earlier release to return to"
        ))
    })?;
    let previous = registry
        .releases(model)
        .await?
        .into_iter()
        .find(|r| r.id == previous_id)
        .ok_or_else(|| RegistryError::Invalid(format!("release {previous_id} is missing")))?;
    registry
        .move_alias(
            model,
            AliasMove {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::metrics::binary;

    fn metrics(p: &[f64]) -> Metrics {
        binary(p, &[0.0, 1.0, 0.0, 1.0], &["n".into(), "y".into()])
    }

    #[test]
    fn a_first_model_must_clear_the_floor_and_later_ones_must_beat_production() {
        let policy = PromotionPolicy {
            floor: 0.9,
            ..PromotionPolicy::default()
        };
        let good = metrics(&[0.1, 0.9, 0.2, 0.8]);
        let poor = metrics(&[0.6, 0.4, 0.2, 0.8]);
        assert!(judge(&policy, &good, None).is_empty());
        let reasons = judge(&policy, &poor, None);
        assert!(reasons[0].contains("below the floor"), "{reasons:?}");
        let reasons = judge(&policy, &poor, Some(&good));
        assert!(
            reasons.iter().any(|r| r.contains("does not improve")),
            "{reasons:?}"
        );
        assert!(
            reasons.iter().any(|r| r.contains("regresses")),
            "{reasons:?}"
        );
        assert!(judge(&policy, &good, Some(&poor)).is_empty());
    }

    #[test]
    fn degenerate_predictions_fail() {
        let all_negative = metrics(&[0.1, 0.2, 0.1, 0.3]);
        let reasons = judge(
            &PromotionPolicy {
                floor: 0.0,
                ..Default::default()
            },
            &all_negative,
            None,
        );
        assert!(
            reasons.iter().any(|r| r.contains("degenerate")),
            "{reasons:?}"
        );
    }

    #[tokio::test]
    async fn rollback_returns_production_to_the_previous_release() {
        let dir = tempfile::tempdir().unwrap();
        let store: std::sync::Arc<dyn crate::storage::ObjectStore> =
            std::sync::Arc::new(crate::storage::local::LocalStore::new(dir.path()).unwrap());
        let reg = Registry::new(store);
        let m = ModelName::parse("m").unwrap();
        for run in ["a", "b"] {
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
        promote(
            &reg,
            &m,
            "production",
            1,
            "ann",
            "first",
            serde_json::Value::Null,
        )
        .await
        .unwrap();
        promote(
            &reg,
            &m,
            "production",
            2,
            "ann",
            "better",
            serde_json::Value::Null,
        )
        .await
        .unwrap();
        let back = rollback(&reg, &m, "production", "bob", "v2 misbehaves")
            .await
            .unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(back.id, "production.3");
        assert_eq!(back.rolls_back.as_deref(), Some("production.2"));
        assert_eq!(reg.resolve(&m, "production").await.unwrap().version, 1);
        let err = rollback(
            &reg,
            &ModelName::parse("none").unwrap(),
            "production",
            "bob",
            "x",
        )
        .await;
        assert!(matches!(err, Err(RegistryError::NoAlias { .. })));
    }
}

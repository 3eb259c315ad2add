//! Where monitoring keeps what it reads and writes: the one table of its storage paths.
//!
//! ```text
//! monitoring/<model>/<release>/<000001>.json      a drift window (or azureml-<run>.json)
//! monitoring/<model>/<release>/degraded.json      the live-metric guard's breach
//! monitoring/<model>/<release>/cursor.json        where the release's windows stand
//! monitoring/<model>/live.json                    live metrics, rewritten each pass
//! monitoring/<model>/feedback/<batch>.json        what became of a feedback batch
//! monitoring/<model>/feedback-pending.json        the batches still waiting, per last pass
//! feedback/<model>/batches/<batch>.json           ground truth as received
//! feedback/<model>/quarantine/<batch>.json        a feedback file that was refused
//! landing/feedback/<model>/<file>                 feedback dropped as a file
//! ```

use crate::registry::ModelName;
use crate::storage::ObjectKey;

/// Uploads under it are ground truth for a model, not a dataset (`feedback` is therefore
/// not a dataset name).
pub const FEEDBACK_LANDING: &str = "landing/feedback/";

fn key(path: String) -> ObjectKey {
    ObjectKey::parse(path).expect("model names, release ids and batch ids are valid key segments")
}

/// Every report of `model`: drift windows, feedback reports, live metrics.
pub fn model_prefix(model: &ModelName) -> String {
    format!("monitoring/{model}/")
}

/// The drift windows (and the guard's breach) of one release.
pub fn release_prefix(model: &ModelName, release: &str) -> String {
    format!("monitoring/{model}/{release}/")
}

pub fn window(model: &ModelName, release: &str, file: &str) -> ObjectKey {
    key(format!("{}{file}.json", release_prefix(model, release)))
}

pub fn degraded(model: &ModelName, release: &str) -> ObjectKey {
    key(format!("{}{DEGRADED}.json", release_prefix(model, release)))
}

/// The name of the guard's record among a release's windows.
pub const DEGRADED: &str = "degraded";

/// The name of the windows' cursor among a release's windows.
pub const CURSOR: &str = "cursor";

pub fn cursor(model: &ModelName, release: &str) -> ObjectKey {
    key(format!("{}{CURSOR}.json", release_prefix(model, release)))
}

pub fn live(model: &ModelName) -> ObjectKey {
    key(format!("monitoring/{model}/live.json"))
}

pub fn feedback_reports(model: &ModelName) -> String {
    format!("monitoring/{model}/feedback/")
}

pub fn feedback_report(model: &ModelName, batch: &str) -> ObjectKey {
    key(format!("{}{batch}.json", feedback_reports(model)))
}

pub fn feedback_pending(model: &ModelName) -> ObjectKey {
    key(format!("monitoring/{model}/feedback-pending.json"))
}

/// A report's or batch's id: its file name without `.json`.
pub fn file_stem(key: &ObjectKey) -> Option<String> {
    let name = key.as_str().rsplit('/').next()?;
    name.strip_suffix(".json").map(str::to_owned)
}

pub fn feedback_batches(model: &ModelName) -> String {
    format!("feedback/{model}/batches/")
}

pub fn feedback_batch(model: &ModelName, batch: &str) -> ObjectKey {
    key(format!("{}{batch}.json", feedback_batches(model)))
}

pub fn feedback_quarantine(model: &ModelName, batch: &str) -> ObjectKey {
    key(format!("feedback/{model}/quarantine/{batch}.json"))
}

/// `landing/feedback/<model>/<file…>` → the model the file labels; `Some(Err)` for a
/// folder that is not a model name, `None` outside `landing/feedback/`.
pub fn model_of_feedback_upload(
    upload: &ObjectKey,
) -> Option<Result<ModelName, crate::registry::InvalidModelName>> {
    let rest = upload.as_str().strip_prefix(FEEDBACK_LANDING)?;
    let (model, file) = rest.split_once('/')?;
    (!file.is_empty()).then(|| ModelName::parse(model))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores written by earlier versions must keep reading: the paths are pinned.
    #[test]
    fn the_monitoring_layout_is_pinned() {
        let m = ModelName::parse("adult-income").unwrap();
        let pinned = [
            (
                window(&m, "production.3", "000001"),
                "monitoring/adult-income/production.3/000001.json",
            ),
            (
                degraded(&m, "production.3"),
                "monitoring/adult-income/production.3/degraded.json",
            ),
            (live(&m), "monitoring/adult-income/live.json"),
            (
                feedback_report(&m, "ab12"),
                "monitoring/adult-income/feedback/ab12.json",
            ),
            (
                feedback_batch(&m, "ab12"),
                "feedback/adult-income/batches/ab12.json",
            ),
            (
                feedback_quarantine(&m, "ab12"),
                "feedback/adult-income/quarantine/ab12.json",
            ),
            (
                cursor(&m, "production.3"),
                "monitoring/adult-income/production.3/cursor.json",
            ),
            (
                feedback_pending(&m),
                "monitoring/adult-income/feedback-pending.json",
            ),
        ];
        assert_eq!(
            file_stem(&feedback_batch(&m, "ab12")).as_deref(),
            Some("ab12")
        );
        for (key, path) in pinned {
            assert_eq!(key.as_str(), path);
        }
        let up = ObjectKey::parse("landing/feedback/adult-income/2026/labels.csv").unwrap();
        assert_eq!(model_of_feedback_upload(&up).unwrap().unwrap(), m);
        let bad = ObjectKey::parse("landing/feedback/Bad Name/x.csv").unwrap();
        assert!(model_of_feedback_upload(&bad).unwrap().is_err());
        let dataset = ObjectKey::parse("landing/adult/adult.data").unwrap();
        assert!(model_of_feedback_upload(&dataset).is_none());
    }
}

//! Watching models after release: the drift statistics against SciPy, and the retrain
//! policy that retrains only when a new dataset version drifted from the data production
//! was trained on.

use serde_json::{Value, json};
use sluice_shared::monitoring::stats;

use crate::helpers::{loop_app_with_eval_data, put_config};

/// A deterministic pseudo-random stream (SplitMix64), so the samples are the same on
/// every run without a dependency.
fn uniform(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1.0)
}

/// Sluice's Wasserstein and Jensen–Shannon distances equal SciPy's on the same samples
/// (weighted and unweighted, overlapping and apart, categories with empty ones), and the
/// PSI equals a direct NumPy computation, each to 1e-9.
#[test]
fn drift_statistics_agree_with_scipy() {
    let mut next = uniform(7);
    let mut sample = |n: usize, scale: f64, shift: f64| -> Vec<(f64, f64)> {
        (0..n)
            .map(|_| (next() * scale + shift, (next() * 5.0).floor() + 1.0))
            .collect()
    };
    let numeric = [
        (sample(500, 10.0, 0.0), sample(700, 10.0, 0.0)),
        (sample(300, 10.0, 0.0), sample(300, 10.0, 4.0)),
        (sample(50, 1.0, 0.0), sample(80, 1.0, 100.0)),
    ];
    let categorical = [
        (vec![10.0, 20.0, 30.0, 0.0], vec![12.0, 18.0, 25.0, 5.0]),
        (vec![1.0, 0.0, 0.0], vec![0.0, 0.0, 1.0]),
        (vec![250.0, 750.0], vec![500.0, 500.0]),
    ];
    let cases = json!({
        "numeric": numeric.iter().map(|(u, v)| json!({
            "u": u.iter().map(|p| p.0).collect::<Vec<_>>(),
            "uw": u.iter().map(|p| p.1).collect::<Vec<_>>(),
            "v": v.iter().map(|p| p.0).collect::<Vec<_>>(),
            "vw": v.iter().map(|p| p.1).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "categorical": categorical.iter().map(|(p, q)| json!([p, q])).collect::<Vec<_>>(),
    });
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    std::fs::write(&input, cases.to_string()).unwrap();
    let script = r#"
import json, sys
import numpy as np
from scipy.stats import wasserstein_distance
from scipy.spatial.distance import jensenshannon
cases = json.load(open(sys.argv[1]))
def psi(e, a):
    e = np.maximum(np.asarray(e) / np.sum(e), 1e-4)
    a = np.maximum(np.asarray(a) / np.sum(a), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))
out = {
    "wasserstein": [wasserstein_distance(c["u"], c["v"]) for c in cases["numeric"]],
    "wasserstein_weighted": [
        wasserstein_distance(c["u"], c["v"], c["uw"], c["vw"]) for c in cases["numeric"]
    ],
    "jensenshannon": [float(jensenshannon(p, q)) for p, q in cases["categorical"]],
    "psi": [psi(p, q) for p, q in cases["categorical"]],
}
print(json.dumps(out))
"#;
    let output = std::process::Command::new(sluice_tests::python_tools().join("python"))
        .arg("-c")
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let scipy: Value = serde_json::from_slice(&output.stdout).unwrap();

    for (i, (u, v)) in numeric.iter().enumerate() {
        let unweighted = |s: &[(f64, f64)]| s.iter().map(|p| (p.0, 1.0)).collect::<Vec<_>>();
        let ours = stats::wasserstein(&unweighted(u), &unweighted(v)).unwrap();
        let theirs = scipy["wasserstein"][i].as_f64().unwrap();
        assert!(close(ours, theirs), "case {i}: {ours} vs SciPy {theirs}");
        let ours = stats::wasserstein(u, v).unwrap();
        let theirs = scipy["wasserstein_weighted"][i].as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "weighted case {i}: {ours} vs SciPy {theirs}"
        );
    }
    for (i, (p, q)) in categorical.iter().enumerate() {
        let ours = stats::jensen_shannon(p, q).unwrap();
        let theirs = scipy["jensenshannon"][i].as_f64().unwrap();
        assert!(close(ours, theirs), "case {i}: {ours} vs SciPy {theirs}");
        let ours = stats::psi(p, q).unwrap();
        let theirs = scipy["psi"][i].as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "PSI case {i}: {ours} vs NumPy {theirs}"
        );
    }
}

/// Adult's rows with `age` moved by `years` (the first field), every `step`-th row.
fn adult_rows(step: usize, years: i64) -> Vec<u8> {
    let text = std::fs::read_to_string(sluice_tests::adult("adult.data")).unwrap();
    let mut out = String::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()).step_by(step) {
        let (age, rest) = line.split_once(',').unwrap();
        let age: i64 = age.trim().parse().unwrap();
        out.push_str(&format!("{},{rest}\n", age + years));
    }
    out.into_bytes()
}

/// `on: drift` compares each new version with the data production was trained on: a
/// version drawn from the same rows retrains nothing; one whose ages moved by 10 years (still within the contract)
/// retrains, and the run says which column drifted and by how much.
#[tokio::test]
async fn a_drift_policy_retrains_only_when_a_version_drifted_from_production_s_data() {
    let app = loop_app_with_eval_data().await;
    let mut config = crate::helpers::config();
    config["retrain"] = json!({"on": "drift"});
    put_config(&app, &config).await;

    // Each version's dataset.versioned event, delivered as the topic would.
    let deliver = |event: Value, n: u32| json!({"Data": {"message": event}, "Metadata": {"MessageId": format!("\"m-{n}\""), "DeliveryCount": "1"}});
    let ingest = |name: &'static str, bytes: Vec<u8>| {
        let app = &app;
        async move {
            let key = app.upload("adult", name, bytes).await;
            let (status, body) = app
                .invoke("DatasetIngest", &app.blob_created(&key).await)
                .await;
            assert_eq!(status, 200, "{body}");
            body["Outputs"]["datasetEvents"].clone()
        }
    };

    let event = ingest("adult.data", adult_rows(1, 0)).await;
    let (_, first) = app.invoke("DatasetEvents", &deliver(event, 1)).await;
    let run = first["ReturnValue"]["runs"][0]["run_id"].as_str().unwrap();
    assert!(
        first["ReturnValue"]["runs"][0]["run"]["reason"]
            .as_str()
            .unwrap()
            .contains("no production model yet"),
        "{first}"
    );
    assert_eq!(app.follow(run).await["status"], "succeeded");

    let event = ingest("every-third.data", adult_rows(3, 0)).await;
    assert_eq!(event["version"], 2, "{event}");
    let (status, same) = app.invoke("DatasetEvents", &deliver(event, 2)).await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["ReturnValue"]["runs"], json!([]), "{same}");

    let event = ingest("older.data", adult_rows(2, 10)).await;
    assert_eq!(event["version"], 3, "{event}");
    let (_, drifted) = app.invoke("DatasetEvents", &deliver(event, 3)).await;
    let runs = drifted["ReturnValue"]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{drifted}");
    let reason = runs[0]["run"]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("adult v3 drifted from adult v1 (threshold 0.1): age "),
        "{reason}"
    );
    assert!(!reason.contains(", "), "only age drifted: {reason}");
    assert_eq!(runs[0]["run"]["dataset_version"], 3);
}

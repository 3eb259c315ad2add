//! The UCI Adult files, raw and messy, through `DatasetIngest`.

use sluice_shared::dataset::validation::Rule;

use crate::helpers::spawn_app;

/// Column `i` of `adult.data`, parsed independently of Sluice (split on ", ").
fn column(i: usize) -> Vec<String> {
    std::fs::read_to_string(sluice_tests::adult("adult.data"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(", ").nth(i).unwrap().trim().to_owned())
        .collect()
}

#[tokio::test]
async fn adult_data_becomes_v1_with_a_profile_that_matches_an_independent_computation() {
    let app = spawn_app().await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let ret = app.ingest("adult", "adult.data", bytes.clone()).await;
    assert_eq!(ret["status"], "versioned", "{ret}");
    assert_eq!(
        (ret["version"].as_u64(), ret["duplicate"].as_bool()),
        (Some(1), Some(false))
    );

    let m = app.manifest("adult", 1).await;
    assert_eq!(
        (m.rows, m.schema.len(), m.bytes),
        (32_561, 15, bytes.len() as u64)
    );
    use sha2::Digest;
    assert_eq!(m.content_sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    assert!(m.validation.passed && m.validation.violations.is_empty());
    assert_eq!(m.parent_version, None);
    assert_eq!(m.source.key.as_str(), "landing/adult/adult.data");
    let p = |name: &str| m.profile.iter().find(|p| p.name == name).unwrap();

    // `?` counts as null.
    for (name, i) in [("workclass", 1), ("occupation", 6), ("native-country", 13)] {
        let nulls = column(i).iter().filter(|v| *v == "?").count() as u64;
        assert_eq!(p(name).nulls, nulls, "{name}");
    }
    assert_eq!(p("workclass").nulls, 1_836);
    let labels: Vec<_> = p("income")
        .top_values
        .iter()
        .map(|v| (v.value.as_str(), v.count))
        .collect();
    assert_eq!(labels, [("<=50K", 24_720), (">50K", 7_841)]);

    // Numeric columns against a direct computation.
    for (name, i) in [
        ("age", 0),
        ("fnlwgt", 2),
        ("hours-per-week", 12),
        ("capital-gain", 10),
    ] {
        let xs: Vec<f64> = column(i).iter().map(|v| v.parse().unwrap()).collect();
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let num = p(name).numeric.clone().unwrap();
        assert!(
            (num.mean - mean).abs() < 1e-6 * mean.abs().max(1.0),
            "{name} mean {} vs {mean}",
            num.mean
        );
        assert!(
            (num.std - std).abs() < 1e-6 * std.max(1.0),
            "{name} std {} vs {std}",
            num.std
        );
        assert_eq!(
            num.min,
            xs.iter().cloned().fold(f64::INFINITY, f64::min),
            "{name} min"
        );
        assert_eq!(
            num.max,
            xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            "{name} max"
        );
        let mut distinct = xs.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        assert_eq!(p(name).distinct, distinct.len() as u64, "{name} distinct");
        assert_eq!(
            num.histogram.iter().map(|b| b.count).sum::<u64>(),
            xs.len() as u64,
            "{name} histogram"
        );
    }
    let education = column(3);
    let hs = education.iter().filter(|v| *v == "HS-grad").count() as u64;
    assert_eq!(p("education").top_values[0].value, "HS-grad");
    assert_eq!(p("education").top_values[0].count, hs);
    assert_eq!(p("education").distinct, 16);

    // The Parquet snapshot exists and is the recorded size.
    let data = app.store.head(&m.data.key).await.unwrap();
    assert_eq!(data.size, m.data.bytes);
    assert!(data.size > 0);
}

#[tokio::test]
async fn the_same_content_or_the_same_event_twice_is_still_only_v1() {
    let app = spawn_app().await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.data")).unwrap();
    let key = app.upload("adult", "adult.data", bytes.clone()).await;
    let event = app.blob_created(&key).await;
    let (s1, first) = app.invoke("DatasetIngest", &event).await;
    let (s2, again) = app.invoke("DatasetIngest", &event).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first["ReturnValue"]["version"], 1);
    assert_eq!(again["ReturnValue"]["version"], 1);
    assert_eq!(again["ReturnValue"]["duplicate"], true);
    let copy = app.ingest("adult", "adult-copy.csv", bytes).await;
    assert_eq!(
        (copy["version"].as_u64(), copy["duplicate"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(app.versions("adult").await, [1]);
    // Told once, however often the upload arrived (three times, as two files).
    let events = app.events("dataset.").await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["type"], "dataset.versioned");
    assert_eq!(event["id"], "dataset.versioned:adult:v1");
    assert_eq!(event["subject"], "datasets/adult/versions/1");
    assert_eq!(event["data"]["dataset"], "adult");
    assert_eq!(event["data"]["version"], 1);
    assert!(
        event["data"]["manifest_uri"]
            .as_str()
            .unwrap()
            .ends_with("datasets/adult/v1/manifest.json")
    );
}

#[tokio::test]
async fn adult_test_is_quarantined_with_reasons_by_column_and_count() {
    let app = spawn_app().await;
    app.adult_contract().await;
    let bytes = std::fs::read(sluice_tests::adult("adult.test")).unwrap();
    let ret = app.ingest("adult", "adult.test", bytes.clone()).await;
    assert_eq!(ret["status"], "quarantined", "{ret}");
    let report = app.report(&ret).await;
    let v = |rule: Rule| {
        report
            .validation
            .violations
            .iter()
            .find(|v| v.rule == rule)
            .unwrap_or_else(|| panic!("no {rule:?}"))
    };
    // The junk first line.
    let junk = v(Rule::ColumnCount);
    assert_eq!((junk.column.as_deref(), junk.count), (None, 1));
    assert_eq!(junk.examples[0].row, 1);
    assert_eq!(junk.examples[0].value, "|1x3 Cross validator");
    // Every label ends in a dot.
    let labels = v(Rule::LabelValues);
    assert_eq!(
        (labels.column.as_deref(), labels.count),
        (Some("income"), 16_281)
    );
    assert_eq!(labels.examples.len(), 10);
    assert_eq!(labels.examples[0].row, 2);
    assert!(
        labels.examples.iter().all(|e| e.value.ends_with('.')),
        "{:?}",
        labels.examples
    );
    assert_eq!(
        report.validation.violations.len(),
        2,
        "{:?}",
        report.validation.violations
    );
    // The copy is byte-identical; the original is untouched; no version was made.
    let copy = app
        .store
        .get(&report.copy.key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&copy[..], &bytes[..]);
    assert!(
        report.copy.key.as_str().starts_with("quarantine/adult/")
            && report.copy.key.as_str().ends_with("-adult.test")
    );
    assert_eq!(
        report.report_key.as_str(),
        format!("{}.report.json", report.copy.key)
    );
    let original = app
        .store
        .get(&report.source.key)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&original[..], &bytes[..]);
    assert!(app.versions("adult").await.is_empty());
    // Delivered again: the same report, no second copy.
    let again = app.ingest("adult", "adult.test", bytes).await;
    assert_eq!(
        (again["duplicate"].as_bool(), &again["report_key"]),
        (Some(true), &ret["report_key"])
    );
    let reports = app
        .store
        .list("quarantine/adult/")
        .await
        .unwrap()
        .iter()
        .filter(|m| m.key.as_str().ends_with(".report.json"))
        .count();
    assert_eq!(reports, 1);
}

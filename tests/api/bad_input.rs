//! Bad uploads are quarantined with a specific reason: never a panic, never a 500.

use serde_json::json;
use sluice_shared::dataset::validation::Rule;

use crate::helpers::{TestApp, spawn_app};

async fn app() -> TestApp {
    let app = spawn_app().await;
    app.put_contract(json!({
        "dataset": "people",
        "csv": {"has_header": true, "null_tokens": ["NA"]},
        "columns": [
            {"name": "name", "type": "string"},
            {"name": "age", "type": "integer", "min": 0, "max": 130},
            {"name": "score", "type": "float"}
        ],
        "min_rows": 1
    }))
    .await;
    app
}

async fn rules_for(app: &TestApp, name: &str, bytes: &[u8]) -> Vec<(Option<String>, Rule, u64)> {
    let ret = app.ingest("people", name, bytes.to_vec()).await;
    assert_eq!(ret["status"], "quarantined", "{name}: {ret}");
    let report = app.report(&ret).await;
    assert!(!report.validation.passed);
    report
        .validation
        .violations
        .iter()
        .map(|v| (v.column.clone(), v.rule, v.count))
        .collect()
}

#[tokio::test]
async fn good_csv_with_bom_crlf_and_quotes_is_accepted() {
    let app = app().await;
    let ret = app
        .ingest(
            "people",
            "ok.csv",
            b"\xEF\xBB\xBFname,age,score\r\n\"Smith, Ann\",41,1.5\r\nBo,NA,\r\n".to_vec(),
        )
        .await;
    assert_eq!(ret["status"], "versioned", "{ret}");
    let m = app.manifest("people", 1).await;
    assert_eq!(m.rows, 2);
    let name = m.profile.iter().find(|p| p.name == "name").unwrap();
    assert_eq!(name.top_values[0].value, "Bo");
    assert!(name.top_values.iter().any(|v| v.value == "Smith, Ann"));
    assert_eq!(m.profile.iter().find(|p| p.name == "age").unwrap().nulls, 1);
}

#[tokio::test]
async fn each_kind_of_bad_file_names_its_rule() {
    let app = app().await;
    // (file name, bytes, expected (column, rule, count) violations)
    type Case = (
        &'static str,
        Vec<u8>,
        Vec<(Option<&'static str>, Rule, u64)>,
    );
    let cases: Vec<Case> = vec![
        ("empty.csv", vec![], vec![(None, Rule::EmptyFile, 0)]),
        (
            "header-only.csv",
            b"name,age,score\n".to_vec(),
            vec![(None, Rule::MinRows, 0)],
        ),
        (
            "ragged.csv",
            b"name,age,score\nann,1,2\nbo,3\ncy,4,5,6\n".to_vec(),
            vec![(None, Rule::ColumnCount, 2)],
        ),
        (
            "semicolons.csv",
            b"name;age;score\nann;1;2\n".to_vec(),
            vec![(None, Rule::ColumnCount, 1), (None, Rule::Header, 1)],
        ),
        (
            "latin1.csv",
            b"name,age,score\nJos\xe9,1,2\n".to_vec(),
            vec![(Some("name"), Rule::Encoding, 1)],
        ),
        (
            "types.csv",
            b"name,age,score\nann,old,2\nbo,200,x\n".to_vec(),
            vec![
                (Some("age"), Rule::Range, 1),
                (Some("age"), Rule::Type, 1),
                (Some("score"), Rule::Type, 1),
            ],
        ),
    ];
    for (name, bytes, expected) in cases {
        let mut got = rules_for(&app, name, &bytes).await;
        let mut expected: Vec<_> = expected
            .into_iter()
            .map(|(c, r, n)| (c.map(str::to_owned), r, n))
            .collect();
        got.sort_by_key(|v| (v.0.clone(), v.1));
        expected.sort_by_key(|v| (v.0.clone(), v.1));
        assert_eq!(got, expected, "{name}");
    }
}

#[tokio::test]
async fn binary_garbage_is_quarantined_not_a_500() {
    let app = app().await;
    let garbage: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let rules: Vec<Rule> = rules_for(&app, "garbage.bin", &garbage)
        .await
        .into_iter()
        .map(|v| v.1)
        .collect();
    assert!(
        rules.contains(&Rule::ColumnCount)
            || rules.contains(&Rule::Encoding)
            || rules.contains(&Rule::Header),
        "{rules:?}"
    );
}

#[tokio::test]
async fn a_wrong_delimiter_is_explained() {
    let app = app().await;
    let ret = app
        .ingest("people", "semi.csv", b"name,age,score\nann;1;2\n".to_vec())
        .await;
    let report = app.report(&ret).await;
    let v = &report.validation.violations[0];
    assert_eq!(v.rule, Rule::ColumnCount);
    assert!(v.message.contains("';'"), "{}", v.message);
    assert_eq!(
        (v.examples[0].row, v.examples[0].value.as_str()),
        (2, "ann;1;2")
    );
}

#[tokio::test]
async fn a_dataset_without_a_contract_gets_one_inferred_and_stored() {
    let app = spawn_app().await;
    let ret = app
        .ingest(
            "fresh",
            "first.csv",
            b"city,temp\nOslo,3.5\nRome,19\n".to_vec(),
        )
        .await;
    assert_eq!(ret["status"], "versioned", "{ret}");
    let m = app.manifest("fresh", 1).await;
    assert!(m.contract_inferred);
    assert_eq!(m.contract_version, 1);
    let kinds: Vec<_> = m
        .schema
        .iter()
        .map(|f| (f.name.as_str(), format!("{:?}", f.kind)))
        .collect();
    assert_eq!(
        kinds,
        [("city", "String".to_owned()), ("temp", "Float".to_owned())]
    );
    let stored = sluice_shared::dataset::Contracts::new(app.store.clone())
        .current(&sluice_shared::dataset::DatasetName::parse("fresh").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.inferred);
    // The next upload is held to it.
    let bad = app
        .ingest("fresh", "second.csv", b"city,temp\nOslo,warm\n".to_vec())
        .await;
    assert_eq!(bad["status"], "quarantined");
}

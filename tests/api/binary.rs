//! The real `sluice` binary: custom-handler mode as the host starts it, and the
//! embedded default (`sluice dev`) with the people-facing CLI.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use sluice_tests::{ChildGuard, sluice_bin};

#[tokio::test]
async fn serve_listens_where_the_host_says_and_answers_invocations() {
    let root = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(sluice_bin())
        .args(["serve", "--port", "1"])
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("SLUICE_STORAGE__ROOT", root.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _guard = ChildGuard(child);
    assert_eq!(line.trim(), format!("listening on http://127.0.0.1:{port}"));
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        reqwest::get(format!("{base}/")).await.unwrap().status(),
        200
    );
    // An upload written by someone else, announced by Event Grid.
    std::fs::create_dir_all(root.path().join("landing/t")).unwrap();
    std::fs::write(root.path().join("landing/t/a.csv"), "k,v\nx,1\n").unwrap();
    let url = url::Url::from_file_path(root.path().canonicalize().unwrap().join("landing/t/a.csv"))
        .unwrap();
    let mut event =
        sluice_tests::fixture("eventgrid/Microsoft.Storage.BlobCreated.eventgrid.json")[0].clone();
    event["data"]["url"] = json!(url.as_str());
    let r = reqwest::Client::new()
        .post(format!("{base}/DatasetIngest"))
        .json(&json!({"Data": {"event": event}, "Metadata": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["ReturnValue"]["status"], "versioned", "{body}");
    assert!(root.path().join("datasets/t/v1/data.parquet").exists());
}

#[test]
fn dev_ingests_pushed_files_and_the_cli_shows_them() {
    let root = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(sluice_bin())
            .args(["--root", root.path().to_str().unwrap()])
            .args(args)
            .current_dir(sluice_tests::repo_root())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data = format!("adult={}", sluice_tests::adult("adult.data").display());
    let test = format!("adult={}", sluice_tests::adult("adult.test").display());
    let (ok, out, err) = run(&["dev", "--exit-when-idle", "--push", &data, "--push", &test]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("stored contract adult v1"), "{out}");
    assert!(out.contains("✓ adult v1: 32561 rows"), "{out}");
    assert!(out.contains("✗ adult quarantined"), "{out}");
    assert!(out.contains("income label_values"), "{out}");
    // A restart sees nothing new: deliveries are remembered.
    let (ok, out, _) = run(&["dev", "--exit-when-idle"]);
    assert!(ok && !out.contains("new upload"), "{out}");
    let (ok, out, _) = run(&["datasets", "list"]);
    assert!(
        ok && out.contains("adult")
            && out.contains("32561 rows")
            && out.contains("1 upload(s) in quarantine"),
        "{out}"
    );
    let (ok, out, _) = run(&["datasets", "show", "adult@1"]);
    assert!(
        ok && out.contains("workclass") && out.contains("1836"),
        "{out}"
    );
    // Pushing the same content again waits for (and finds) the existing version.
    let (ok, out, err) = run(&[
        "datasets",
        "push",
        sluice_tests::adult("adult.data").to_str().unwrap(),
        "--dataset",
        "adult",
        "--timeout",
        "5",
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("✓ adult v1"), "{out}");
}

/// The README's run command, twice, on two stores sharing one scratch folder: each runs
/// the whole loop to production (job folders are per store, so the same run id in two
/// stores is two jobs).
#[test]
fn dev_runs_the_whole_loop_in_each_store() {
    let scratch = tempfile::tempdir().unwrap();
    let adult = sluice_tests::adult("adult.data");
    let test = sluice_tests::adult("adult.test");
    for _ in 0..2 {
        let root = tempfile::tempdir().unwrap();
        let output = Command::new(sluice_bin())
            .current_dir(sluice_tests::repo_root())
            .arg("--root")
            .arg(root.path())
            .arg("--scratch-dir")
            .arg(scratch.path())
            .args(["dev", "--exit-when-idle", "--port", "0", "--push"])
            .arg(format!("adult={}", adult.display()))
            .arg("--push")
            .arg(format!("adult-eval={}", test.display()))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("registered model version 1"), "{stdout}");
        assert!(
            stdout.contains("released as staging.1, production.1"),
            "{stdout}"
        );
        let listed = Command::new(sluice_bin())
            .arg("--root")
            .arg(root.path())
            .args(["models", "list"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&listed.stdout).contains("production v1 (production.1)"));
        let verified = Command::new(sluice_bin())
            .arg("--root")
            .arg(root.path())
            .args(["audit", "verify"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&verified.stdout).contains("audit trail verified: 7 records"),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

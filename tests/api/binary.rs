//! The real `sluice` binary: custom-handler mode as the host starts it, and the
//! embedded default (`sluice dev`) with the people-facing CLI.

use std::io::{BufRead, BufReader};
use std::path::Path;
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
    let stores = tempfile::tempdir().unwrap();
    // The models folder holds the Adult config and one that cannot be stored (a metric
    // that does not fit its task): dev says so and trains the other.
    let models = tempfile::tempdir().unwrap();
    std::fs::copy(
        sluice_tests::repo_root().join("configs/adult-income.json"),
        models.path().join("adult-income.json"),
    )
    .unwrap();
    std::fs::write(
        models.path().join("broken.json"),
        r#"{"model": "broken", "dataset": "adult", "label": "age", "task": "regression",
            "promotion": {"metric": "roc_auc"}}"#,
    )
    .unwrap();
    // Two stores side by side, then the first wiped and built again: its run has the same
    // id as before and must train again, not find the earlier job's leftovers.
    for name in ["a", "b", "a"] {
        let root = stores.path().join(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let stdout = sluice_tests::sluice_run(
            &root,
            scratch.path(),
            [
                "dev".as_ref(),
                "--exit-when-idle".as_ref(),
                "--port".as_ref(),
                "0".as_ref(),
                "--configs".as_ref(),
                models.path().as_os_str(),
                "--push".as_ref(),
                format!("adult={}", adult.display()).as_ref(),
                "--push".as_ref(),
                format!("adult-eval={}", test.display()).as_ref(),
            ],
        );
        assert!(
            stdout.contains("broken.json skipped: invalid training config: promotion.metric"),
            "{stdout}"
        );
        assert!(stdout.contains("registered model version 1"), "{stdout}");
        assert!(
            stdout.contains("released as staging.1, production.1"),
            "{stdout}"
        );
        let cli = |args: &[&str]| {
            let out = sluice_tests::sluice_cli(&root, args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let listed = cli(&["models", "list"]);
        assert!(listed.contains("production v1 (production.1)"), "{listed}");
        // The same answers as the HTTP API's, from the same queries.
        let lineage = cli(&["models", "lineage", "adult-income@1"]);
        for line in [
            "model     adult-income@1",
            "algorithm logistic_regression (binary) seed 42",
            "data      adult@1",
            "holdout   6512 rows of adult@1 kept by the run",
            "released  production.1",
        ] {
            assert!(lineage.contains(line), "{line:?} in {lineage}");
        }
        let shown: serde_json::Value =
            serde_json::from_str(&cli(&["models", "show", "adult-income"])).unwrap();
        assert_eq!(shown["versions"], serde_json::json!([1]));
        assert_eq!(shown["releases"][1]["id"], "production.1");
        let verified = sluice_tests::sluice_cli(&root, &["audit", "verify"]);
        assert!(
            String::from_utf8_lossy(&verified.stdout).contains("audit trail verified: 12 records"),
            "{}",
            String::from_utf8_lossy(&verified.stdout)
        );
    }
}

/// `sluice package` writes the Functions layout: host.json, one folder per served
/// function with its function.json (as in the repository), the executable (mode 755) and
/// ONNX Runtime beside it.
#[test]
fn the_package_zip_has_the_functions_layout() {
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("app.zip");
    let out = Command::new(sluice_bin())
        .args(["package", "--output"])
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Unpacked by Python's zipfile, as a deployment tool would, not by the writer's crate.
    let listing = Command::new("python3")
        .args([
            "-c",
            "import json, sys, zipfile, hashlib\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             assert z.testzip() is None\n\
             print(json.dumps({i.filename: [i.external_attr >> 16 & 0o777, \
             hashlib.sha256(z.read(i)).hexdigest()] for i in z.infolist()}))",
        ])
        .arg(&zip)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    let entries: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&listing.stdout).unwrap();
    let sha = |bytes: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(bytes))
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut expected = vec![
        "host.json".to_owned(),
        "sluice".into(),
        "libonnxruntime.so.1.32.0".into(),
    ];
    for function in sluice::host::startup::FUNCTIONS {
        let name = format!("{function}/function.json");
        let file = std::fs::read(root.join("functions").join(&name)).unwrap();
        assert_eq!(
            entries[&name][1],
            sha(&file),
            "{name} differs from the repository's"
        );
        expected.push(name);
    }
    let mut names: Vec<String> = entries.keys().cloned().collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
    let host = std::fs::read(root.join("host.json")).unwrap();
    assert_eq!(entries["host.json"][1], sha(&host));
    assert_eq!(entries["sluice"][0], 0o755);
    assert_eq!(
        entries["sluice"][1],
        sha(&std::fs::read(sluice_bin()).unwrap())
    );
    assert_eq!(entries["libonnxruntime.so.1.32.0"][0], 0o755);
    // host.json starts the packaged executable.
    let host: serde_json::Value = serde_json::from_slice(&host).unwrap();
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "sluice"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
}

/// The deployment's smoke test (`infra/smoke.sh`), run against the real binary as the
/// pipelines run it against staging: it passes with the scoring key and fails without.
#[test]
fn the_smoke_test_passes_against_a_served_sluice_and_fails_with_a_wrong_key() {
    sluice_tests::onnxruntime(); // serve finds ONNX Runtime in the setup folder
    let root = tempfile::tempdir().unwrap();
    let (_guard, base) = serve(root.path(), &[("SLUICE_SCORING_KEYS", "smoke-scoring-key")]);
    let smoke = |key: &str| {
        Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/smoke.sh"))
            .arg(&base)
            .env("SLUICE_SMOKE_KEY", key)
            .env("SLUICE_SMOKE_WAIT", "20")
            .output()
            .unwrap()
    };
    let passed = smoke("smoke-scoring-key");
    let said = String::from_utf8_lossy(&passed.stdout).into_owned()
        + &String::from_utf8_lossy(&passed.stderr);
    assert!(passed.status.success(), "{said}");
    assert!(
        said.contains("smoke: health ok") && said.contains("guarded and routed"),
        "{said}"
    );
    let failed = smoke("not-the-key");
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("answered 401, not 404"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
}

/// With `SLUICE_OTLP_ENDPOINT` set, the invocation spans reach an OTLP/HTTP collector
/// (here a stand-in that keeps what it receives), as protobuf.
#[tokio::test]
async fn traces_are_exported_over_otlp_when_an_endpoint_is_set() {
    use std::sync::{Arc, Mutex};
    /// What the collector received: (content type, body) per request.
    type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;
    let received: Received = Arc::default();
    let kept = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let kept = kept.clone();
                async move {
                    let kind = headers
                        .get("content-type")
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default();
                    kept.lock().unwrap().push((kind, body.to_vec()));
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await });

    let root = tempfile::tempdir().unwrap();
    let (_guard, base) = serve(
        root.path(),
        &[
            ("SLUICE_OTLP_ENDPOINT", &endpoint),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let message = json!({"Data": {"message": {"model": "m"}}, "Metadata": {"MessageId": "\"otlp-1\"", "DeliveryCount": "1"}});
    let answer = reqwest::Client::new()
        .post(format!("{base}/RetrainQueue"))
        .json(&message)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        {
            let got = received.lock().unwrap();
            let exported = got.iter().find(|(_, body)| {
                let text = String::from_utf8_lossy(body);
                text.contains("invocation") && text.contains("RetrainQueue")
            });
            if let Some((kind, _)) = exported {
                assert_eq!(kind, "application/x-protobuf");
                break;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no invocation span reached the collector"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// SIGTERM (how the Functions host and `docker stop` end a worker) ends `sluice serve`
/// after its HTTP threads finish, and ends `sluice dev`, not just its HTTP server.
#[tokio::test]
async fn serve_and_dev_end_on_sigterm() {
    let root = tempfile::tempdir().unwrap();
    let (mut served, base) = serve(root.path(), &[]);
    let ready = reqwest::get(format!("{base}/")).await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(terminate(&mut served.0).success());
    let mut dev = Command::new(sluice_bin())
        .args([
            "--root",
            &root.path().display().to_string(),
            "dev",
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    for line in lines.by_ref() {
        if line.unwrap().starts_with("watching") {
            break;
        }
    }
    // Keep reading what it prints (the events it tells), as a terminal would.
    std::thread::spawn(move || lines.for_each(drop));
    let mut dev = ChildGuard(dev);
    assert!(terminate(&mut dev.0).success());
}

/// Sends SIGTERM and waits (at most 20 s) for the process to end.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `sluice serve` on a free port with a local store at `root` and `env`; the guard stops
/// it. Returns the base URL it listens on.
fn serve(root: &Path, env: &[(&str, &str)]) -> (ChildGuard, String) {
    let mut command = Command::new(sluice_bin());
    command
        .args(["serve", "--port", "0"])
        .env("SLUICE_STORAGE__ROOT", root)
        .stdout(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().trim_start_matches("listening on ").to_owned();
    (ChildGuard(child), base)
}

/// The prediction log survives a graceful stop: what `sluice dev` and `sluice serve`
/// logged and had not yet written (their flush is every 30 s) is written when SIGTERM
/// ends them.
#[tokio::test]
async fn the_prediction_log_is_written_when_dev_or_serve_stops() {
    let app = crate::helpers::adult_in_production().await;
    let root = app.root().display().to_string();
    let configs = tempfile::tempdir().unwrap();
    let mut config = crate::helpers::config();
    config["prediction_log"] = json!({"sample": 1.0});
    std::fs::write(configs.path().join("adult-income.json"), config.to_string()).unwrap();
    let contracts = tempfile::tempdir().unwrap();
    let (records, _) = crate::helpers::records(&app, &[0, 1, 2]);
    let keys = [
        ("SLUICE_ADMIN_KEYS", crate::helpers::ADMIN_KEY),
        ("SLUICE_SCORING_KEYS", crate::helpers::SCORING_KEY),
    ];
    let score = |base: String, rows: usize| {
        let body = json!({ "data": records[..rows] });
        async move {
            let answer = reqwest::Client::new()
                .post(format!("{base}/api/score/adult-income"))
                .header("x-functions-key", crate::helpers::SCORING_KEY)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
        }
    };
    let logged = || -> Vec<std::path::PathBuf> {
        let dir = app.root().join("predictions/adult-income");
        let mut files = Vec::new();
        for day in std::fs::read_dir(&dir).into_iter().flatten() {
            for f in std::fs::read_dir(day.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        files
    };

    // Nothing for the dev host to ingest (and so nothing to train) meanwhile.
    std::fs::remove_dir_all(app.root().join("landing")).unwrap();
    let mut command = Command::new(sluice_bin());
    command
        .args(["--root", &root, "dev", "--port", "0", "--configs"])
        .arg(configs.path())
        .arg("--contracts")
        .arg(contracts.path())
        .stdout(Stdio::piped());
    for (k, v) in keys {
        command.env(k, v);
    }
    let mut dev = command.spawn().unwrap();
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut base = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("HTTP functions on ") {
            base = Some(url.trim_end_matches("/api/").to_owned());
        }
        if line.starts_with("watching") {
            break;
        }
    }
    let mut dev = ChildGuard(dev);
    score(base.expect("dev serves HTTP"), 3).await;
    assert!(logged().is_empty(), "not written before the stop");
    assert!(terminate(&mut dev.0).success());
    let said: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(logged().len(), 1, "written at the stop: {said:?}");

    let (mut served, base) = serve(app.root(), &keys);
    score(base, 2).await;
    assert!(terminate(&mut served.0).success());
    assert_eq!(logged().len(), 2, "serve writes its own at the stop");
}

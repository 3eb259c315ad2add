//! The deployment, checked as far as this machine allows: every `.bicep` file parses
//! (pycep-parser), checkov passes on `infra/` and the pipelines with every skip
//! explained and used, the workflows pass actionlint and yamllint, and the settings the
//! template gives the app are the ones Sluice reads (README and local.settings.sample
//! agree).
//!
//! The tools come from PyPI, pinned in `tests/python-tools.txt` (see
//! [`sluice_tests::python_tools`]). The Dockerfiles of the Azure ML environments are
//! checked by checkov too, and their environment definitions by yamllint and against
//! the files they name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    sluice_tests::repo_root()
}

/// The files under `under` (recursively) whose names end with `suffix`, sorted.
fn files(under: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(under).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path, suffix));
        } else if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(suffix))
        {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn run(program: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{program:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn every_bicep_file_parses() {
    let bin = sluice_tests::python_tools();
    let bicep = files(&repo().join("infra"), ".bicep");
    assert!(bicep.len() >= 10, "main.bicep and its modules: {bicep:?}");
    let script = "import sys\nfrom pathlib import Path\nfrom pycep import BicepParser\n\
                  p = BicepParser()\nfor f in sys.argv[1:]:\n    p.parse(file_path=Path(f))\n";
    let mut args = vec!["-c", script];
    let names: Vec<String> = bicep.iter().map(|p| p.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    let (ok, out) = run(&bin.join("python"), &args);
    assert!(ok, "{out}");
    // Every module is used by main.bicep, and main.bicep names only modules that exist.
    let main = std::fs::read_to_string(repo().join("infra/main.bicep")).unwrap();
    for module in files(&repo().join("infra/modules"), ".bicep") {
        let name = module.file_name().unwrap().to_string_lossy();
        assert!(
            main.contains(&format!("'modules/{name}'")),
            "{name} is not used"
        );
    }
}

/// `checkov:skip=<ID>: <reason>` annotations per file (relative to `dir`) in `files`.
fn skips(dir: &Path, files: &[PathBuf]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for line in text.lines() {
            let Some((_, skip)) = line.split_once("checkov:skip=") else {
                continue;
            };
            let (id, reason) = skip.split_once(':').unwrap_or((skip, ""));
            assert!(
                reason.trim().len() >= 20,
                "{file:?}: the skip of {id} needs a reason: {line}"
            );
            let relative = format!("/{}", file.strip_prefix(dir).unwrap().display());
            *out.entry((id.trim().to_owned(), relative)).or_default() += 1;
        }
    }
    out
}

fn checkov(bin: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--output", "json", "--skip-download"];
    all.extend(args);
    let (_, out) = run(&bin.join("checkov"), &all);
    // checkov prints warnings (it cannot reach its guideline service offline) before the JSON.
    let json = &out[out
        .find('{')
        .unwrap_or_else(|| panic!("no JSON from checkov: {out}"))..];
    let end = json.rfind('}').unwrap();
    serde_json::from_str(&json[..=end]).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs checkov on `dir` for `framework`; asserts nothing failed and that the skips it
/// applied are exactly the ones written in `annotated` (each with its reason).
fn checkov_clean(bin: &Path, dir: &str, framework: &str, annotated: &[PathBuf]) -> Value {
    let report = checkov(bin, &["-d", dir, "--framework", framework]);
    let summary = &report["summary"];
    assert_eq!(
        summary["failed"], 0,
        "checkov {framework} on {dir}: {:#}",
        report["results"]["failed_checks"]
    );
    assert_eq!(summary["parsing_errors"], 0, "{report:#}");
    assert!(
        summary["passed"].as_u64().unwrap() > 0,
        "{dir}: nothing checked"
    );
    let mut used: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let key = (
            s["check_id"].as_str().unwrap().to_owned(),
            s["file_path"].as_str().unwrap().to_owned(),
        );
        *used.entry(key).or_default() += 1;
    }
    assert_eq!(
        used,
        skips(&repo().join(dir), annotated),
        "{dir}: skips checkov applied vs skips written"
    );
    report
}

#[test]
fn checkov_passes_on_infra_the_pipelines_and_the_images_and_every_skip_is_explained_and_used() {
    let bin = sluice_tests::python_tools();
    let infra = checkov_clean(
        &bin,
        "infra",
        "bicep",
        &files(&repo().join("infra"), ".bicep"),
    );
    assert!(infra["summary"]["passed"].as_u64().unwrap() >= 30);
    checkov_clean(&bin, ".github", "github_actions", &[]);
    let pipelines = checkov(
        &bin,
        &[
            "-f",
            "azure-pipelines.yml",
            "--framework",
            "azure_pipelines",
        ],
    );
    assert_eq!(pipelines["summary"]["failed"], 0, "{pipelines:#}");
    assert!(pipelines["summary"]["passed"].as_u64().unwrap() > 0);
    for dir in ["infra/azureml", "examples"] {
        let images = files(&repo().join(dir), "Dockerfile");
        assert!(!images.is_empty(), "{dir} has a Dockerfile");
        checkov_clean(&bin, dir, "dockerfile", &images);
    }
}

/// The Azure ML environment definitions: valid YAML, named as the training configs name
/// them, and their build context and Dockerfile exist.
#[test]
fn the_azure_ml_environments_name_files_that_exist() {
    let bin = sluice_tests::python_tools();
    let environments = [
        (
            "infra/azureml/sluice-trainer/environment.yml",
            "sluice-trainer",
        ),
        (
            "examples/pytorch-trainer/environment.yml",
            "sluice-pytorch-trainer",
        ),
        (
            "examples/sklearn-trainer/environment.yml",
            "sluice-sklearn-trainer",
        ),
    ];
    for (file, name) in environments {
        let (ok, out) = run(
            &bin.join("yamllint"),
            &["--strict", "-c", ".yamllint.yml", file],
        );
        assert!(ok, "{file}: {out}");
        let (ok, out) = run(
            &bin.join("python"),
            &[
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
                file,
            ],
        );
        assert!(ok, "{out}");
        let env: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(env["name"], name, "{file}");
        assert_eq!(env["version"], "1", "{file}");
        let context = repo()
            .join(file)
            .parent()
            .unwrap()
            .join(env["build"]["path"].as_str().unwrap());
        let dockerfile = context.join(env["build"]["dockerfile_path"].as_str().unwrap());
        assert!(dockerfile.is_file(), "{file}: {dockerfile:?}");
        // What the image copies is in its build context.
        for line in std::fs::read_to_string(&dockerfile).unwrap().lines() {
            // Copies from an earlier stage are not from the context.
            let Some(copy) = line
                .strip_prefix("COPY ")
                .filter(|c| !c.contains("--from="))
            else {
                continue;
            };
            let parts: Vec<&str> = copy
                .split_whitespace()
                .filter(|p| !p.starts_with("--"))
                .collect();
            for source in &parts[..parts.len() - 1] {
                assert!(
                    context.join(source).exists(),
                    "{dockerfile:?}: COPY {source}"
                );
            }
        }
    }
    // The configs point at these environments.
    let reference: Value =
        serde_json::from_slice(&std::fs::read(repo().join("configs/adult-income.json")).unwrap())
            .unwrap();
    assert_eq!(
        reference["compute"]["environment"],
        "azureml:sluice-trainer:1"
    );
    let pytorch: Value = serde_json::from_slice(
        &std::fs::read(repo().join("examples/pytorch-trainer/adult-income-pytorch.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        pytorch["compute"]["environment"],
        "azureml:sluice-pytorch-trainer:1"
    );
    sluice_shared::training::TrainingConfig::from_json(pytorch.to_string().as_bytes()).unwrap();
    let sklearn =
        std::fs::read(repo().join("examples/sklearn-trainer/iris-species-sklearn.json")).unwrap();
    let sklearn = sluice_shared::training::TrainingConfig::from_json(&sklearn).unwrap();
    assert_eq!(
        sklearn.compute.environment,
        "azureml:sluice-sklearn-trainer:1"
    );
}

#[test]
fn the_workflows_and_pipelines_pass_actionlint_and_yamllint() {
    let bin = sluice_tests::python_tools();
    let workflows = files(&repo().join(".github/workflows"), ".yml");
    assert!(workflows.len() >= 2, "ci and deploy: {workflows:?}");
    let names: Vec<String> = workflows.iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let (ok, out) = run(&bin.join("actionlint"), &args);
    assert!(ok, "actionlint: {out}");
    let mut yaml = vec![
        "--strict",
        "-c",
        ".yamllint.yml",
        "azure-pipelines.yml",
        ".yamllint.yml",
    ];
    yaml.extend(args);
    let (ok, out) = run(&bin.join("yamllint"), &yaml);
    assert!(ok, "yamllint: {out}");
}

/// `SLUICE_…` names in text: the settings Sluice itself reads.
fn sluice_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("SLUICE_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        out.insert(name.trim_end_matches('_').to_owned());
    }
    out
}

#[test]
fn the_template_readme_and_local_settings_name_the_settings_sluice_reads() {
    use clap::CommandFactory;
    // What the binary reads: its flags' environment variables, plus the few read directly.
    let mut read: BTreeSet<String> = sluice::cli::Cli::command()
        .get_subcommands()
        .flat_map(|c| c.get_arguments().cloned().collect::<Vec<_>>())
        .chain(sluice::cli::Cli::command().get_arguments().cloned())
        .filter_map(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
        .filter(|e| e.starts_with("SLUICE_"))
        .collect();
    // …and the webhooks' settings, `SLUICE_WEBHOOK__<NAME>__…`, found by their prefix.
    read.extend(
        [
            "SLUICE_LOG_FORMAT",
            "SLUICE_PYTHON",
            "SLUICE_WEBHOOK",
            sluice::otlp::ENDPOINT,
        ]
        .map(String::from),
    );

    let template = sluice_names(
        &std::fs::read_to_string(repo().join("infra/modules/functionapp.bicep")).unwrap(),
    );
    let unknown: Vec<_> = template.difference(&read).collect();
    assert!(
        unknown.is_empty(),
        "the template sets settings Sluice does not read: {unknown:?}"
    );
    for needed in [
        "SLUICE_STORAGE__KIND",
        "SLUICE_STORAGE__ACCOUNT_URL",
        "SLUICE_ADMIN_KEYS",
        "SLUICE_SCORING_KEYS",
        "SLUICE_COMPUTE",
    ] {
        assert!(
            template.contains(needed),
            "the template does not set {needed}"
        );
    }

    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let table: String = readme
        .lines()
        .skip_while(|l| !l.starts_with("| setting | flag"))
        .take_while(|l| l.starts_with('|'))
        .collect::<Vec<_>>()
        .join("\n");
    // The table abbreviates `SLUICE_AZUREML__SUBSCRIPTION_ID`, `__RESOURCE_GROUP`, ….
    let mut documented = sluice_names(&table);
    for short in ["RESOURCE_GROUP", "WORKSPACE"] {
        if table.contains(&format!("`__{short}`")) {
            documented.insert(format!("SLUICE_AZUREML__{short}"));
        }
    }
    assert_eq!(
        documented, read,
        "the README's configuration table vs what Sluice reads"
    );

    let sample: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("local.settings.sample")).unwrap(),
    )
    .unwrap();
    let local: BTreeSet<String> = sample["Values"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with("SLUICE_"))
        .cloned()
        .collect();
    let unknown: Vec<_> = local.difference(&read).collect();
    assert!(
        unknown.is_empty(),
        "local.settings.sample names settings Sluice does not read: {unknown:?}"
    );
    // Everything the template sets, except what only exists in Azure, has a local value.
    let azure_only = [
        "SLUICE_STORAGE__ACCOUNT_URL",
        "SLUICE_STORAGE__CLIENT_ID",
        "SLUICE_AZUREML__SUBSCRIPTION_ID",
        "SLUICE_AZUREML__RESOURCE_GROUP",
        "SLUICE_AZUREML__WORKSPACE",
        "SLUICE_AZUREML__DATASTORE",
        "SLUICE_AZUREML__CLIENT_ID",
        "SLUICE_DATABRICKS__HOST",
        "SLUICE_DATABRICKS__STORAGE_ROOT",
        "SLUICE_DATABRICKS__CLIENT_ID",
        // One group per webhook, and none unless some are registered.
        "SLUICE_WEBHOOK",
    ];
    for name in &template {
        assert!(
            local.contains(name) || azure_only.contains(&name.as_str()),
            "local.settings.sample has no local value for {name}"
        );
    }
}

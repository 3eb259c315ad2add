//! The deployment, checked as far as this machine allows: every `.bicep` file parses
//! (pycep-parser), checkov passes on `infra/` and the pipelines with every skip
//! explained and used, the workflows pass actionlint and yamllint, and the settings the
//! template gives the app are the ones Sluice reads (README and local.settings.sample
//! agree).
//!
//! The tools come from PyPI, pinned in `infra/checks/requirements.txt`, installed into a
//! cache venv the first time (one process installs, the others wait on a file lock).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// The venv holding the pinned tools, keyed by the requirements' hash.
fn tools() -> PathBuf {
    use sha2::Digest;
    let requirements = repo().join("infra/checks/requirements.txt");
    let pins = std::fs::read(&requirements).unwrap();
    let hash = hex::encode(&sha2::Sha256::digest(&pins)[..6]);
    let root = std::env::var_os("SLUICE_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/sluice-tools")
        });
    std::fs::create_dir_all(&root).unwrap();
    let venv = root.join(format!("venv-{hash}"));
    let lock = std::fs::File::create(root.join(".install.lock")).unwrap();
    lock.lock().unwrap();
    if !venv.join(".complete").exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let python = std::env::var("SLUICE_PYTHON").unwrap_or_else(|_| "python3".into());
        let made = Command::new(&python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the deployment checks");
        assert!(made.success(), "python3 -m venv failed");
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .unwrap();
        assert!(
            installed.success(),
            "pip install -r {requirements:?} failed"
        );
        std::fs::write(venv.join(".complete"), &pins).unwrap();
    }
    venv.join("bin")
}

fn files(under: &Path, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(under).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path, extension));
        } else if path.extension().is_some_and(|e| e == extension) {
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
    let bin = tools();
    let bicep = files(&repo().join("infra"), "bicep");
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
    for module in files(&repo().join("infra/modules"), "bicep") {
        let name = module.file_name().unwrap().to_string_lossy();
        assert!(
            main.contains(&format!("'modules/{name}'")),
            "{name} is not used"
        );
    }
}

/// `checkov:skip=<ID>: <reason>` annotations per file (relative to `dir`).
fn skips(dir: &Path) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for file in files(dir, "bicep") {
        let text = std::fs::read_to_string(&file).unwrap();
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

#[test]
fn checkov_passes_on_infra_and_the_pipelines_and_every_skip_is_explained_and_used() {
    let bin = tools();
    let infra = checkov(&bin, &["-d", "infra", "--framework", "bicep"]);
    let failed = &infra["results"]["failed_checks"];
    assert_eq!(
        infra["summary"]["failed"], 0,
        "checkov on infra/: {:#}",
        failed
    );
    assert_eq!(infra["summary"]["parsing_errors"], 0, "{infra:#}");
    assert!(infra["summary"]["passed"].as_u64().unwrap() >= 30);
    let mut used: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in infra["results"]["skipped_checks"].as_array().unwrap() {
        let key = (
            s["check_id"].as_str().unwrap().to_owned(),
            s["file_path"].as_str().unwrap().to_owned(),
        );
        *used.entry(key).or_default() += 1;
    }
    assert_eq!(
        used,
        skips(&repo().join("infra")),
        "skips checkov applied vs skips written in infra/"
    );

    let actions = checkov(&bin, &["-d", ".github", "--framework", "github_actions"]);
    assert_eq!(actions["summary"]["failed"], 0, "{actions:#}");
    assert_eq!(actions["summary"]["skipped"], 0, "{actions:#}");
    assert!(actions["summary"]["passed"].as_u64().unwrap() > 0);
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
}

#[test]
fn the_workflows_and_pipelines_pass_actionlint_and_yamllint() {
    let bin = tools();
    let workflows = files(&repo().join(".github/workflows"), "yml");
    assert!(workflows.len() >= 2, "ci and deploy: {workflows:?}");
    let names: Vec<String> = workflows.iter().map(|p| p.display().to_string()).collect();
    let args: Vec<&str> = names.iter().map(String::as_str).collect();
    let (ok, out) = run(&bin.join("actionlint"), &args);
    assert!(ok, "actionlint: {out}");
    let mut yaml = vec!["--strict", "-c", ".yamllint.yml", "azure-pipelines.yml"];
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
    read.extend(["SLUICE_LOG_FORMAT", "SLUICE_PYTHON"].map(String::from));

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
    ];
    for name in &template {
        assert!(
            local.contains(name) || azure_only.contains(&name.as_str()),
            "local.settings.sample has no local value for {name}"
        );
    }
}

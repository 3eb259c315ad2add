"""The training benchmark: Sluice's reference trainer (`sluice train`) beside
scikit-learn (`LogisticRegression` / `Ridge` behind the same preprocessing) on the same
rows, features and holdout, for each task, in the same run. Prints one table.

Usage: python train.py SLUICE_BIN STORE_ROOT SCRATCH  (tests/bench/train.sh sets it up)

Both sides fit the same model: standardised numbers (nulls take the training mean),
one-hot categories (the most frequent `max_categories`), the same L2 penalty (Sluice's
`l2` is scikit-learn's `1/C` for logistic regression and `alpha` for ridge), trained on
the rows Sluice's trainer did not hold out (its `holdout.json`) and measured on the rows
it did. Times are given twice. The fit: Sluice's from its trainer's log (fitting and
scoring the holdout, after encoding), scikit-learn's pipeline fit (preprocessing
included), after the data is in memory. The whole job: the `sluice train` process
(reading Parquet, fitting, writing the ONNX graph; the ONNX Runtime self-check is
skipped, `--no-verify`) against the scikit-learn example trainer's process
(`examples/sklearn-trainer/train.py`: the same job, exporting with skl2onnx; most of
its time is Python importing its libraries).
"""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# (task, dataset, label, columns left out, positive class)
CASES = [
    ("binary", "adult", "income", ["fnlwgt"], ">50K"),
    ("multiclass", "adult", "marital-status", ["fnlwgt", "relationship"], None),
    ("multiclass", "iris", "species", [], None),
    ("regression", "adult", "hours-per-week", ["fnlwgt"], None),
    ("regression", "diabetes", "progression", [], None),
]
METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
TRAINER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../examples/sklearn-trainer/train.py")


def sklearn_side(version: str, config: dict, holdout: list[int]) -> tuple[float, float, int, int]:
    manifest = json.load(open(os.path.join(version, "manifest.json")))
    kinds = {f["name"]: f["type"] for f in manifest["schema"]}
    label = config["label"]
    features = [n for n in kinds if n != label and n not in config["exclude"]]
    table = pq.read_table(os.path.join(version, "data.parquet"), columns=features + [label])
    numeric = [n for n in features if kinds[n] in ("integer", "float", "boolean")]
    text = [n for n in features if n not in numeric]
    frame = pd.DataFrame({n: table.column(n).to_numpy(zero_copy_only=False) for n in features})
    for n in numeric:
        frame[n] = frame[n].astype("float64")
    for n in text:
        frame[n] = frame[n].astype(object).where(frame[n].notna(), "")
    y = np.array(table.column(label).to_pylist(), dtype=object)
    held = np.zeros(len(y), dtype=bool)
    held[holdout] = True
    l2 = config["hyperparameters"]["l2"]
    parts = [("numbers", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), numeric)]
    if text:
        parts.append(("categories", OneHotEncoder(handle_unknown="ignore", max_categories=100), text))
    task = config["task"]
    model = Ridge(alpha=l2) if task == "regression" else LogisticRegression(C=1.0 / l2, max_iter=1000)
    pipeline = Pipeline([("features", ColumnTransformer(parts)), ("model", model)])
    target = y.astype(np.float64) if task == "regression" else y.astype(str)
    started = time.perf_counter()
    pipeline.fit(frame[~held], target[~held])
    seconds = time.perf_counter() - started
    test = frame[held]
    if task == "regression":
        value = float(np.sqrt(mean_squared_error(target[held], pipeline.predict(test))))
    elif task == "binary":
        positive = list(pipeline.classes_).index(config["positive"])
        value = float(roc_auc_score(target[held] == config["positive"], pipeline.predict_proba(test)[:, positive]))
    else:
        value = float(log_loss(target[held], pipeline.predict_proba(test), labels=pipeline.classes_))
    return seconds, value, int((~held).sum()), int(held.sum())


def main() -> None:
    sluice, root, scratch = sys.argv[1:4]
    rows = []
    for task, dataset, label, exclude, positive in CASES:
        config = {
            "model": f"bench-{dataset}-{task}", "dataset": dataset, "label": label, "task": task,
            "exclude": exclude, "hyperparameters": {"l2": 1.0, "holdout": 0.2, "max_categories": 100},
        }
        if positive:
            config["positive"] = positive
        path = os.path.join(scratch, f"{config['model']}.json")
        json.dump(config, open(path, "w"))
        out = os.path.join(scratch, config["model"])
        version = os.path.join(root, "datasets", dataset, "v1")
        started = time.perf_counter()
        done = subprocess.run(
            [sluice, "train", "--no-verify", "--data", version, "--config", path, "--output", out],
            capture_output=True, text=True, check=False, env={**os.environ, "RUST_LOG": "info"},
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"sluice train failed for {config['model']}: {done.stderr}")
        fit_seconds = float(re.search(r"seconds=([0-9.e-]+)", done.stderr).group(1))
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        ours = metrics[METRIC[task]]
        holdout = json.load(open(os.path.join(out, "holdout.json")))["rows"]
        sk_seconds, theirs, train_rows, test_rows = sklearn_side(version, config, holdout)
        started = time.perf_counter()
        trained = subprocess.run(
            [sys.executable, TRAINER, "--data", version, "--config", path, "--output", out + "-sklearn"],
            check=False, capture_output=True, text=True,
        )
        if trained.returncode != 0:
            raise SystemExit(f"the scikit-learn trainer failed for {config['model']}: {trained.stderr}")
        trainer_seconds = time.perf_counter() - started
        rows.append((task, f"{dataset}.{label}", train_rows, test_rows, METRIC[task], ours, theirs,
                     fit_seconds, sk_seconds, seconds, trainer_seconds))
    print("| task | data (label) | train / holdout rows | metric | Sluice | scikit-learn "
          "| fit s: Sluice | fit s: scikit-learn | whole job s: `sluice train` | whole job s: example trainer |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for task, data, train_rows, test_rows, metric, ours, theirs, f, t, s, u in rows:
        print(f"| {task} | {data} | {train_rows} / {test_rows} | {metric} | {ours:.4f} | {theirs:.4f} "
              f"| {f:.3f} | {t:.3f} | {s:.3f} | {u:.3f} |")


if __name__ == "__main__":
    main()

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

import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
from sklearn.metrics import log_loss, mean_squared_error, roc_auc_score

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

# The scikit-learn side is the example trainer's own pipeline and data reading (it puts the
# shared contract module on the path as it loads).
_spec = importlib.util.spec_from_file_location("sklearn_trainer", TRAINER)
sklearn_trainer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sklearn_trainer)
contract = sklearn_trainer.contract


def sklearn_side(version: str, config: dict, holdout: list[int]) -> tuple[float, float, int, int]:
    data = contract.Version.read(version, config)
    task = config["task"]
    if task == "regression":
        target = data.labels.astype(np.float64)
    else:
        _, target = contract.classes_of(data, task, config.get("positive"))
    held = np.zeros(len(target), dtype=bool)
    held[holdout] = True
    h = config["hyperparameters"]
    frame = sklearn_trainer.frame(data)
    pipeline = sklearn_trainer.pipeline(data, task, h["l2"], h["max_categories"])
    started = time.perf_counter()
    pipeline.fit(frame[~held], target[~held])
    seconds = time.perf_counter() - started
    test = frame[held]
    if task == "regression":
        value = float(np.sqrt(mean_squared_error(target[held], pipeline.predict(test))))
    elif task == "binary":
        # classes_of puts the positive class second: index 1.
        value = float(roc_auc_score(target[held] == 1, pipeline.predict_proba(test)[:, 1]))
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

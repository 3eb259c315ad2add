"""A Sluice training command with scikit-learn: a pipeline (nulls imputed, numbers
standardised, categories one-hot encoded, then a logistic regression for classes or a
ridge regression for values), exported to ONNX with ``skl2onnx`` in double precision.

Run by Sluice as the config's ``command`` (see ``iris-species-sklearn.json``):

    python examples/sklearn-trainer/train.py --data {data} --config {config} --output {output}

It reads the dataset version, holds out a seeded (for classes, stratified) share of the
rows, fits the pipeline on the rest, scores the held-out rows, and writes
``model.onnx``, ``signature.json``, ``metrics.json``, ``lineage.json`` and
``holdout.json`` through ``sluice_contract``, so Sluice registers, gates and serves it
like its own reference model.

Why these models: skl2onnx 1.20 converts the linear models and their preprocessing in
double precision, so the ONNX graph answers as scikit-learn does to about 1e-12. It
refuses scikit-learn 1.9's ``HistGradientBoostingClassifier``, and trees converted in
single precision can move a probability by several hundredths when a value sits on a
split boundary.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import sys

import numpy as np
import pandas as pd
import skl2onnx
import sklearn
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

# The contract module sits beside this folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sluice_contract as contract  # noqa: E402


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def frame(version: contract.Version) -> pd.DataFrame:
    """The features as scikit-learn and the ONNX graph both see them: numbers as float64
    (NaN for null), categories as text with null as the empty string (what Sluice's
    scorer sends the graph for a null)."""
    columns = {}
    for name, kind in version.features:
        values = version.columns[name]
        columns[name] = values if kind in contract.NUMERIC_TYPES else np.array(
            ["" if v is None else str(v) for v in values], dtype=object
        )
    return pd.DataFrame(columns)


def pipeline(version: contract.Version, task: str, l2: float, max_categories: int) -> Pipeline:
    numbers = [n for n, k in version.features if k in contract.NUMERIC_TYPES]
    texts = [n for n, k in version.features if k not in contract.NUMERIC_TYPES]
    parts = []
    if numbers:
        imputer = SimpleImputer(strategy="mean", keep_empty_features=True)
        parts.append(("numbers", make_pipeline(imputer, StandardScaler()), numbers))
    if texts:
        encoder = OneHotEncoder(handle_unknown="ignore", max_categories=max_categories)
        parts.append(("categories", encoder, texts))
    # The same penalty as Sluice's trainer: l2/2 · |w|² beside the summed loss.
    model = Ridge(alpha=l2) if task == "regression" else LogisticRegression(C=1.0 / l2, max_iter=1000)
    return Pipeline([("features", ColumnTransformer(parts)), ("model", model)])


def exportable(fitted: Pipeline) -> tuple[Pipeline, dict[str, float]]:
    """The fitted pipeline without its numbers' imputer, and the means it fills nulls
    with: ``sluice_contract.fill_nulls`` puts the same filling in front of the graph in
    double precision (ONNX Runtime's ``Imputer``, what skl2onnx converts it to, takes
    float32 only)."""
    export = copy.deepcopy(fitted)
    features = export.named_steps["features"]
    means = {}
    for i, (name, step, columns) in enumerate(features.transformers_):
        if name == "numbers":
            imputer, scaler = step.steps[0][1], step.steps[1][1]
            means = dict(zip(columns, imputer.statistics_.tolist()))
            features.transformers_[i] = (name, scaler, columns)
    return export, means


def categories(fitted: Pipeline) -> dict[str, list[str]]:
    """Each categorical column's known categories (the empty string, a null, is not one)."""
    transformer = fitted.named_steps["features"]
    if "categories" not in transformer.named_transformers_:
        return {}
    encoder = transformer.named_transformers_["categories"]
    names = transformer.transformers_[-1][2]
    return {n: sorted(str(c) for c in cats if c != "") for n, cats in zip(names, encoder.categories_)}


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--data", required=True)
    args.add_argument("--config", required=True)
    args.add_argument("--output", required=True)
    args.add_argument(
        "--predictions",
        help="also write scikit-learn's own answers for every row (JSON), to check the export against",
    )
    opts = args.parse_args()
    started = utc_now()

    config = json.load(open(opts.config))
    version = contract.Version.read(opts.data, config)
    task = contract.task_of(config, version)
    h = config.get("hyperparameters", {})
    seed, l2 = config.get("seed", 42), h.get("l2", 1.0)
    if task == "regression":
        if any(v is None for v in version.labels):
            raise SystemExit("the label has nulls: a model cannot learn from them")
        classes, y = [], version.labels.astype(np.float64)
    else:
        classes, y = contract.classes_of(version, task, config.get("positive"))
    held = contract.holdout_split(len(y), h.get("holdout", 0.2), seed, None if task == "regression" else y)

    x = frame(version)
    fitted = pipeline(version, task, l2, h.get("max_categories", 100)).fit(x[~held], y[~held])
    print(f"fitted {task} pipeline on {int((~held).sum())} rows", flush=True)

    types = [
        (n, DoubleTensorType([None, 1]) if k in contract.NUMERIC_TYPES else StringTensorType([None, 1]))
        for n, k in version.features
    ]
    export, means = exportable(fitted)
    options = {} if task == "regression" else {id(export): {"zipmap": False}}
    converted = skl2onnx.to_onnx(export, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    named = contract.named_inputs(converted, [n for n, _ in version.features])
    onnx_model = contract.fill_nulls(named, means)
    if task == "regression":
        served = contract.serving_outputs(onnx_model, task, probabilities="", value=onnx_model.graph.output[0].name)
        mets = contract.regression_metrics(y[held], fitted.predict(x[held]))
    else:
        served = contract.serving_outputs(onnx_model, task, probabilities="probabilities", value="")
        p = fitted.predict_proba(x[held])
        mets = (
            contract.binary_metrics(y[held].astype(np.float64), p[:, 1], classes)
            if task == "binary"
            else contract.multiclass_metrics(y[held], p, classes)
        )
    algorithm = "ridge" if task == "regression" else "logistic_regression"
    contract.write_outputs(
        opts.output,
        served,
        contract.signature(version.features, config["label"], classes, task, categories(fitted)),
        mets,
        {
            "algorithm": f"sklearn_{algorithm}",
            "task": task,
            "code_version": f"examples/sklearn-trainer (scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__})",
            "started_at": started,
            "finished_at": utc_now(),
        },
        holdout=held,
    )
    if opts.predictions:
        own = fitted.predict(x) if task == "regression" else fitted.predict_proba(x)
        with open(opts.predictions, "w") as f:
            json.dump({"task": task, "classes": classes, "predictions": own.tolist()}, f)


if __name__ == "__main__":
    main()

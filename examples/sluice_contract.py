"""Sluice's trainer contract, for trainers written in Python (shared by
``pytorch-trainer/`` and ``sklearn-trainer/``).

A training command gets a dataset version's folder (``manifest.json`` +
``data.parquet``), the training config and an output folder, and must write:

- ``model.onnx``: takes raw columns (one ``[N, 1]`` input per feature: ``double`` for
  numbers and booleans, ``string`` for categories, as named in the signature; or, when
  ``signature.json`` says ``"layout": "grouped"`` as Sluice's own trainer does, two
  inputs ``numbers`` ``[N, n]`` and ``categories`` ``[N, c]``) and returns, for a
  classifier, ``probabilities`` (``double [N, classes]``, in the signature's class order)
  and ``label`` (``int64 [N]``, the class index), for a regression model ``value``
  (``double [N, 1]``). The preprocessing is inside the graph, so Sluice's scorer sends
  raw rows;
- ``signature.json``: the task, the inputs (name, column type, tensor type, known
  categories), the label column, the classes (binary: negative first) and the outputs;
- ``metrics.json``: the task's metrics on the held-out rows (``rows`` and binary
  ``accuracy``, ``roc_auc``, ``log_loss``, ``class_counts``, ``positive_rate``;
  multiclass ``accuracy``, ``log_loss``, ``macro_f1``, ``class_counts``; regression
  ``rmse``, ``mae``, ``r2``);
- ``lineage.json`` (optional): what trained the model (algorithm, code version, …);
- ``holdout.json`` (optional): ``{"rows": [...]}``, the held-out rows' positions in
  ``data.parquet``. The evaluation gate scores a model whose config pins no evaluation
  dataset on these rows; without them such a model fails the gate.

This module needs only numpy, onnx and pyarrow: reading the dataset version, the task
and classes, the preprocessing graph and output heads, the metrics and the files.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
import pyarrow.parquet as pq
from onnx import TensorProto, helper

NUMERIC_TYPES = {"integer", "float", "boolean"}
OPSET = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]


@dataclass
class Version:
    """A dataset version as a trainer reads it: the feature columns (numbers as float64
    with NaN for nulls, others as objects with None), the label's raw values and type."""

    features: list[tuple[str, str]]  # (name, column type) in input order
    columns: dict[str, np.ndarray]
    labels: np.ndarray
    label_type: str

    @staticmethod
    def read(data_dir: str, config: dict) -> "Version":
        manifest = json.load(open(os.path.join(data_dir, "manifest.json")))
        kinds = {f["name"]: f["type"] for f in manifest["schema"]}
        label = config["label"]
        names = config.get("features") or [
            n for n in kinds if n != label and n not in config.get("exclude", [])
        ]
        table = pq.read_table(os.path.join(data_dir, "data.parquet"), columns=names + [label])
        columns = {}
        for n in names:
            values = table.column(n).to_pylist()
            if kinds[n] in NUMERIC_TYPES:
                columns[n] = np.array([np.nan if v is None else float(v) for v in values])
            else:
                columns[n] = np.array(values, dtype=object)
        labels = np.array(table.column(label).to_pylist(), dtype=object)
        return Version([(n, kinds[n]) for n in names], columns, labels, kinds[label])


def task_of(config: dict, version: Version) -> str:
    """The config's task, or Sluice's inference from the label (its README's rule, with
    the data's distinct values standing in for the contract's)."""
    if config.get("task"):
        return config["task"]
    if config.get("positive") is not None:
        return "binary"
    distinct = len({v for v in version.labels if v is not None})
    if version.label_type == "float":
        return "regression"
    if version.label_type == "integer":
        return "binary" if distinct == 2 else "regression"
    return "binary" if distinct == 2 else "multiclass"


def class_name(value) -> str:
    """A label value as Sluice names classes: booleans ``false``/``true``, integers as
    written, text as it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def classes_of(version: Version, task: str, positive: str | None = None) -> tuple[list[str], np.ndarray]:
    """The classes in Sluice's order (by value; a binary model's positive class, if
    named, second) and each row's class index. Rows with a null label are refused."""
    if any(v is None for v in version.labels):
        raise ValueError("the label has nulls: a model cannot learn from them")
    values = sorted(set(version.labels.tolist()), key=lambda v: (isinstance(v, str), v))
    classes = [class_name(v) for v in values]
    if task == "binary" and positive is not None:
        if positive not in classes:
            raise ValueError(f"positive class {positive!r} is not one of {classes}")
        classes = [c for c in classes if c != positive] + [positive]
    index = {c: k for k, c in enumerate(classes)}
    return classes, np.array([index[class_name(v)] for v in version.labels], dtype=np.int64)


def holdout_split(rows: int, fraction: float, seed: int, strata: np.ndarray | None = None) -> np.ndarray:
    """A seeded holdout (stratified by ``strata`` when given): a mask of held-out rows."""
    rng = np.random.default_rng(seed)
    held = np.zeros(rows, dtype=bool)
    groups = [np.arange(rows)] if strata is None else [np.flatnonzero(strata == s) for s in np.unique(strata)]
    for idx in groups:
        held[rng.permutation(idx)[: int(round(len(idx) * fraction))]] = True
    return held


@dataclass
class FeaturePlan:
    """How raw columns become the model's features, fitted on the training rows:
    numbers standardised (a missing value takes the mean), categories one-hot encoded
    (unseen and missing categories are all zeros)."""

    inputs: list[tuple[str, str]]  # (name, column type) in input order
    numeric: list[tuple[str, float, float]] = field(default_factory=list)  # name, mean, std
    categorical: list[tuple[str, list[str]]] = field(default_factory=list)  # name, categories

    @staticmethod
    def fit(columns: dict[str, np.ndarray], inputs: list[tuple[str, str]], max_categories: int) -> "FeaturePlan":
        plan = FeaturePlan(inputs=inputs)
        for name, kind in inputs:
            values = columns[name]
            if kind in NUMERIC_TYPES:
                x = values.astype(np.float64)
                mean = float(np.nanmean(x)) if np.isfinite(x).any() else 0.0
                std = float(np.nanstd(x)) if np.isfinite(x).any() else 0.0
                plan.numeric.append((name, mean, std if std > 0 else 1.0))
            else:
                seen, counts = np.unique([v for v in values if v is not None], return_counts=True)
                # The most frequent categories, then sorted (the signature lists them sorted).
                keep = seen[np.argsort(-counts, kind="stable")][:max_categories]
                plan.categorical.append((name, sorted(str(c) for c in keep)))
        return plan

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for _, c in self.categorical)

    def encode(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """The feature matrix (float32, rows × width) the model trains on; the graph from
        ``preprocessing`` computes the same from raw columns."""
        rows = len(next(iter(columns.values())))
        out = np.zeros((rows, self.width), dtype=np.float64)
        for j, (name, mean, std) in enumerate(self.numeric):
            x = columns[name].astype(np.float64)
            out[:, j] = (np.where(np.isnan(x), mean, x) - mean) / std
        offset = len(self.numeric)
        for name, categories in self.categorical:
            at = {c: i for i, c in enumerate(categories)}
            for r, v in enumerate(columns[name]):
                if v is not None and v in at:
                    out[r, offset + at[v]] = 1.0
            offset += len(categories)
        return out.astype(np.float32)

    def preprocessing(self) -> list[onnx.NodeProto]:
        """Nodes from the raw inputs to ``features`` (float32 [N, width])."""
        nodes, parts = [], []
        if self.numeric:
            k = len(self.numeric)
            nodes += [
                helper.make_node("Concat", [n for n, _, _ in self.numeric], ["numeric_raw"], axis=1),
                helper.make_node("IsNaN", ["numeric_raw"], ["numeric_missing"]),
                helper.make_node("Where", ["numeric_missing", "numeric_mean", "numeric_raw"], ["numeric_filled"]),
                helper.make_node("Sub", ["numeric_filled", "numeric_mean"], ["numeric_centred"]),
                helper.make_node("Div", ["numeric_centred", "numeric_std"], ["numeric_scaled"]),
            ]
            assert k == len(self.numeric)
            parts.append("numeric_scaled")
        for name, categories in self.categorical:
            nodes += [
                helper.make_node("OneHotEncoder", [name], [f"{name}_onehot"], domain="ai.onnx.ml",
                                 cats_strings=categories, zeros=1),
                helper.make_node("Flatten", [f"{name}_onehot"], [f"{name}_flat"], axis=1),
                helper.make_node("Cast", [f"{name}_flat"], [f"{name}_encoded"], to=TensorProto.DOUBLE),
            ]
            parts.append(f"{name}_encoded")
        nodes += [
            helper.make_node("Concat", parts, ["features_double"], axis=1),
            helper.make_node("Cast", ["features_double"], ["features"], to=TensorProto.FLOAT),
        ]
        return nodes

    def initializers(self) -> list[onnx.TensorProto]:
        if not self.numeric:
            return []
        k = len(self.numeric)
        return [
            helper.make_tensor("numeric_mean", TensorProto.DOUBLE, [1, k], [m for _, m, _ in self.numeric]),
            helper.make_tensor("numeric_std", TensorProto.DOUBLE, [1, k], [s for _, _, s in self.numeric]),
        ]


def compose(plan: FeaturePlan, head: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The served model: the plan's preprocessing, then ``head`` (``features`` float32
    [N, width] → ``logit`` [N, 1], e.g. exported by ``torch.onnx.export``), then the
    probabilities and label Sluice reads."""
    graph = head.graph
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.DOUBLE if k in NUMERIC_TYPES else TensorProto.STRING, ["rows", 1])
        for n, k in plan.inputs
    ]
    tail = [
        helper.make_node("Cast", ["logit"], ["logit_double"], to=TensorProto.DOUBLE),
        helper.make_node("Sigmoid", ["logit_double"], ["positive"]),
        helper.make_node("Sub", ["one", "positive"], ["negative"]),
        helper.make_node("Concat", ["negative", "positive"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    served = helper.make_graph(
        plan.preprocessing() + list(graph.node) + tail,
        name,
        inputs,
        [
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, ["rows", 2]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["rows"]),
        ],
        initializer=plan.initializers() + list(graph.initializer)
        + [helper.make_tensor("one", TensorProto.DOUBLE, [1], [1.0])],
    )
    model = helper.make_model(served, opset_imports=OPSET, producer_name="sluice-contract")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def linear_head(weights: np.ndarray, bias: float) -> onnx.ModelProto:
    """A linear ``features → logit`` head from plain weights (also what a logistic
    regression exports to)."""
    w = helper.make_tensor("head_w", TensorProto.FLOAT, [len(weights), 1], weights.astype(np.float32).tolist())
    b = helper.make_tensor("head_b", TensorProto.FLOAT, [1], [float(bias)])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["features", "head_w"], ["z"]), helper.make_node("Add", ["z", "head_b"], ["logit"])],
        "linear_head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", len(weights)])],
        [helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["rows", 1])],
        initializer=[w, b],
    )
    return helper.make_model(graph, opset_imports=OPSET)


def signature(
    inputs: list[tuple[str, str]],
    label: str,
    classes: list[str],
    task: str = "binary",
    categories: dict[str, list[str]] | None = None,
) -> dict:
    """``signature.json`` for a model taking one ``[N, 1]`` input per column."""
    categories = categories or {}
    specs = []
    for name, kind in inputs:
        spec = {"name": name, "type": kind, "tensor": "double" if kind in NUMERIC_TYPES else "string"}
        if name in categories:
            spec["categories"] = categories[name]
        specs.append(spec)
    if task == "regression":
        outputs = [{"name": "value", "tensor": "double"}]
    else:
        outputs = [{"name": "probabilities", "tensor": "double"}, {"name": "label", "tensor": "int64"}]
    return {
        "inputs": specs,
        "task": task,
        "label": label,
        "classes": [] if task == "regression" else classes,
        "outputs": outputs,
    }


def binary_metrics(y: np.ndarray, positive: np.ndarray, classes: list[str]) -> dict:
    """Holdout metrics from true labels (0/1) and positive-class probabilities."""
    y = y.astype(np.int64)
    predicted = (positive >= 0.5).astype(np.int64)
    eps = 1e-15
    p = np.clip(positive, eps, 1 - eps)
    # ROC AUC by ranks (ties get their average rank).
    order = np.argsort(positive, kind="mergesort")
    ranks = np.empty(len(positive))
    sorted_p = positive[order]
    i = 0
    while i < len(sorted_p):
        j = i
        while j + 1 < len(sorted_p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    auc = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg) if n_pos and n_neg else math.nan
    return {
        "task": "binary",
        "rows": int(len(y)),
        "accuracy": float((predicted == y).mean()),
        "roc_auc": float(auc),
        "log_loss": float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))),
        "class_counts": [
            {"class": c, "actual": int((y == k).sum()), "predicted": int((predicted == k).sum())}
            for k, c in enumerate(classes)
        ],
        "positive_rate": float(predicted.mean()),
    }


def multiclass_metrics(y: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict:
    """Holdout metrics from class indices and class probabilities (rows × classes)."""
    predicted = probabilities.argmax(axis=1)
    eps = 1e-15
    truth = np.clip(probabilities[np.arange(len(y)), y], eps, 1 - eps)
    f1 = []
    for k in range(len(classes)):
        actual, guessed = int((y == k).sum()), int((predicted == k).sum())
        if actual + guessed:
            f1.append(2 * int(((y == k) & (predicted == k)).sum()) / (actual + guessed))
    return {
        "task": "multiclass",
        "rows": int(len(y)),
        "accuracy": float((predicted == y).mean()),
        "log_loss": float(-np.mean(np.log(truth))),
        "macro_f1": float(np.mean(f1)) if f1 else 0.0,
        "class_counts": [
            {"class": c, "actual": int((y == k).sum()), "predicted": int((predicted == k).sum())}
            for k, c in enumerate(classes)
        ],
    }


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict:
    """Holdout metrics from true and predicted values."""
    error = predicted - y
    total = float(((y - y.mean()) ** 2).sum())
    squared = float((error**2).sum())
    r2 = 1 - squared / total if total > 0 else (1.0 if squared == 0 else 0.0)
    return {
        "task": "regression",
        "rows": int(len(y)),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": float(r2),
    }


def serving_outputs(model: onnx.ModelProto, task: str, probabilities: str, value: str) -> onnx.ModelProto:
    """Gives a converted model (e.g. from ``skl2onnx``) the outputs Sluice reads: its
    ``probabilities`` tensor (rows × classes, in class order) as ``probabilities``
    (double) and ``label`` (int64, the most probable class), or its ``value`` tensor as
    ``value`` (double, rows × 1). The converter's own outputs are dropped."""
    graph = model.graph
    # Tensors the converter already gave Sluice's output names are renamed out of the way.
    taken = {"probabilities", "label", "value"}
    for node in graph.node:
        for names in (node.input, node.output):
            for i, name in enumerate(names):
                if name in taken:
                    names[i] = f"converted_{name}"
    probabilities = f"converted_{probabilities}" if probabilities in taken else probabilities
    value = f"converted_{value}" if value in taken else value
    if task == "regression":
        nodes = [
            helper.make_node("Cast", [value], ["value_double"], to=TensorProto.DOUBLE),
            helper.make_node("Reshape", ["value_double", "sluice_column"], ["value"]),
        ]
        outputs = [helper.make_tensor_value_info("value", TensorProto.DOUBLE, ["rows", 1])]
        graph.initializer.append(helper.make_tensor("sluice_column", TensorProto.INT64, [2], [-1, 1]))
    else:
        nodes = [
            helper.make_node("Cast", [probabilities], ["probabilities"], to=TensorProto.DOUBLE),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ]
        outputs = [
            helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, ["rows", None]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["rows"]),
        ]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.extend(outputs)
    onnx.checker.check_model(model, full_check=True)
    return model


def named_inputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """Gives a converted model's inputs the dataset's column names again, in order:
    Sluice's scorer feeds each input by its column's name, and converters rename the
    ones they find unusual (skl2onnx turns ``education-num`` into ``education_num``)."""
    graph = model.graph
    renamed = {i.name: n for i, n in zip(graph.input, names) if i.name != n}
    for given in graph.input:
        given.name = renamed.get(given.name, given.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    return model


def fill_nulls(model: onnx.ModelProto, means: dict[str, float]) -> onnx.ModelProto:
    """Puts null filling in front of a converted model, in double precision: each named
    ``[N, 1]`` input's NaN (a null: what Sluice's scorer sends) becomes its training mean
    before the graph reads it. (ONNX Runtime's ``Imputer`` takes float32 only, so a
    converter's imputer would lose precision or not run.)"""
    graph = model.graph
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in means:
                node.input[i] = f"{name}_filled"
    fill = []
    for name, mean in means.items():
        graph.initializer.append(helper.make_tensor(f"{name}_mean", TensorProto.DOUBLE, [1, 1], [float(mean)]))
        fill += [
            helper.make_node("IsNaN", [name], [f"{name}_missing"]),
            helper.make_node("Where", [f"{name}_missing", f"{name}_mean", name], [f"{name}_filled"]),
        ]
    nodes = fill + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def write_outputs(
    output: str,
    model: onnx.ModelProto,
    sig: dict,
    mets: dict,
    lineage: dict | None = None,
    holdout: np.ndarray | None = None,
) -> None:
    """Writes the contract's files; ``holdout`` is the held-out rows' mask or positions."""
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    if holdout is not None:
        rows = np.flatnonzero(holdout) if holdout.dtype == bool else np.sort(holdout)
        holdout = {"rows": [int(r) for r in rows]}
    files = [("signature.json", sig), ("metrics.json", mets), ("lineage.json", lineage), ("holdout.json", holdout)]
    for name, value in files:
        if value is not None:
            with open(os.path.join(output, name), "w") as f:
                json.dump(value, f, indent=2)

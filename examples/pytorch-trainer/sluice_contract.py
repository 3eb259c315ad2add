"""Sluice's trainer contract, for trainers written in Python.

A training command gets a dataset version's folder (``manifest.json`` +
``data.parquet``), the training config and an output folder, and must write:

- ``model.onnx``: takes raw columns (one ``[N, 1]`` input per feature: ``double`` for
  numbers, ``string`` for categories, as named in the signature; or, when
  ``signature.json`` says ``"layout": "grouped"`` as Sluice's own trainer does, two
  inputs ``numbers`` ``[N, n]`` and ``categories`` ``[N, c]``) and returns
  ``probabilities`` (``double [N, 2]``, in the signature's class order) and ``label``
  (``int64 [N]``). The preprocessing is inside the graph, so Sluice's scorer sends raw
  rows;
- ``signature.json``: the inputs (name, column type, tensor type, known categories),
  the label column, the classes (negative first) and the outputs;
- ``metrics.json``: ``rows``, ``accuracy``, ``roc_auc``, ``log_loss``, ``class_counts``,
  ``positive_rate`` on the held-out rows;
- ``lineage.json`` (optional): what trained the model (algorithm, code version, …).

This module needs only numpy and onnx: the preprocessing graph, the output head, and
the two JSON files. ``train.py`` adds PyTorch for the model in between.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

NUMERIC_TYPES = {"integer", "float", "boolean"}
OPSET = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]


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
    model = helper.make_model(served, opset_imports=OPSET, producer_name="sluice-pytorch-trainer")
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


def signature(plan: FeaturePlan, label: str, classes: list[str]) -> dict:
    categories = dict(plan.categorical)
    inputs = []
    for name, kind in plan.inputs:
        spec = {"name": name, "type": kind, "tensor": "double" if kind in NUMERIC_TYPES else "string"}
        if name in categories:
            spec["categories"] = categories[name]
        inputs.append(spec)
    return {
        "inputs": inputs,
        "label": label,
        "classes": classes,
        "outputs": [{"name": "probabilities", "tensor": "double"}, {"name": "label", "tensor": "int64"}],
    }


def metrics(y: np.ndarray, positive: np.ndarray, classes: list[str]) -> dict:
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


def write_outputs(output: str, model: onnx.ModelProto, sig: dict, mets: dict, lineage: dict | None = None) -> None:
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    for name, value in [("signature.json", sig), ("metrics.json", mets), ("lineage.json", lineage)]:
        if value is not None:
            with open(os.path.join(output, name), "w") as f:
                json.dump(value, f, indent=2)

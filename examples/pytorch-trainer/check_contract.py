"""Checks ``sluice_contract`` without PyTorch or a GPU (Sluice's test suite runs this).

Fits the feature plan on the rows in ``--rows`` (JSON: ``inputs`` as [name, type] pairs,
``columns`` by name, 0/1 ``labels``, ``label`` and ``classes``), puts a fixed linear head
where train.py puts the PyTorch model, and writes the trainer's outputs to
``--output``, plus ``expected.json``: the positive-class probabilities numpy computes
from the same plan and head. Sluice then loads the outputs with its own types and
ONNX Runtime and compares.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sluice_contract as contract  # noqa: E402


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--rows", required=True)
    args.add_argument("--output", required=True)
    opts = args.parse_args()
    rows = json.load(open(opts.rows))
    inputs = [tuple(i) for i in rows["inputs"]]
    columns = {}
    for name, kind in inputs:
        values = rows["columns"][name]
        if kind in contract.NUMERIC_TYPES:
            columns[name] = np.array([np.nan if v is None else float(v) for v in values])
        else:
            columns[name] = np.array(values, dtype=object)
    y = np.array(rows["labels"], dtype=np.float64)
    plan = contract.FeaturePlan.fit(columns, inputs, max_categories=100)
    x = plan.encode(columns)
    rng = np.random.default_rng(7)
    w = rng.normal(0.0, 0.5, plan.width).astype(np.float32)
    b = np.float32(-1.0)
    logit = (x @ w + b).astype(np.float64)
    positive = 1.0 / (1.0 + np.exp(-logit))
    model = contract.compose(plan, contract.linear_head(w, float(b)), "contract-check")
    contract.write_outputs(
        opts.output,
        model,
        contract.signature(plan.inputs, rows["label"], rows["classes"], categories=dict(plan.categorical)),
        contract.binary_metrics(y, positive, rows["classes"]),
        {"algorithm": "linear (contract check)", "code_version": "examples/pytorch-trainer/check_contract.py"},
    )
    with open(os.path.join(opts.output, "expected.json"), "w") as f:
        json.dump({"positive": positive.tolist()}, f)


if __name__ == "__main__":
    main()

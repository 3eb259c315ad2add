"""A Sluice training command in Python: a small PyTorch MLP on the GPU when there is one.

Run by Sluice as the config's ``command`` (see ``adult-income-pytorch.json`` beside it):

    python /opt/sluice-pytorch/train.py --data {data} --config {config} --output {output} --seed {seed}

It reads the dataset version (``data.parquet`` + ``manifest.json``), fits the feature
plan on the training rows, trains, scores the held-out rows, and writes ``model.onnx``,
``signature.json``, ``metrics.json``, ``lineage.json`` and ``holdout.json`` through
``sluice_contract``,
so Sluice registers, gates and serves it like its own reference model.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys

import numpy as np
import onnx
import torch

# The contract module sits beside this folder in the repository (and beside this file
# in the environment's image).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import sluice_contract as contract  # noqa: E402


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--data", required=True)
    args.add_argument("--config", required=True)
    args.add_argument("--output", required=True)
    args.add_argument("--seed", type=int, default=42)
    args.add_argument("--epochs", type=int, default=20)
    args.add_argument("--hidden", type=int, default=64)
    args.add_argument("--lr", type=float, default=1e-3)
    opts = args.parse_args()
    started = utc_now()

    config = json.load(open(opts.config))
    version = contract.Version.read(opts.data, config)
    label, positive = config["label"], config["positive"]
    classes, y = contract.classes_of(version, "binary", positive)
    y = y.astype(np.float32)

    # A seeded stratified holdout.
    holdout = config.get("hyperparameters", {}).get("holdout", 0.2)
    test = contract.holdout_split(len(y), holdout, opts.seed, strata=y)
    columns = version.columns
    train_cols = {n: v[~test] for n, v in columns.items()}
    plan = contract.FeaturePlan.fit(
        train_cols, version.features,
        config.get("hyperparameters", {}).get("max_categories", 100),
    )
    x = plan.encode(columns)

    torch.manual_seed(opts.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = torch.nn.Sequential(
        torch.nn.Linear(plan.width, opts.hidden), torch.nn.ReLU(),
        torch.nn.Linear(opts.hidden, opts.hidden), torch.nn.ReLU(),
        torch.nn.Linear(opts.hidden, 1),
    ).to(device)
    xs = torch.tensor(x[~test], device=device)
    ys = torch.tensor(y[~test], device=device).unsqueeze(1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator(device="cpu").manual_seed(opts.seed)
    for epoch in range(opts.epochs):
        model.train()
        for batch in torch.randperm(len(xs), generator=generator).split(512):
            optimiser.zero_grad()
            loss = loss_fn(model(xs[batch.to(device)]), ys[batch.to(device)])
            loss.backward()
            optimiser.step()
        print(f"epoch {epoch + 1}/{opts.epochs}: loss {loss.item():.4f}", flush=True)

    model.eval().cpu()
    with torch.no_grad():
        held_out = torch.sigmoid(model(torch.tensor(x[test]))).squeeze(1).numpy().astype(np.float64)
    head_path = os.path.join(opts.output, "head.onnx")
    os.makedirs(opts.output, exist_ok=True)
    torch.onnx.export(
        model, torch.zeros(1, plan.width), head_path, input_names=["features"], output_names=["logit"],
        dynamic_axes={"features": {0: "rows"}, "logit": {0: "rows"}}, opset_version=17, dynamo=False,
    )
    head = onnx.load(head_path)
    os.remove(head_path)
    served = contract.compose(plan, head, config["model"])
    contract.write_outputs(
        opts.output,
        served,
        contract.signature(plan.inputs, label, classes, categories=dict(plan.categorical)),
        contract.binary_metrics(y[test], held_out, classes),
        {
            "algorithm": f"pytorch_mlp(hidden={opts.hidden}, epochs={opts.epochs})",
            "code_version": f"examples/pytorch-trainer (torch {torch.__version__}, {device})",
            "started_at": started,
            "finished_at": utc_now(),
        },
        holdout=test,
    )


if __name__ == "__main__":
    main()

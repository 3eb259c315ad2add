"""The monitor benchmark's peer: what a data scientist would write with pandas and SciPy
for the same window and the same ground truth, on the same files (Sluice's prediction
log and feedback batches, and the training dataset version's Parquet).

Drift per column from the raw data, as Evidently computes it: the Wasserstein distance
over the reference's standard deviation for numbers, the Jensen-Shannon distance of the
category shares (natural logarithm) for categories. Ground truth: the labels merged
with the predictions (read again, as a separate job would) on request id and row, and
the accuracy of the matched rows.
Prints one JSON line: times in seconds and peak RSS in bytes.

Usage: monitor_peer.py <store root> <model>
"""

import glob
import json
import resource
import sys
import time

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

NUMBERS = ["age", "income", "score", "visits"]
CATEGORIES = ["city", "segment"]


def main(store: str, model: str) -> None:
    started = time.perf_counter()
    reference = pd.read_parquet(glob.glob(f"{store}/datasets/bench/v1/data.parquet*")[0])
    batches = sorted(glob.glob(f"{store}/predictions/{model}/*/*.parquet"))
    live = pd.concat((pd.read_parquet(b) for b in batches), ignore_index=True)
    drift = {}
    for column in NUMBERS:
        ref = reference[column].dropna().to_numpy(dtype=float)
        now = live[column].dropna().to_numpy(dtype=float)
        drift[column] = wasserstein_distance(ref, now) / max(ref.std(), 0.001)
    for column in CATEGORIES:
        ref = reference[column].value_counts(normalize=True)
        now = live[column].replace("", np.nan).value_counts(normalize=True)
        both = ref.index.union(now.index)
        drift[column] = jensenshannon(ref.reindex(both, fill_value=0), now.reindex(both, fill_value=0))
    window_seconds = time.perf_counter() - started

    # Its own job, as Sluice's pass is: the predictions read again (the columns it needs).
    started = time.perf_counter()
    columns = ["request_id", "row", "p_yes"]
    predicted = pd.concat((pd.read_parquet(b, columns=columns) for b in batches), ignore_index=True)
    labels = []
    for path in glob.glob(f"{store}/feedback/{model}/batches/*.json"):
        with open(path) as f:
            labels.extend(json.load(f)["labels"])
    truth = pd.DataFrame(labels)
    matched = predicted.merge(truth, on=["request_id", "row"])
    accuracy = float(((matched["p_yes"] >= 0.5) == (matched["label"] == "yes")).mean())
    ground_truth_seconds = time.perf_counter() - started

    print(json.dumps({
        "rows": len(live), "window_seconds": window_seconds,
        "ground_truth_seconds": ground_truth_seconds, "matched": len(matched),
        "accuracy": accuracy, "drift": drift,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

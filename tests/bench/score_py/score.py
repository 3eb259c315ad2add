"""The scoring benchmark's peer: an Azure ML `score.py` serving the same model.onnx with
onnxruntime, as an Azure ML online deployment would (azureml-inference-server-http).
It takes the same request body as Sluice's Score and answers the same predictions."""

import json
import os

import numpy as np
import onnxruntime as ort

session = None
signature = None


def init():
    global session, signature
    model_dir = os.environ["AZUREML_MODEL_DIR"]
    options = ort.SessionOptions()
    # The same as Sluice: one intra-op thread per session (requests run in parallel).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.path.join(model_dir, "model.onnx"), options, providers=["CPUExecutionProvider"])
    with open(os.path.join(model_dir, "signature.json")) as f:
        signature = json.load(f)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    numbers, categories = [], []
    for spec in signature["inputs"]:
        values = [row.get(spec["name"]) for row in rows]
        if spec["tensor"] == "string":
            categories.append((spec["name"], ["" if v is None else v for v in values]))
        else:
            numbers.append((spec["name"], [np.nan if v is None else float(v) for v in values]))
    if signature.get("layout", "columns") == "grouped":
        # Two inputs, the columns of each kind side by side (see Sluice's InputLayout).
        feeds = {}
        if numbers:
            feeds["numbers"] = np.array([v for _, v in numbers], dtype=np.float64).T.copy()
        if categories:
            feeds["categories"] = np.array([v for _, v in categories], dtype=object).T.copy()
    else:
        feeds = {name: np.array(v, dtype=np.float64).reshape(-1, 1) for name, v in numbers}
        feeds.update({name: np.array(v, dtype=object).reshape(-1, 1) for name, v in categories})
    probabilities, labels = session.run(["probabilities", "label"], feeds)
    classes = signature["classes"]
    return {
        "predictions": [
            {"label": classes[int(label)], "probabilities": dict(zip(classes, map(float, p)))}
            for p, label in zip(probabilities, labels)
        ]
    }

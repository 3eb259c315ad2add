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
    feeds = {}
    for spec in signature["inputs"]:
        name = spec["name"]
        values = [row.get(name) for row in rows]
        if spec["tensor"] == "string":
            feeds[name] = np.array([["" if v is None else v] for v in values], dtype=object)
        else:
            feeds[name] = np.array([[np.nan if v is None else float(v)] for v in values], dtype=np.float64)
    probabilities, labels = session.run(["probabilities", "label"], feeds)
    classes = signature["classes"]
    return {
        "predictions": [
            {"label": classes[int(label)], "probabilities": dict(zip(classes, map(float, p)))}
            for p, label in zip(probabilities, labels)
        ]
    }

"""The demo's scoring script, as Azure ML runs one: init() once, run(raw_data) per request.

The model is a tiny linear model in JSON (model/model.json), placed by layerkit under
AZUREML_MODEL_DIR. A request is `{"data": [[x1, x2, x3], ...]}`; the answer, one prediction
per row. Standard library only: the environment is the server and nothing else.
"""

import glob
import json
import os

model = None


def init():
    global model
    root = os.environ["AZUREML_MODEL_DIR"]
    # <model dir>/<name>/<version>/model.json; searched, so a folder or a file model both work.
    found = sorted(glob.glob(os.path.join(root, "**", "model.json"), recursive=True))
    if not found:
        raise RuntimeError(f"no model.json under AZUREML_MODEL_DIR={root}")
    with open(found[0], encoding="utf-8") as f:
        model = json.load(f)


def run(raw_data):
    rows = json.loads(raw_data)["data"]
    weights, bias = model["weights"], model["bias"]
    return {"predictions": [round(sum(w * x for w, x in zip(weights, row)) + bias, 6) for row in rows]}

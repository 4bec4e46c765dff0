"""A scoring script as Azure ML runs it: init() loads the model, run() uses it."""

import json
import os

model = None


def init():
    global model
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "scaler", "1", "weights.json")
    with open(path) as fh:
        model = json.load(fh)


def run(raw_data):
    data = json.loads(raw_data)["data"]
    return {"scaled": [x * model["factor"] for x in data], "model": model["name"]}

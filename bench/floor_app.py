"""The floor the HTTP benchmark measures nnserve against: the least a Flask predict endpoint can do.

Flask, ``request.get_json``, a numpy forward pass through the same weights,
``jsonify``; no validation, no error handling, no versions. Run by
``bench/http_predict.py`` under gunicorn with nnserve's settings.
"""

import os

import numpy as np
from flask import Flask, jsonify, request

from service.store import FileModelStore

app = Flask(__name__)
store = FileModelStore(os.environ["NNSERVE_STORE"])
ACTIVATIONS = {"relu": lambda h: np.maximum(h, 0), "tanh": np.tanh}
MODELS = {}
for name in ("iris", "digits"):  # the two models the benchmark drives
    est = store.load(name).estimator
    MODELS[name] = (est.x_mean_, est.x_scale_, est.coefs_, est.intercepts_, est.classes_, ACTIVATIONS[est.activation])


@app.post("/v1/models/<name>/predict")
def predict(name):
    mean, scale, coefs, intercepts, classes, activation = MODELS[name]
    h = (np.asarray(request.get_json()["instances"], dtype=np.float32) - mean) / scale
    for W, b in zip(coefs[:-1], intercepts[:-1], strict=True):
        h = activation(h @ W + b)
    z = h @ coefs[-1] + intercepts[-1]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return jsonify({"model": name, "predictions": classes[p.argmax(axis=1)].tolist(), "probabilities": p.tolist()})

"""The shipped models, trained in plain numpy on the bundled data sets, and the command that rewrites them.

* ``digits_mlp``: 64-300-100-10 fully connected, ReLU (LeNet-300-100 with an 8x8 input).
* ``digits_cnn``: reshape to 1x8x8, conv 3x3 (8) + ReLU + max-pool 2, conv 3x3 (16) + ReLU + max-pool 2, FC 64-10.
* ``wine_mlp``: 13-64-32-3 fully connected, ReLU, on the 13 standardised features of scikit-learn's wine.
* ``breast_cancer_mlp``: 30-64-32-2 fully connected, ReLU, on the 30 standardised features of breast cancer.

The digits models take the (n, 64) pixels of :func:`sparq.compiler.datasets.load_digits_split`, the other two the
splits of :mod:`sparq.compiler.datasets`; all output logits. Training is deterministic (fixed seeds, He
initialisation, minibatch Adam, softmax cross-entropy)::

    .venv/bin/python -m sparq.compiler.default_models   # rewrites compiler/models/*.onnx and shipped_models.json
"""

import json
from functools import partial

import numpy as np

from .datasets import load_split
from .ir import Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape
from .models import MODELS_DIR, SHIPPED_DATA, shipped_path
from .onnx_io import write_onnx
from .train import accuracy, fit

__all__ = ["init_digits_mlp", "init_digits_cnn", "init_mlp", "RECIPES", "train_default", "main"]

METADATA = MODELS_DIR / "shipped_models.json"


def _dense(rng, name, n_in, n_out):
    """A He-initialised Dense layer with a zero bias."""
    return Dense(name, rng.normal(0.0, np.sqrt(2.0 / n_in), (n_out, n_in)), np.zeros(n_out))


def _conv(rng, name, c_in, c_out):
    """A He-initialised 3x3 Conv layer with padding 1 and a zero bias."""
    return Conv(name, rng.normal(0.0, np.sqrt(2.0 / (9 * c_in)), (c_out, c_in, 3, 3)), np.zeros(c_out), padding=1)


def init_mlp(sizes, seed=0):
    """An untrained fully connected ReLU network with layer widths ``sizes`` (input first): layers ``fc1``, ``fc2``,
    ... with ReLUs ``relu1``, ... between them."""
    rng = np.random.default_rng(seed)
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes, sizes[1:]), start=1):
        layers += [_dense(rng, f"fc{l}", n_in, n_out)] + ([Relu(f"relu{l}")] if l < len(sizes) - 1 else [])
    return Model(layers, (sizes[0],))


def init_digits_mlp(seed=0):
    """The untrained 64-300-100-10 MLP."""
    return init_mlp((64, 300, 100, 10), seed)


def init_digits_cnn(seed=0):
    """The untrained two-conv, one-FC CNN."""
    rng = np.random.default_rng(seed)
    return Model([Reshape("reshape", (1, 8, 8)), _conv(rng, "conv1", 1, 8), Relu("relu1"), MaxPool("pool1", 2),
                  _conv(rng, "conv2", 8, 16), Relu("relu2"), MaxPool("pool2", 2), Flatten("flatten"),
                  _dense(rng, "fc", 64, 10)], (64,))


RECIPES = {
    "digits_mlp": dict(init=init_digits_mlp, epochs=60, lr=1e-3, batch_size=32, weight_decay=1e-4),
    "digits_cnn": dict(init=init_digits_cnn, epochs=30, lr=2e-3, batch_size=32, weight_decay=0.0),
    "wine_mlp": dict(init=partial(init_mlp, (13, 64, 32, 3)), epochs=60, lr=1e-3, batch_size=16, weight_decay=1e-3),
    "breast_cancer_mlp": dict(init=partial(init_mlp, (30, 64, 32, 2)), epochs=40, lr=1e-3, batch_size=16,
                              weight_decay=1e-3),
}
"""How each shipped model is trained on its data set (:data:`sparq.compiler.models.SHIPPED_DATA`), seed 0 for the
initialisation and the minibatch order."""


def train_default(name, progress=None):
    """Train the shipped model ``name`` from scratch; return ``(model, {"train_accuracy", "test_accuracy"})``."""
    recipe = dict(RECIPES[name])
    x_train, y_train, x_test, y_test = load_split(SHIPPED_DATA[name])
    model = fit(recipe.pop("init")(seed=0), x_train, y_train, seed=0, desc=name, progress=progress, **recipe)
    return model, {"train_accuracy": accuracy(model, x_train, y_train),
                   "test_accuracy": accuracy(model, x_test, y_test)}


def main(names=None):
    """Retrain the shipped models ``names`` (default: all) and rewrite their ONNX files and their entries in
    ``shipped_models.json``."""
    metadata = json.loads(METADATA.read_text()) if METADATA.is_file() else {}
    for name in names or RECIPES:
        model, scores = train_default(name)
        write_onnx(model, shipped_path(name))
        recipe = {k: v for k, v in RECIPES[name].items() if k != "init"}
        metadata[name] = {"data": SHIPPED_DATA[name], **scores, "parameters": sum(lay.weight.size + lay.bias.size for lay in model.weighted()),
                          "recipe": {**recipe, "optimizer": "adam", "seed": 0}}
        print(f"{name}: train {scores['train_accuracy']:.4f}, test {scores['test_accuracy']:.4f} -> "
              f"{shipped_path(name)}")
    METADATA.write_text(json.dumps(metadata, indent=2) + "\n")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])

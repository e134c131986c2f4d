"""The shipped models (ONNX files in this folder) and the one call that loads any model file.

``digits_mlp.onnx`` is the 64-300-100-10 LeNet-300-100-style MLP and ``digits_cnn.onnx`` the small CNN, both trained
on :func:`sparq.compiler.datasets.load_digits_split`; ``wine_mlp.onnx`` (13-64-32-3) and ``breast_cancer_mlp.onnx``
(30-64-32-2) are trained on the standardised tabular splits of :mod:`sparq.compiler.datasets`. All are trained, and
rewritten, by :mod:`sparq.compiler.default_models`; ``shipped_models.json`` records their accuracies and recipes.
"""

from pathlib import Path

from ..errors import ModelFormatError

__all__ = ["MODELS_DIR", "SHIPPED", "SHIPPED_DATA", "load_model", "shipped_path", "load_shipped", "shipped_split"]

MODELS_DIR = Path(__file__).resolve().parent
SHIPPED_DATA = {"digits_mlp": "digits", "digits_cnn": "digits", "wine_mlp": "wine",
                "breast_cancer_mlp": "breast_cancer"}
"""Each shipped model and the bundled data set (:data:`sparq.compiler.datasets.BUNDLED`) it was trained on."""
SHIPPED = tuple(SHIPPED_DATA)


def load_model(path):
    """Read a model file into the IR: ``.onnx`` with :func:`~sparq.compiler.onnx_io.read_onnx`, ``.npz`` with
    :func:`~sparq.compiler.npz_io.read_npz`."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        from ..onnx_io import read_onnx
        return read_onnx(path)
    if suffix == ".npz":
        from ..npz_io import read_npz
        return read_npz(path)
    raise ModelFormatError(f"{path}: unknown model file type {suffix!r}; give an .onnx or an .npz file")


def shipped_path(name):
    """Path of the shipped model ``name`` (one of :data:`SHIPPED`)."""
    if name not in SHIPPED:
        raise ModelFormatError(f"no shipped model {name!r}; the shipped models are {', '.join(SHIPPED)}")
    return MODELS_DIR / f"{name}.onnx"


def load_shipped(name):
    """The shipped model ``name`` (one of :data:`SHIPPED`) as an IR model."""
    return load_model(shipped_path(name))


def shipped_split(name):
    """``(x_train, y_train, x_test, y_test)`` of the bundled data set the shipped model ``name`` was trained on."""
    from ..datasets import load_split

    shipped_path(name)  # a clear error for an unknown name
    return load_split(SHIPPED_DATA[name])

"""A user's data set from an ``.npz`` file, checked against the model it is for.

An ``.npz`` archive (``numpy.savez``) holds one of three layouts, and :func:`load_data` says which it found:

* ``x_train``, ``y_train``, ``x_test``, ``y_test``: the user's own split;
* ``x``, ``y``: sparq splits it, seeded and stratified by class (:func:`sparq.compiler.datasets.stratified_split`,
  30 % held out for test, seed 0), and says so;
* ``x`` alone: no labels. Accuracy cannot be measured; compression is one-shot and reports how far the compressed
  model's outputs move from the float model's on ``x`` (:func:`sparq.compiler.pipeline.output_drift`).

``x`` arrays are numbers (any integer, boolean or floating type, stored as float32), one sample per row of the
first axis, each sample of the model's input shape. Also accepted, in C (row-major) order: samples that differ from
it only by axes of size one (``(n, 8, 8)`` for a ``(1, 8, 8)`` model) and flat rows for a single-channel image model
(``(n, 64)`` for ``(1, 8, 8)``) or images for a flat model; anything else is one :class:`ShapeError` naming both
shapes. Labels are class indices ``0 .. classes - 1`` (integers, or floats with integral values, or one-hot rows).
Every problem is one :class:`~sparq.compiler.errors.DataError` or ``ShapeError`` line; nothing is unpickled.
"""

import math
from dataclasses import dataclass

import numpy as np

from .checks import finite_float32
from .datasets import SPLIT_SEED, TEST_FRACTION, stratified_split
from .errors import DataError, ShapeError
from .npz_io import read_archive

__all__ = ["LAYOUTS", "VALIDATION_FRACTION", "Dataset", "load_data", "from_arrays", "fit_inputs", "check_labels",
           "validation_split"]

LAYOUTS = (("x_train", "y_train", "x_test", "y_test"), ("x", "y"), ("x",))
"""The accepted sets of array names, in the order :func:`load_data` tries them."""

VALIDATION_FRACTION = 0.2
"""Fraction of the training part held out for validation by :func:`validation_split` (the sensitivity scan)."""


@dataclass(eq=False)
class Dataset:
    """Checked data for one model: float32 inputs of the model's input shape and int64 labels.

    ``x_train``/``y_train`` are for training and calibration, ``x_test``/``y_test`` for measuring; without labels
    ``x_train`` holds every sample and the other three are None. ``description`` says where the data came from and
    how it was split, in one line for a report; ``source`` names the file.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str
    source: str = "data"

    @property
    def labelled(self):
        """True when the data has labels (accuracy can be measured and the model retrained)."""
        return self.y_train is not None

    @property
    def split(self):
        """``(x_train, y_train, x_test, y_test)``, what :func:`sparq.compiler.pipeline.compress` takes."""
        if not self.labelled:
            raise DataError(f"{self.description}: no labels, so there is no train/test split; give y (or y_train "
                            f"and y_test) in the .npz, or compress one-shot")
        return self.x_train, self.y_train, self.x_test, self.y_test

    @property
    def inputs(self):
        """Every input sample: training then test (or all of ``x`` without labels)."""
        return self.x_train if self.x_test is None else np.concatenate([self.x_train, self.x_test])

    def calibration(self, limit=None, seed=SPLIT_SEED):
        """``(x, description)``: the training inputs for calibrating fixed-point scales, or a seeded random subset
        of ``limit`` of them, with a line saying which."""
        x = self.x_train
        if limit is None or len(x) <= limit:
            return x, f"calibrated on all {len(x):,} training samples of {self.source}"
        chosen = np.sort(np.random.default_rng(seed).choice(len(x), size=limit, replace=False))
        return x[chosen], f"calibrated on {limit:,} of the {len(x):,} training samples of {self.source} (seed {seed})"


def _samples(arrays, key, source):
    """``arrays[key]`` as float32 samples (a batch axis first), or a :class:`DataError`."""
    array = arrays[key]
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: array {key!r} is of type {array.dtype}, not numbers; save the inputs as a numeric "
                        f"array (float32)")
    if array.ndim < 2 or len(array) == 0:
        raise DataError(f"{source}: array {key!r} has shape {array.shape}; it needs one sample per row: shape (n, "
                        f"...) with n >= 1")
    return finite_float32(array, f"{source}: array {key!r}", DataError, "clean the data")


def _squeezed(shape):
    return tuple(d for d in shape if d != 1)


def fit_inputs(x, input_shape, what="x"):
    """``(x, note)``: the float32 batch ``x`` with samples of ``input_shape``, reshaped when that is unambiguous
    (see the module docstring; ``note`` then says how, else it is ``""``), or a :class:`ShapeError` naming both
    shapes."""
    x = np.asarray(x, dtype=np.float32)
    sample, input_shape = tuple(x.shape[1:]), tuple(input_shape)
    if sample == input_shape:
        return x, ""
    same_size = math.prod(sample) == math.prod(input_shape)
    flat_and_plane = sorted((len(_squeezed(sample)), len(_squeezed(input_shape)))) in ([1, 1], [1, 2])
    if same_size and (_squeezed(sample) == _squeezed(input_shape) or flat_and_plane):
        return x.reshape(len(x), *input_shape), f"{what} samples of shape {sample} read as {input_shape} (row-major)"
    hint = ("reorder them to channels first (NCHW) and give shape (n, " + ", ".join(map(str, input_shape)) + ")"
            if same_size else "give data for this model, or the model for this data")
    raise ShapeError(f"{what} has samples of shape {sample} but the model takes input shape {input_shape}; {hint}")


def check_labels(y, n_samples, n_classes, what="y", source="the data"):
    """``y`` as int64 class indices, one per sample and each in ``0 .. n_classes - 1`` (one-hot rows are turned into
    indices), or a :class:`DataError`. ``n_classes`` None skips the upper bound."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1 and np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all():
        y = y.argmax(axis=1)
    if y.dtype.kind not in "biuf" or y.ndim != 1:
        raise DataError(f"{source}: {what} has shape {y.shape} and type {y.dtype}; labels are one class index per "
                        f"sample, shape ({n_samples},), or one-hot rows")
    if len(y) != n_samples:
        raise DataError(f"{source}: {what} has {len(y)} labels for {n_samples} samples; give one label per sample")
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise DataError(f"{source}: {what} holds non-integral values; labels are class indices 0, 1, 2, ... "
                        f"(regression targets are not supported)")
    y = y.astype(np.int64)
    if y.min() < 0 or (n_classes is not None and y.max() >= n_classes):
        raise DataError(f"{source}: {what} holds labels {int(y.min())} .. {int(y.max())} but the model has "
                        f"{n_classes} outputs (classes 0 .. {(n_classes or 1) - 1}); relabel the classes from 0")
    return y


def _classes(output_shape):
    """The number of classes of a model with per-sample ``output_shape`` (its output size)."""
    return None if output_shape is None else math.prod(output_shape)


def from_arrays(arrays, input_shape, output_shape=None, source="data", test_fraction=TEST_FRACTION,
                seed=SPLIT_SEED):
    """The :class:`Dataset` of ``arrays`` (a dict of one of the :data:`LAYOUTS`) for a model of per-sample
    ``input_shape`` and ``output_shape`` (None: labels are not checked against it)."""
    keys = set(arrays)
    layout = next((names for names in LAYOUTS if keys == set(names)), None)
    if layout is None:
        accepted = " or ".join("{" + ", ".join(names) + "}" for names in LAYOUTS)
        raise DataError(f"{source}: holds arrays {sorted(keys)}; a data file holds exactly {accepted}")
    n_classes, notes = _classes(output_shape), []
    xs = {}
    for key in layout:
        if key.startswith("x"):
            xs[key], note = fit_inputs(_samples(arrays, key, source), input_shape, key)
            notes += [note] if note else []
    shape = f"samples of shape {tuple(input_shape)}"
    if layout == ("x",):
        return Dataset(xs["x"], None, None, None, f"{source}: {len(xs['x']):,} unlabelled {shape} (x only: accuracy "
                       f"is not measured)" + "".join(f"; {n}" for n in notes), source)
    ys = {key: check_labels(arrays[key], len(xs["x" + key[1:]]), n_classes, key, source)
          for key in layout if key.startswith("y")}
    if layout == ("x", "y"):
        if len(ys["y"]) < 2:
            raise DataError(f"{source}: x and y hold {len(ys['y'])} sample; a train/test split needs at least 2")
        x_train, y_train, x_test, y_test, stratified = stratified_split(xs["x"], ys["y"], test_fraction, seed)
        how = "stratified by class" if stratified else "shuffled, not stratified: a class has fewer than 2 samples"
        description = (f"{source}: x and y split by sparq into {len(x_train):,} training and {len(x_test):,} test "
                       f"{shape} ({how}, {100 * test_fraction:g} % held out for test, seed {seed})")
    else:
        x_train, y_train, x_test, y_test = xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"]
        description = (f"{source}: the file's own split, {len(x_train):,} training and {len(x_test):,} test "
                       f"{shape}")
    classes = len(np.unique(np.concatenate([y_train, y_test])))
    description += f", {classes} classes" + "".join(f"; {n}" for n in notes)
    return Dataset(x_train, y_train, x_test, y_test, description, source)


def load_data(path, input_shape, output_shape=None, test_fraction=TEST_FRACTION, seed=SPLIT_SEED):
    """The :class:`Dataset` in the ``.npz`` file at ``path`` for a model of per-sample ``input_shape`` and
    ``output_shape`` (``model.input_shape``, ``model.output_shape``); see the module docstring."""
    from pathlib import Path

    return from_arrays(read_archive(path, DataError), input_shape, output_shape, Path(path).name, test_fraction,
                       seed)


def validation_split(x, y, fraction=VALIDATION_FRACTION, seed=SPLIT_SEED):
    """``(x_fit, y_fit, x_val, y_val)``: training data with ``fraction`` held out for validation (stratified by
    class where possible), so that choices made on it never see the test split."""
    if len(y) < 2:
        raise DataError(f"a validation split needs at least 2 training samples, got {len(y)}")
    return stratified_split(x, y, fraction, seed)[:4]

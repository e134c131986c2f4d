"""The data a flow runs on: where it comes from (:class:`Origin`, what a workspace record remembers) and the checked
split for one model (:class:`Data`): the training part that compression retrains on and the lowerings calibrate on,
and the test part that ``sparq simulate`` takes its inputs from.

A user names the data with ``--data`` (``data=`` in :mod:`sparq.api`): an ``.npz`` file in one of the layouts of
:mod:`sparq.compiler.data` (``x_train``, ``y_train``, ``x_test``, ``y_test``; ``x``, ``y``, split by sparq; or ``x``
alone, without labels), or the name of a bundled data set (:data:`BUNDLED`: ``digits``, ``wine``,
``breast_cancer``, scikit-learn's, no download). Without ``--data`` (:func:`choose`), a step uses the data recorded
by the step before it (the compression's for a lowering, the lowering's for a simulation), else the bundled data
set a shipped model was trained on, else the bundled digits.

The record (``"data"`` in a ``sparq.json`` meta, :meth:`Origin.to_json`) holds ``{"kind": "bundled", "name":
"digits"}``, ``{"kind": "file", "path": <absolute path>, "sha256": <of the file>}`` or ``{"kind": "none"}`` (a
weight matrix compressed with no data, from the API). A recorded file that has changed or gone since is refused
(:meth:`Origin.check`) with one line that says which step used it.
"""

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import InputError
from .workspace import KINDS, RECORD, sha256

__all__ = ["BUNDLED", "CALIBRATION_LIMIT", "DATA_HELP", "Origin", "NO_DATA", "Data", "choose", "recorded_origin",
           "load", "bundled"]

BUNDLED = ("digits", "wine", "breast_cancer")
"""The bundled data sets (:data:`sparq.compiler.datasets.BUNDLED`), by the names ``--data`` takes."""

CALIBRATION_LIMIT = 2048
"""At most this many training samples calibrate a lowering's fixed-point scales (a seeded subset of a larger
training part, :meth:`sparq.compiler.data.Dataset.calibration`; every bundled split is smaller)."""

DATA_HELP = ("an .npz of x_train, y_train, x_test, y_test (your split), x and y (split by sparq, stratified, seed 0), "
             "or x alone (no labels); or a bundled data set: " + ", ".join(BUNDLED))

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Origin:
    """Where a data set comes from: ``kind`` "bundled" (``name``), "file" (``path``, resolved, and its ``sha256``
    when chosen) or "none". ``defaulted``: the user did not name it (messages then say how to)."""

    kind: str
    name: str = None
    path: str = None
    sha256: str = None
    defaulted: bool = field(default=False, compare=False)

    def to_json(self):
        """The record's form (module docstring)."""
        if self.kind == "bundled":
            return {"kind": "bundled", "name": self.name}
        if self.kind == "file":
            return {"kind": "file", "path": self.path, "sha256": self.sha256}
        return {"kind": "none"}

    @classmethod
    def from_json(cls, data, where, hint):
        """The origin a record's meta holds (``where`` names the record, ``hint`` says how to rewrite it); anything
        else is an :class:`InputError`."""
        kinds = {"bundled": {"kind", "name"}, "file": {"kind", "path", "sha256"}, "none": {"kind"}}
        if not isinstance(data, dict) or data.get("kind") not in kinds or set(data) != kinds[data["kind"]] or (
                data["kind"] == "bundled" and data["name"] not in BUNDLED) or (
                data["kind"] == "file" and not (isinstance(data["path"], str) and isinstance(data["sha256"], str)
                                                and _SHA256.fullmatch(data["sha256"]))):
            raise InputError(f"{where}: its data entry {data!r} is not what sparq writes", hint)
        return cls(**data)

    @property
    def label(self):
        """The data in a few words: "the bundled digits data", "digits.npz", "no data"."""
        if self.kind == "bundled":
            return f"the bundled {self.name.replace('_', ' ')} data"
        return Path(self.path).name if self.kind == "file" else "no data"

    def check(self, used_by):
        """Refuse a recorded data file that is missing or whose SHA-256 is no longer the recorded one; ``used_by``
        names the step that used it ("`sparq compress` into build/sparq")."""
        if self.kind != "file":
            return
        path = Path(self.path)
        if not path.is_file():
            raise InputError(f"{path}: missing, but {used_by} used it", "put it back, or give the data again with "
                             "--data FILE.npz")
        if sha256(path) != self.sha256:
            raise InputError(f"{path} has changed since {used_by} used it (its SHA-256 differs)",
                             f"give --data {path} to use it as it is now (and lower again: calibrations and results "
                             "describe the old file), or restore it")


NO_DATA = Origin("none")


def choose(value=None, *, recorded=None, model_path=None):
    """The :class:`Origin` of ``value`` (``--data``: a bundled name or an ``.npz`` path, or an Origin already; None:
    ``recorded`` if given, else the bundled data set of the shipped model at ``model_path``, else the bundled
    digits)."""
    if isinstance(value, Origin):
        return value
    if value is None:
        if recorded is not None:
            return recorded
        return Origin("bundled", name=_shipped_data(model_path) or "digits", defaulted=True)
    text = str(value)
    path = Path(text)
    if text in BUNDLED and not path.exists():
        return Origin("bundled", name=text)
    if not path.is_file():
        what = "a directory, not a data file" if path.is_dir() else "no such data file"
        hint = (f"give an .npz file or one of the bundled data sets ({', '.join(BUNDLED)})"
                if path.suffix.lower() != ".npz" else "check the path of --data")
        raise InputError(f"{path}: {what}", hint)
    return Origin("file", path=str(path.resolve()), sha256=sha256(path))


def recorded_origin(record):
    """The :class:`Origin` a workspace record's meta holds (:class:`sparq.workspace.Record`), a data file checked:
    not changed since the step that recorded it."""
    origin = Origin.from_json(record.meta.get("data"), record.path(RECORD), record.redo())
    origin.check(f"`{KINDS[record.kind]}` into {record.directory}")
    return origin


def _shipped_data(model_path):
    """The bundled data set the shipped model at ``model_path`` was trained on, or None for any other model."""
    if model_path is None:
        return None
    from sparq.compiler.models import SHIPPED_DATA, shipped_path
    resolved = Path(model_path).resolve()
    return next((data for name, data in SHIPPED_DATA.items() if shipped_path(name).resolve() == resolved), None)


@dataclass(frozen=True, eq=False)
class Data:
    """The data of :class:`Origin` ``origin`` for one model: ``dataset`` a checked
    :class:`sparq.compiler.data.Dataset` of the model's input shape (None for no data)."""

    origin: Origin
    dataset: object

    @property
    def description(self):
        """Where the data came from and how it was split, in one line."""
        return self.dataset.description if self.dataset is not None else "no data: a weight matrix alone"

    @property
    def labelled(self):
        return self.dataset is not None and self.dataset.labelled

    @property
    def test_noun(self):
        """What the test inputs are called in a table's title: "digits test images", "test samples of x.npz"."""
        if self.origin.kind == "bundled":
            return "digits test images" if self.origin.name == "digits" else \
                f"{self.origin.name.replace('_', ' ')} test samples"
        return f"{'test ' if self.labelled else ''}samples of {self.origin.label}"

    def calibration(self):
        """``(x, line)``: the training inputs that calibrate a lowering (at most :data:`CALIBRATION_LIMIT`) and a
        line saying which; ``(None, line)`` without data."""
        if self.dataset is None:
            return None, "not calibrated (no data; activations beyond Q8.8's +-128 saturate, and runs count them)"
        x, line = self.dataset.calibration(CALIBRATION_LIMIT)
        return x, line.replace(f"of {self.dataset.source}", f"of {self.origin.label}")

    def test(self, count):
        """``(x, y)``: the first ``count`` test inputs and labels (y None without labels: then the first ``count``
        of x); a count outside the data is an :class:`InputError`."""
        if self.dataset is None:
            raise InputError("no test inputs: this model was compressed and lowered without data",
                             "give inputs with --data FILE.npz (or x= in the Python API)")
        x, y = (self.dataset.x_test, self.dataset.y_test) if self.labelled else (self.dataset.x_train, None)
        if not 1 <= count <= len(x):
            part = "test split" if self.labelled else "inputs"
            raise InputError(f"--images {count} is outside 1..{len(x)}", f"the {part} of {self.origin.label} has "
                             f"{len(x)} samples")
        return x[:count], None if y is None else y[:count]


def _refused(origin, model, model_path, error):
    """The :class:`InputError` for data that ``model`` cannot take (a compiler DataError or ShapeError)."""
    from sparq.compiler.errors import ShapeError
    where = f"{model_path}: " if model_path else ""
    if origin.defaulted and isinstance(error, ShapeError):
        return InputError(f"{where}the model takes input shape {tuple(model.input_shape)}, which the default data, "
                          f"{origin.label}, does not fit ({error})", f"give the model's data with --data: {DATA_HELP}")
    return InputError(f"{origin.label}: {error}" if not str(error).startswith(origin.label) else str(error),
                      f"give data for this model with --data: {DATA_HELP}")


def bundled(name, model):
    """The bundled data set ``name`` for ``model`` (its inputs reshaped to the model's input shape where that is
    unambiguous, as for a file)."""
    from sparq.compiler.data import from_arrays
    from sparq.compiler.datasets import SPLIT_SEED, TEST_FRACTION, load_split
    x_train, y_train, x_test, y_test = load_split(name)
    dataset = from_arrays({"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test},
                          model.input_shape, model.output_shape, source=name)
    notes = dataset.description.split("; ", 1)[1:]
    description = (f"the bundled {name.replace('_', ' ')} data (scikit-learn): {len(x_train):,} training and "
                   f"{len(x_test):,} test samples of shape {tuple(model.input_shape)}, split by sparq (stratified, "
                   f"{100 * TEST_FRACTION:g} % held out, seed {SPLIT_SEED})" + "".join(f"; {n}" for n in notes))
    return replace(dataset, description=description)


def load(origin, model, model_path=None):
    """The :class:`Data` of ``origin`` for ``model`` (read from ``model_path``, for messages); data the model cannot
    take is one :class:`InputError` naming both shapes. A file is read once and its SHA-256 checked against the one
    ``origin`` was chosen (or recorded) with."""
    from sparq.compiler.data import load_data
    from sparq.compiler.errors import DataError, ShapeError
    if origin.kind == "none":
        return Data(origin, None)
    try:
        if origin.kind == "bundled":
            return Data(origin, bundled(origin.name, model))
        dataset = load_data(origin.path, model.input_shape, model.output_shape)
    except (DataError, ShapeError) as error:
        raise _refused(origin, model, model_path, error) from None
    if sha256(origin.path) != origin.sha256:
        raise InputError(f"{origin.path} changed while sparq read it", "run the command again once it is written")
    return Data(origin, dataset)

"""``.npz`` files of named weight arrays plus a layer list, to the layer IR and back.

A layer list is a list of dicts, one per layer in execution order: ``op`` (an IR class name: Dense, Conv, Relu,
Flatten, Reshape, MaxPool, AvgPool, Residual), ``name``, and the class's other fields (``stride``, ``padding``,
``dilation``, ``kernel``, ``ceil_mode``, ``shape``, ``count_include_pad``; a Residual's ``layers`` is its body's layer
list). A weighted layer reads its arrays from ``<name>.weight`` and ``<name>.bias``, or
from the array names given as ``weight`` and ``bias`` in its dict; a missing bias is zero. For example::

    {"input_shape": [64], "layers": [{"op": "Dense", "name": "fc1", "weight": "W1", "bias": "b1"},
                                     {"op": "Relu", "name": "relu1"}, {"op": "Dense", "name": "fc2"}]}

:func:`write_npz` stores that description as JSON in the array ``__model__``, so :func:`read_npz` needs nothing else;
for a file of bare arrays, pass the layer list and input shape to :func:`read_npz`.
"""

import dataclasses
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import CompileError, ModelFormatError, UnsupportedError
from .ir import WEIGHTED, AvgPool, Conv, Dense, Flatten, MaxPool, Model, Relu, Reshape, Residual

__all__ = ["read_npz", "write_npz", "model_arrays", "model_from_arrays", "read_archive", "load_arrays", "MODEL_KEY"]

MODEL_KEY = "__model__"
_LAYER_TYPES = {cls.__name__: cls for cls in (Dense, Conv, Relu, Flatten, Reshape, MaxPool, AvgPool, Residual)}


def _layer_spec(layer):
    """The layer-list dict of one IR layer (its arrays go elsewhere; a residual block's body is its ``layers``)."""
    spec = {"op": type(layer).__name__}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if f.name == "layers":
            spec[f.name] = [_layer_spec(inner) for inner in value]
        elif f.name not in ("weight", "bias"):
            spec[f.name] = list(value) if isinstance(value, tuple) else value
    return spec


def model_arrays(model):
    """``{array name: array}`` describing ``model``: its weights and biases plus the JSON layer list."""
    description = {"input_shape": list(model.input_shape), "layers": [_layer_spec(lay) for lay in model.layers],
                   "softmax": model.softmax}
    arrays = {MODEL_KEY: np.array(json.dumps(description))}
    for layer in model.weighted():
        arrays[f"{layer.name}.weight"] = layer.weight
        arrays[f"{layer.name}.bias"] = layer.bias
    return arrays


def model_from_arrays(arrays, source, layers=None, input_shape=None):
    """Build the IR model from ``arrays`` (name -> array); ``source`` names the file in error messages.

    ``layers`` and ``input_shape`` default to the JSON description stored in ``arrays[MODEL_KEY]``.
    """
    softmax = False
    if layers is None or input_shape is None:
        if MODEL_KEY not in arrays:
            raise ModelFormatError(f"{source}: no layer list ({MODEL_KEY!r} array) in the file; pass layers=[...] "
                                   f"and input_shape=(...) to read_npz, or write the file with write_npz")
        try:
            description = json.loads(str(arrays[MODEL_KEY]))
            layers = description["layers"] if layers is None else layers
            input_shape = description["input_shape"] if input_shape is None else input_shape
            softmax = bool(description.get("softmax", False))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelFormatError(f"{source}: the layer list in {MODEL_KEY!r} is not valid ({exc}); rewrite the "
                                   f"file with write_npz") from None
    try:
        return Model(_build(layers, arrays, source), input_shape, softmax=softmax)
    except CompileError as exc:
        raise type(exc)(exc if str(exc).startswith(f"{source}:") else f"{source}: {exc}") from None


def _build(specs, arrays, source):
    """The IR layers of the layer-list ``specs`` (a residual block's ``layers`` recursively)."""
    if not isinstance(specs, list):
        raise ModelFormatError(f"{source}: a layer list must be a list of dicts, got {type(specs).__name__}")
    built = []
    for position, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise ModelFormatError(f"{source}: layer {position} of the layer list is {spec!r}, not a dict with 'op' "
                                   f"and 'name'")
        spec = dict(spec)
        op, name = spec.pop("op", None), spec.get("name", f"layer {position}")
        if op not in _LAYER_TYPES:
            raise UnsupportedError(f"{source}: layer {name!r} has op {op!r}; supported ops are "
                                   f"{', '.join(_LAYER_TYPES)}")
        cls = _LAYER_TYPES[op]
        if cls in WEIGHTED:
            weight_key = spec.pop("weight", f"{name}.weight")
            bias_key = spec.pop("bias", f"{name}.bias")
            if weight_key not in arrays:
                raise ModelFormatError(f"{source}: layer {name!r} needs the weight array {weight_key!r}, which the "
                                       f"file does not hold; its arrays are {sorted(k for k in arrays if k != MODEL_KEY)}")
            spec["weight"] = arrays[weight_key]
            spec["bias"] = arrays.get(bias_key)  # None: a zero bias
        if cls is Residual:
            spec["layers"] = _build(spec.get("layers"), arrays, source)
        try:
            built.append(cls(**spec))
        except TypeError as exc:
            raise ModelFormatError(f"{source}: layer {name!r} ({op}) has a bad field ({exc}); its fields are "
                                   f"{[f.name for f in dataclasses.fields(cls)]}") from None
    return built


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive with members, an empty one
_NPY_MAGIC = b"\x93NUMPY"


def read_archive(path, error=ModelFormatError):
    """All arrays of the ``.npz`` archive at ``path`` as a dict, read without unpickling anything.

    A missing file, a file that is not an ``.npz`` (a single ``.npy``, an ONNX model renamed, text), a corrupt
    archive or an array of Python objects raises ``error`` with one line saying which and how to write the file.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such .npz file; check the path")
    with path.open("rb") as file:
        head = file.read(len(_NPY_MAGIC))
    if head.startswith(_NPY_MAGIC):
        raise error(f"{path}: a single .npy array, not an .npz archive of named arrays; write it with "
                    f"numpy.savez(path, name=array, ...)")
    if not head.startswith(_ZIP_MAGIC):
        raise error(f"{path}: not an .npz archive (a zip of .npy arrays) -- it starts with {head[:4]!r}, so it is "
                    f"another kind of file (an ONNX model or text renamed, say); write it with numpy.savez")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                try:
                    arrays[key] = data[key]
                except ValueError as exc:
                    if "pickle" not in str(exc) and "Object arrays" not in str(exc):
                        raise
                    raise error(f"{path}: array {key!r} holds Python objects (pickled data), which sparq never "
                                f"loads; save plain numeric arrays (numpy.savez(path, {key}=array.astype("
                                f"numpy.float32)))") from None
    except CompileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = type(exc).__name__ if "pickle" in reason else reason
        raise error(f"{path}: not a readable .npz archive ({reason}); the file is corrupt or truncated -- write it "
                    f"again") from None
    return arrays


def load_arrays(path):
    """All arrays in the model ``.npz`` file at ``path`` (:func:`read_archive`), or a :class:`ModelFormatError`."""
    return read_archive(path, ModelFormatError)


def read_npz(path, layers=None, input_shape=None):
    """Read an IR :class:`~sparq.compiler.ir.Model` from the ``.npz`` file at ``path`` (see the module docstring)."""
    return model_from_arrays(load_arrays(path), Path(path), layers, input_shape)


def write_npz(model, path):
    """Write ``model`` to ``path`` as weight arrays plus its layer list, readable by :func:`read_npz`."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **model_arrays(model))

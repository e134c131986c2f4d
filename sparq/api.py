"""sparq from Python: the flow of the ``sparq`` command as five functions, re-exported by the package (``import
sparq`` is cheap: this module is imported on first use of one of them)::

    import sparq
    model = sparq.load("model.onnx")                      # or an IR model, or a dict of weight matrices
    compressed = sparq.compress(model, data="data.npz", sparsity=0.9, bits=4)
    image = sparq.lower(compressed, target="eie", n_pe=16)
    result = sparq.simulate(image, x, backend="rtl")      # outputs, cycles, counters, bit-exact check
    sparq.export(compressed, "compressed.onnx")

Each function does what the command of the same name does, through the same code (:mod:`sparq.flow`,
:mod:`sparq.simulation`): the same defaults (EIE memories sized to the image, 4 PEs, a 4x4 array; the data and
sparsities of a shipped model), the same checks, and the same errors.

**Data** (``data=``) is anything ``--data`` takes (an ``.npz`` path in the layouts of :mod:`sparq.compiler.data`, or
a bundled name: ``"digits"``, ``"wine"``, ``"breast_cancer"``), or arrays: a dict of those layouts' arrays, a
``(x_train, y_train, x_test, y_test)`` tuple, a :class:`sparq.compiler.data.Dataset`, or an array ``x`` alone (no
labels). ``data=None``: for a model from a file (a path, or what :func:`load` read from one and is unchanged), what
the command would use (the data set of a shipped model, else the bundled digits); for a model built in memory (a
weight matrix), no data: the compression is one-shot on the weights alone and the EIE lowering is not calibrated.

**Files.** Every function writes the files the command writes, with the same records (:mod:`sparq.workspace`):

* :func:`compress` into ``workspace`` (what ``--out`` names; it holds ``compressed.npz``, ``compression.json``...);
* :func:`lower` into ``out``, by default ``<the compression's workspace>/<target>``;
* :func:`simulate` adds ``simulation-<backend>.json`` to the lowered directory.

Without ``workspace`` (or ``out``), the files go to a new temporary directory (``sparq-api-*`` in the system's
temporary folder), deleted when the objects this module returned that use it are garbage-collected, or at exit.
Arrays given in memory (a model built in memory that a lowering must read again, data given as arrays) are saved as
``.npz`` files named by their SHA-256 in a folder ``sources/``: in the workspace for :func:`compress`, next to the
lowered directory for :func:`lower` and :func:`simulate`; so the records can name them. Nothing else is written.

**Errors** are the command line's: one :class:`sparq.errors.SparqError` (:class:`~sparq.errors.InputError` for bad
input, :class:`~sparq.errors.DoesNotFit`, :class:`~sparq.errors.VerificationFailed`, ...) with the one-line
message, ``hint`` (also a note on the traceback) and ``code``, the exit code ``sparq`` would return; its traceback
ends in this module, and ``original`` holds the exception it stands for.
"""

import functools
import hashlib
import os
import shutil
import tempfile
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError, as_sparq_error

__all__ = ["load", "compress", "lower", "simulate", "export", "Compressed", "Image", "Simulation"]


def _front_door(function):
    """Run ``function`` with every error turned into the :class:`sparq.errors.SparqError` the command would
    report (its traceback ending here); Ctrl-C stays a KeyboardInterrupt."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        import warnings

        from amaranth.hdl import UnusedElaboratable
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=UnusedElaboratable)  # as the command line does
                return function(*args, **kwargs)
        except Exception as error:  # every error becomes the command's one line
            raise as_sparq_error(error) from None
    return call


class _Scratch:
    """A temporary directory for the API's files, removed when no object refers to it any more (or at exit)."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="sparq-api-"))
        weakref.finalize(self, shutil.rmtree, str(self.path), True)


def _digest(arrays):
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = arrays[key]
        digest.update(key.encode() + str(value.dtype).encode() + str(value.shape).encode())
        digest.update(value.tobytes() if value.dtype.kind != "U" else str(value).encode())
    return digest.hexdigest()


def _save_source(directory, stem, arrays):
    """Save ``arrays`` as ``<directory>/<stem>-<sha256 prefix>.npz`` (once; atomically) and return the path."""
    import numpy as np

    from .workspace import atomic_file
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stem}-{_digest(arrays)[:16]}.npz"
    return path if path.is_file() else atomic_file(path, lambda file: np.savez(file, **arrays))


# --- load ------------------------------------------------------------------------------------------------------------

_loaded = weakref.WeakKeyDictionary()
"""IR model -> (file it was read from, digest of its arrays then): a model :func:`load` read is still that file."""


def _model_digest(model):
    from sparq.compiler.npz_io import model_arrays
    return _digest(model_arrays(model))


def _from_matrices(matrices):
    """The MLP of a dict of weight matrices ``{name: W or (W, b)}``, in order, a ReLU between two layers."""
    import numpy as np

    from sparq.compiler.ir import Dense, Model, Relu
    if isinstance(matrices, np.ndarray):
        matrices = {"fc": matrices}
    layers = []
    for number, (name, value) in enumerate(matrices.items()):
        weight, bias = value if isinstance(value, (tuple, list)) else (value, None)
        weight = np.asarray(weight)
        if weight.ndim != 2 or weight.dtype.kind not in "biuf" or 0 in weight.shape:
            raise InputError(f"weight matrix {name!r} has shape {weight.shape} and type {weight.dtype}",
                             "give 2-D numeric matrices of shape (outputs, inputs), as a Dense (PyTorch Linear) "
                             "layer holds them")
        if number:
            layers.append(Relu(f"{name}_relu_in"))
        layers.append(Dense(str(name), weight.astype(np.float32),
                            None if bias is None else np.asarray(bias, dtype=np.float32)))
    if not layers:
        raise InputError("no weight matrices given", "give {name: matrix}, or one matrix")
    return Model(layers, (layers[0].weight.shape[1],))


@_front_door
def load(source):
    """An IR model (:class:`sparq.compiler.ir.Model`) from ``source``: a model file (``.onnx``, an ``.npz`` model or
    a ``compressed.npz``, whose decoded weights it returns), an IR model (returned as it is), one weight matrix (a
    2-D numpy array of shape ``(outputs, inputs)``: a Dense layer with a zero bias) or a dict of them (``{name: W}``
    or ``{name: (W, bias)}``: Dense layers in that order with a ReLU between two). A weight matrix alone can be
    compressed, lowered to EIE and simulated: one layer of a large pretrained network."""
    import numpy as np

    from sparq.compiler.ir import Model

    from .workspace import load_float, source_file
    if isinstance(source, Model):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        with source_file(path):
            model = load_float(path)
        _loaded[model] = (path.resolve(), _model_digest(model))
        return model
    if isinstance(source, (dict, np.ndarray)):
        return _from_matrices(source)
    raise InputError(f"cannot load a {type(source).__name__}", "give a model file, an IR model, a weight matrix or "
                     "a dict of weight matrices")


def _model_file(model):
    """The file ``model`` was loaded from when it is unchanged since, else None."""
    known = _loaded.get(model)
    if known is not None and known[0].is_file() and known[1] == _model_digest(model):
        return known[0]
    return None


# --- data ------------------------------------------------------------------------------------------------------------

def _data_arrays(data):
    """The arrays of ``data`` given in memory, as a dict of one of :data:`sparq.compiler.data.LAYOUTS`."""
    import numpy as np

    from sparq.compiler.data import Dataset
    if isinstance(data, Dataset):
        if not data.labelled:
            return {"x": data.x_train}
        return dict(zip(("x_train", "y_train", "x_test", "y_test"), data.split))
    if isinstance(data, dict):
        return data
    if isinstance(data, (tuple, list)) and len(data) == 4:
        return dict(zip(("x_train", "y_train", "x_test", "y_test"), data))
    if isinstance(data, np.ndarray):
        return {"x": data}
    raise InputError(f"data of type {type(data).__name__} is not something sparq reads",
                     "give an .npz path, a bundled name, a dict of arrays, (x_train, y_train, x_test, y_test) or x")


def _origin(data, sources):
    """The :class:`sparq.data.Origin` of ``data`` (module docstring); arrays are saved under ``sources``."""
    from .data import Origin, choose
    if data is None or isinstance(data, (str, os.PathLike, Origin)):
        return None if data is None else choose(data)
    return choose(_save_source(sources, "data", _data_arrays(data)))


# --- results ---------------------------------------------------------------------------------------------------------

@dataclass(eq=False)
class Compressed:
    """What :func:`compress` made: the :class:`sparq.compiler.pipeline.CompressedModel` ``model``, its ``report``
    (:mod:`sparq.compiler.report`'s dict: ``layers``, ``total``, ``accuracy``, ``mode``, ``output_drift``,
    ``sensitivity``...), ``data`` (the data's description line), ``path`` of ``compressed.npz`` and its
    ``workspace``."""

    model: object
    report: dict
    data: str
    path: Path
    workspace: Path
    _keep: list = field(default_factory=list, repr=False)

    @property
    def ratio(self):
        """The compression ratio of the whole model (pruned + quantized + Huffman)."""
        return self.report["total"]["ratio"]["huffman"]

    @property
    def accuracy(self):
        """Test accuracy by stage (``float``, ..., ``compressed``); empty when it was not measured."""
        return dict(self.report["accuracy"])

    def forward(self, x):
        """The compressed model's float outputs on ``x`` (its decoded weights): the reference a lowering's outputs
        approximate in fixed point."""
        from sparq.compiler.data import fit_inputs
        from sparq.compiler.ir import forward
        return forward(self.model.model, fit_inputs(x, self.model.model.input_shape)[0])


@dataclass(eq=False)
class Image:
    """What :func:`lower` made: the ``target`` name, the lowered ``directory``, the hardware ``config``, the
    printed ``description`` (what ``sparq lower`` prints), the EIE image's ``storage`` by memory (None for the
    systolic array) and the :class:`sparq.targets.Lowered` ``lowered``."""

    target: str
    directory: Path
    config: object
    description: list
    storage: dict
    lowered: object = field(repr=False)
    _keep: list = field(default_factory=list, repr=False)


@dataclass(eq=False)
class Simulation:
    """What :func:`simulate` measured: ``outputs`` (float64, one row per input, in real units), ``predictions`` (the
    arg-max of each), ``cycles`` in all and ``cycles_per_input``, ``counters`` (the run's cycle counts and the
    target's own: per-PE busy/starve/stall for EIE, the accelerator's counters for the systolic array),
    ``bit_exact`` (True: every RTL output was compared with the golden model's and equal; None on the golden
    backend, which is the reference), ``accuracy`` (None without labels), ``result`` (the whole
    :class:`sparq.results.SimulationResult`) and ``path`` of the ``simulation-<backend>.json`` written."""

    outputs: object
    predictions: object
    cycles: int
    cycles_per_input: float
    counters: dict
    bit_exact: object
    accuracy: object
    result: object = field(repr=False)
    path: Path = None


# --- the steps -------------------------------------------------------------------------------------------------------

def _workspace(workspace, keep):
    """The directory to write into and the list of scratch directories that must live as long as the result."""
    if workspace is not None:
        return Path(workspace), keep
    scratch = _Scratch()
    return scratch.path / "workspace", [*keep, scratch]


@_front_door
def compress(model, data=None, sparsity=None, bits=4, *, retrain=True, max_drop=0.5, workspace=None, onnx=False,
             progress=False):
    """Deep Compression of ``model`` (anything :func:`load` takes) on ``data`` (module docstring) with ``bits``-bit
    shared weights: ``sparsity`` one fraction for every layer, ``{layer: fraction}``, ``"auto"`` (a sensitivity
    scan within ``max_drop`` accuracy points) or None (a shipped model's own sparsities). ``retrain=False``, data
    without labels, or no data compress one-shot. Writes ``compressed.npz`` and ``compression.json`` (and with
    ``onnx`` ``compressed.onnx``) into ``workspace`` (module docstring); ``progress`` shows the training bars.
    Returns a :class:`Compressed`."""
    from .data import NO_DATA
    from .flow import compress_model
    out, keep = _workspace(workspace, [])
    if isinstance(model, (str, os.PathLike)):
        source, name = Path(model), None
    else:
        model = load(model)
        source = _model_file(model)
        name = None if source is not None else "model"
    origin = _origin(data, out / "sources")
    if origin is None and source is None:
        origin = NO_DATA
    if isinstance(sparsity, (int, float)) and not isinstance(sparsity, bool):
        sparsity = float(sparsity)
    elif sparsity is None:
        sparsity = ()
    done = compress_model(source if source is not None else model, out, bits=bits, sparsity=sparsity,
                          retrain=retrain, max_drop=max_drop, data=origin, onnx=onnx,
                          progress=None if progress else False, name=name)
    return Compressed(done.compressed, done.report, done.data.description, done.paths["model"], out, keep)


def _source_for_lowering(model, target, keep):
    """``(model file, default output directory, keep)`` of what :func:`lower` was given."""
    from sparq.compiler.ir import Model
    from sparq.compiler.npz_io import model_arrays
    from sparq.compiler.pipeline import CompressedModel

    from .workspace import read_record
    if isinstance(model, Compressed):
        return model.path, model.workspace / target, [*keep, *model._keep]
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if path.is_file() and read_record(path.parent) is not None:
            return path, path.parent / target, keep
        out, keep = _workspace(None, keep)
        return path, out.parent / target, keep
    out, keep = _workspace(None, keep)
    if isinstance(model, CompressedModel):
        path = out.parent / "sources" / "compressed.npz"  # a fresh temporary directory: nothing else there
        path.parent.mkdir(parents=True)
        model.save(path)
        return path, out.parent / target, keep
    if not isinstance(model, Model):
        model = load(model)
    file = _model_file(model)
    if file is None:
        file = _save_source(out.parent / "sources", "model", model_arrays(model))
    return file, out.parent / target, keep


@_front_door
def lower(model, target="eie", *, out=None, data=None, config=None, batch=None, **fields):
    """Lower ``model`` (a :class:`Compressed`, a model file, or for the systolic array also an IR model) for
    ``target`` ("eie" or "systolic"), as ``sparq lower`` does: hardware fields as keywords (``n_pe=16``,
    ``fifo_depth=8``, ``rows=8``, ``cols=8``, ``spmat_depth=...``: any field of
    :class:`sparq.formats.eie.EieConfig` / :class:`sparq.formats.systolic.SystolicConfig`) over ``config`` (a TOML
    file, a dict of fields, or a configuration object) over the target's defaults; EIE memory depths not given are
    sized to the image. Calibrates on ``data`` (module docstring; None: the compression's data). ``batch``: at most
    that many inputs per systolic device call. Writes into ``out`` (module docstring). Returns an :class:`Image`."""
    import dataclasses

    from .flow import lower_model
    from .hwconfig import parameters
    from .targets import get
    target = get(target)
    source, default_out, keep = _source_for_lowering(model, target.name, [])
    out = Path(out) if out is not None else default_out
    config_path, values = None, dict(fields)
    if isinstance(config, (str, os.PathLike)):
        config_path = config
    elif dataclasses.is_dataclass(config):
        values = {**dataclasses.asdict(config), **values}
    elif isinstance(config, dict):
        values = {**config, **values}
    elif config is not None:
        raise InputError(f"config of type {type(config).__name__}", "give a TOML path, a dict of fields or a "
                         f"{target.config_class.__name__}")
    params = parameters(target, config_path, fields=values)
    lowered = lower_model(source, target, params, out, data=_origin(data, out.parent / "sources"), batch=batch)
    return Image(target.name, lowered.directory, lowered.config, lowered.target.describe(lowered),
                 lowered.meta.get("storage"), lowered, keep)


@_front_door
def simulate(image, x=None, backend="golden", *, labels=None, images=20, data=None, seed=0, optimize=None,
             runner=None, progress=False):
    """Run inputs on ``image`` (an :class:`Image` or a lowered directory) on the ``backend`` "golden" (the
    bit-exact model, cycles from the cycle model) or "rtl" (the design under Verilator, every output compared with
    the golden model's), as ``sparq simulate`` does. The inputs: ``x`` (float, of the model's input shape) with
    optional ``labels``, or the first ``images`` test inputs of ``data`` (None: the data the image was lowered
    with). ``seed`` of the RTL's random stalls, ``optimize`` the Verilator build (None: the target's default),
    ``runner`` the RTL runner (:class:`sparq.targets.RunOptions`), ``progress`` shows progress bars. Returns a
    :class:`Simulation`."""
    import numpy as np

    from .flow import load_lowered
    from .simulation import simulate as run
    from .workspace import opened, simulation_path
    directory = image.directory if isinstance(image, Image) else Path(image)
    console = None
    if progress:
        from rich.console import Console
        console = Console()
    with opened(directory, exclusive=True):
        lowered = load_lowered(directory)
        result = run(lowered, backend, images=images, data=_origin(data, directory.parent / "sources"), x=x,
                     labels=labels, seed=seed, console=console, optimize=optimize, runner=runner)
    counters = {"cycles": result.cycles, "compute_cycles": result.compute_cycles,
                "model_cycles": result.model_cycles, **asdict(result.details)}
    return Simulation(np.asarray(result.outputs), np.asarray(result.predictions), result.cycles,
                      result.cycles / result.images, counters, True if backend == "rtl" else None, result.accuracy,
                      result, simulation_path(directory, backend))


@_front_door
def export(compressed, path=None, softmax=None):
    """Write ``compressed`` (a :class:`Compressed` or a ``compressed.npz``) as a standard ONNX file that onnxruntime
    runs (decoded weights), as ``sparq export`` does: at ``path`` (default ``compressed.onnx`` in its workspace,
    added to the workspace's record); ``softmax`` None keeps the source's trailing Softmax. Returns the path."""
    from .flow import export_model
    source = compressed.path if isinstance(compressed, Compressed) else Path(compressed)
    return export_model(source, path, softmax=softmax)

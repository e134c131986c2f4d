"""The steps of the sparq flow that turn a model into something a target runs: compress, lower, export, and load a
lowering back. Each writes its files under a workspace directory (:mod:`sparq.workspace`, default ``build/sparq``),
in one atomic write with the record that lists them:

* ``compress`` -> ``compressed.npz`` (:class:`sparq.compiler.pipeline.CompressedModel`), ``compression.json`` (the
  per-layer report of :mod:`sparq.compiler.report`) and, when asked, ``compressed.onnx`` (:func:`export_model`), in
  a directory of kind ``compressed``;
* ``lower --target NAME`` -> what the :class:`sparq.targets.Target` writes (an EIE image directory, one systolic
  program per device step), in a directory of kind ``lowered``;
* ``simulate`` (:mod:`sparq.simulation`) -> ``simulation-<backend>.json`` in the lowered directory.

Every step takes its data as an :class:`sparq.data.Origin` (``data=``; None: the one the step before recorded, else
the bundled data set of a shipped model, else the bundled digits, :func:`sparq.data.choose`) and records it, so a
later step without ``--data`` uses the same data and a data file changed since is refused. A step reads its inputs
under their directories' shared locks, computes, then writes; :func:`image_in` is how ``sparq synth --image`` reads a
lowered image.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .data import choose, load, recorded_origin
from .errors import InputError
from .targets import get
from .workspace import (
    COMPRESSED,
    COMPRESSION,
    ONNX,
    RECORD,
    atomic_file,
    check_output,
    load_compressed,
    load_float,
    opened,
    read_record,
    require_file,
    sha256,
    source_file,
    writing,
    written_by_sparq,
)

__all__ = ["parse_sparsity", "Compression", "compress_model", "default_sparsity", "export_model", "lower_model",
           "load_lowered", "image_in"]


def parse_sparsity(values, model):
    """``--sparsity`` values (``"0.9"`` for every weighted layer, ``"fc1=0.93"``, or ``"auto"``) as ``{layer:
    fraction}`` or ``"auto"``."""
    names = [layer.name for layer in model.weighted()]
    if "auto" in values:
        if len(values) > 1:
            raise InputError("--sparsity auto chooses every layer's sparsity", "give --sparsity auto alone, or "
                             "fractions")
        return "auto"
    sparsity = {}
    for text in values:
        name, sep, value = text.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            raise InputError(f"--sparsity {text!r} is not a fraction", "write --sparsity 0.9, --sparsity fc1=0.93 "
                             "or --sparsity auto") from None
        for layer in ([name] if sep else names):
            if layer not in names:
                raise InputError(f"--sparsity names layer {layer!r}, which the model does not have",
                                 f"its weighted layers are {', '.join(names)}")
            sparsity[layer] = fraction
    return sparsity


def default_sparsity(path):
    """The hand-chosen sparsities of the shipped model at ``path`` (:data:`sparq.compiler.pipeline.SHIPPED_SPARSITY`),
    None for any other model."""
    from sparq.compiler.models import SHIPPED, shipped_path
    from sparq.compiler.pipeline import SHIPPED_SPARSITY
    if path is None:
        return None
    resolved = Path(path).resolve()
    return next((dict(SHIPPED_SPARSITY[name]) for name in SHIPPED if shipped_path(name).resolve() == resolved), None)


@dataclass(eq=False)
class Compression:
    """What :func:`compress_model` made: the :class:`sparq.compiler.pipeline.CompressedModel`, its report, the
    :class:`sparq.data.Data` it used and the paths it wrote (``model``, ``report``, and ``onnx`` if asked)."""

    compressed: object
    report: dict
    data: object
    paths: dict


def compress_model(model, out_dir, *, bits=4, sparsity=(), retrain=True, max_drop=0.5, data=None, onnx=False,
                   progress=None, name=None):
    """Deep Compression of ``model`` (a model file; None: the bundled digits MLP; or, from the API, an IR model
    called ``name``) on ``data`` (an :class:`sparq.data.Origin`; None: the model's default, module docstring);
    writes ``compressed.npz``, ``compression.json`` and with ``onnx`` ``compressed.onnx`` into ``out_dir``; returns
    a :class:`Compression`.

    ``sparsity``: ``--sparsity`` values (:func:`parse_sparsity`) or a dict or fraction or "auto"; empty: the shipped
    model's own (:func:`default_sparsity`). ``retrain=False`` (or data without labels, or no data) compresses one-shot;
    ``max_drop`` is the accuracy budget of ``"auto"`` in points."""
    from sparq.compiler.models import shipped_path
    from sparq.compiler.pipeline import DeepCompressionConfig, compress
    from sparq.compiler.report import write_report
    path = None
    if model is None or isinstance(model, (str, os.PathLike)):
        path = require_file(model or shipped_path("digits_mlp"), "model file",
                            "give an .onnx or .npz model, or no model for the bundled digits MLP")
    out = check_output(out_dir, "compressed")
    if path is not None:
        with source_file(path):
            model, source_meta = load_float(path), {"model": str(path.resolve()), "model_sha256": sha256(path)}
        name = path.stem
    else:
        source_meta = {"model": None, "model_sha256": None}
    origin = choose(data, model_path=path)
    used = load(origin, model, path)
    if isinstance(sparsity, (list, tuple)):
        fractions = parse_sparsity(list(sparsity), model) if sparsity else default_sparsity(path)
    else:
        fractions = sparsity
    if fractions is None:
        raise InputError(f"{path or name}: no pruning target for this model", "pass --sparsity 0.9 (every layer), "
                         "per layer (--sparsity fc1=0.93 --sparsity fc2=0.95), or --sparsity auto")
    if isinstance(fractions, dict):
        names = [layer.name for layer in model.weighted()]
        unknown = sorted(set(fractions) - set(names))
        if unknown:
            raise InputError(f"the sparsities name layers {unknown}, which the model does not have",
                             f"its weighted layers are {', '.join(names)}")
    if fractions == "auto" and not used.labelled:
        raise InputError(f"--sparsity auto measures accuracy, and {used.origin.label} has no labels",
                         "give labelled data (x_train/y_train/x_test/y_test, or x and y), or fixed sparsities")
    config = DeepCompressionConfig(sparsity=fractions, bits=bits, retrain=retrain, max_drop=max_drop)
    compressed, report = compress(model, used.dataset, config, name=name, progress=progress)
    report["source"] = str(path) if path is not None else f"{name} (given in memory)"
    report["data"] = used.description
    paths = {"model": out / COMPRESSED, "report": out / COMPRESSION}
    with writing(out, "compressed") as transaction:
        transaction.write(COMPRESSED, compressed.save)
        transaction.write(COMPRESSION, lambda file: write_report(report, file))
        if onnx:
            transaction.write(ONNX, compressed.export_onnx)
            paths["onnx"] = out / ONNX
        transaction.meta = {**source_meta, "data": origin.to_json()}
    return Compression(compressed, report, used, paths)


def export_model(model_path, out=None, softmax=None):
    """Write the compressed model ``model_path`` (a ``compressed.npz``) as a standard ONNX file: ``out`` (default
    ``compressed.onnx`` next to it, added to that workspace's record); a file elsewhere is written atomically, and a
    directory another sparq command owns is refused. ``softmax`` None keeps the source model's trailing Softmax.
    Returns the path written."""
    model_path = Path(model_path)
    out = Path(out) if out is not None else model_path.parent / ONNX
    if out.suffix.lower() != ".onnx":
        raise InputError(f"{out}: an ONNX file's name ends in .onnx", "give --out MODEL.onnx")
    if out.is_dir():
        raise InputError(f"{out} is a directory", "give --out the path of the .onnx file to write")
    with source_file(model_path) as record:
        compressed = load_compressed(model_path)
    if out.parent.resolve() == model_path.parent.resolve() and record is not None:
        if out.name != ONNX:
            raise InputError(f"{out}: a workspace holds its ONNX export as {ONNX}",
                             f"give --out {out.parent / ONNX}, or a path outside the workspace")
        with writing(out.parent, "compressed", keep=True, expect=record) as transaction:
            transaction.write(ONNX, lambda file: compressed.export_onnx(file, softmax))
        return out
    if not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such directory", "create it first, or give --out another path")
    if written_by_sparq(out.parent) or read_record(out.parent) is not None:
        raise InputError(f"{out.parent} is a directory sparq writes", "give --out a path outside sparq's directories "
                         "(or the compressed model's own workspace)")
    atomic_file(out, lambda file: compressed.export_onnx(file, softmax))
    return out


def lower_model(source, target, params, out_dir, *, data=None, batch=None):
    """Lower the model file ``source`` for ``target`` (a :class:`sparq.targets.Target` or its name) with hardware
    ``params`` (:func:`sparq.hwconfig.parameters`) into ``out_dir``, calibrating on ``data`` (an
    :class:`sparq.data.Origin`; None: the data its compression recorded, module docstring) where the target needs
    it, with at most ``batch`` images per device call (targets that have calls; None: as many as fit); returns the
    :class:`sparq.targets.Lowered`."""
    target = get(target)
    source = Path(source)
    out = check_output(out_dir, "lowered")
    if data is None:
        with source_file(require_file(source, "model file", "give a compressed.npz from `sparq compress`, an .onnx "
                                      "or an .npz")) as record:
            recorded = recorded_origin(record) if record is not None and record.kind == "compressed" else None
        data = choose(None, recorded=recorded, model_path=source)
    lowered = target.lower(source, params, data, batch=batch)
    with writing(out, "lowered") as transaction:
        target.save(lowered, transaction.staging)
        transaction.step(f"wrote the {target.name} files")
        transaction.meta = lowered.meta
    lowered.directory, lowered.record = out, transaction.record
    return lowered


def _lowering(record, directory):
    if record is None:
        raise InputError(f"{directory}: not a lowered model (no sparq.json)", "run `sparq lower ... --out DIR` first")
    return get(record.meta.get("target"))


def load_lowered(directory):
    """The :class:`sparq.targets.Lowered` that :func:`lower_model` wrote into ``directory``, every file checked
    against its record, with the data it was lowered with (its ``data``)."""
    with opened(directory, kinds=["lowered"]) as (record,):
        return _lowering(record, directory).load(record)


@contextmanager
def image_in(path):
    """Read the image ``path`` in the ``with`` block: when it is a lowered directory (an EIE image) or a file of one
    (a systolic program), under the directory's lock, with the directory's files verified and its image checked
    against its record (:meth:`sparq.targets.Target.read_image`); a file no record lists as it is. A directory sparq
    has written whose record is missing is refused."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    with opened(directory) as (record,):
        if record is None:
            if written_by_sparq(directory):
                raise InputError(f"{directory}: sparq wrote it, but its {RECORD} is missing",
                                 "lower the model again (sparq lower ... --out DIR)")
        elif record.kind == "lowered" and (path == directory or path.name in record.files):
            _lowering(record, directory).read_image(record)
        yield

"""The steps of the sparq flow that turn a model into something a target runs: compress, lower, and load a lowering
back. Each writes its files under a workspace directory (:mod:`sparq.workspace`, default ``build/sparq``), in one
atomic write with the record that lists them:

* ``compress`` -> ``compressed.npz`` (:class:`sparq.compiler.pipeline.CompressedModel`) and ``compression.json`` (the
  per-layer report of :mod:`sparq.compiler.report`), in a directory of kind ``compressed``;
* ``lower --target NAME`` -> what the :class:`sparq.targets.Target` writes (an EIE image directory, one systolic
  program per device step), in a directory of kind ``lowered``;
* ``simulate`` (:mod:`sparq.simulation`) -> ``simulation-<backend>.json`` in the lowered directory.

Every step takes its data as a parameter (``data=``, a :class:`sparq.data.Dataset`; default the bundled digits
split, :func:`sparq.data.digits`); the models must take its inputs. A step reads its inputs under their directories'
shared locks, computes, then writes; :func:`image_in` is how ``sparq synth --image`` reads a lowered image.
"""

from contextlib import contextmanager
from pathlib import Path

from .data import digits
from .errors import InputError
from .targets import get
from .workspace import (
    COMPRESSED,
    COMPRESSION,
    RECORD,
    check_output,
    load_float,
    opened,
    require_file,
    sha256,
    source_file,
    writing,
    written_by_sparq,
)

__all__ = ["parse_sparsity", "compress_model", "lower_model", "load_lowered", "image_in"]


def parse_sparsity(values, model):
    """``--sparsity`` values (``"0.9"`` for every weighted layer, or ``"fc1=0.93"``) as ``{layer: fraction}``."""
    names = [layer.name for layer in model.weighted()]
    sparsity = {}
    for text in values:
        name, sep, value = text.rpartition("=")
        try:
            fraction = float(value)
        except ValueError:
            raise InputError(f"--sparsity {text!r} is not a fraction", "write --sparsity 0.9 or "
                             "--sparsity fc1=0.93") from None
        for layer in ([name] if sep else names):
            if layer not in names:
                raise InputError(f"--sparsity names layer {layer!r}, which the model does not have",
                                 f"its weighted layers are {', '.join(names)}")
            sparsity[layer] = fraction
    return sparsity


def compress_model(model_path, out_dir, *, bits=4, sparsity=(), progress=None, data=None):
    """Deep Compression of ``model_path`` (default: the bundled digits MLP) on ``data`` (default the digits split);
    writes ``compressed.npz`` and ``compression.json`` into ``out_dir``; returns ``(CompressedModel, report,
    paths)``."""
    from sparq.compiler.models import shipped_path
    from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY, DeepCompressionConfig, compress
    from sparq.compiler.report import write_report
    default = shipped_path("digits_mlp")
    path = require_file(model_path or default, "model file",
                        "give an .onnx or .npz model, or no model for the bundled digits MLP")
    out = check_output(out_dir, "compressed")
    with source_file(path):
        model, model_sha256 = load_float(path), sha256(path)
    data = data or digits()
    data.check_input(model, path)
    if sparsity:
        fractions = parse_sparsity(sparsity, model)
    elif path.resolve() == default.resolve():
        fractions = dict(DIGITS_MLP_SPARSITY)
    else:
        raise InputError(f"{path}: no pruning target for this model", "pass --sparsity 0.9 (every layer) or "
                         "per layer, --sparsity fc1=0.93 --sparsity fc2=0.95")
    config = DeepCompressionConfig(sparsity=fractions, bits=bits)
    compressed, report = compress(model, data.split, config, name=path.stem, progress=progress)
    report["source"] = str(path)
    with writing(out, "compressed") as transaction:
        transaction.write(COMPRESSED, compressed.save)
        transaction.write(COMPRESSION, lambda file: write_report(report, file))
        transaction.meta = {"model": str(path.resolve()), "model_sha256": model_sha256}
    return compressed, report, {"model": out / COMPRESSED, "report": out / COMPRESSION}


def lower_model(source, target, params, out_dir, *, data=None, batch=None):
    """Lower the model file ``source`` for ``target`` (a :class:`sparq.targets.Target` or its name) with hardware
    ``params`` (:func:`sparq.hwconfig.parameters`) into ``out_dir``, calibrating on ``data`` (default the digits
    split) where the target needs it, with at most ``batch`` images per device call (targets that have calls; None:
    as many as fit); returns the :class:`sparq.targets.Lowered`."""
    target = get(target)
    out = check_output(out_dir, "lowered")
    lowered = target.lower(Path(source), params, data or digits(), batch=batch)
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


def load_lowered(directory, *, data=None):
    """The :class:`sparq.targets.Lowered` that :func:`lower_model` wrote into ``directory`` (``data``: the data it
    was lowered with, default the digits split), every file checked against its record."""
    with opened(directory, kinds=["lowered"]) as (record,):
        return _lowering(record, directory).load(record, data or digits())


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

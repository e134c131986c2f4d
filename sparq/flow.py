"""The steps of the sparq flow that turn a model into something a target runs: compress, lower, and load a lowering
back. Each writes files a later step (or a person) reads, under a workspace directory (:mod:`sparq.workspace`,
default ``build/sparq``):

* ``compress`` -> ``compressed.npz`` (:class:`sparq.compiler.pipeline.CompressedModel`) and ``compression.json`` (the
  per-layer report of :mod:`sparq.compiler.report`);
* ``lower --target NAME`` -> what the :class:`sparq.targets.Target` writes (an EIE image directory, one systolic
  program per device step) plus ``sparq.json``;
* ``simulate`` (:mod:`sparq.simulation`) -> ``simulation-<backend>.json`` in the lowered directory.

Every step takes its data as a parameter (``data=``, a :class:`sparq.data.Dataset`; default the bundled digits
split, :func:`sparq.data.digits`); the models must take its inputs.
"""

from pathlib import Path

from .data import digits
from .errors import InputError
from .targets import get
from .workspace import read_marker, require_file, write_marker

__all__ = ["parse_sparsity", "compress_model", "lower_model", "load_lowered"]


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
    from sparq.compiler.models import load_model, shipped_path
    from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY, DeepCompressionConfig, compress
    from sparq.compiler.report import write_report

    default = shipped_path("digits_mlp")
    path = require_file(model_path or default, "model file",
                        "give an .onnx or .npz model, or no model for the bundled digits MLP")
    model = load_model(path)
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
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    compressed.save(out / "compressed.npz")
    report["source"] = str(path)
    write_report(report, out / "compression.json")
    return compressed, report, {"model": out / "compressed.npz", "report": out / "compression.json"}


def lower_model(source, target, params, out_dir, *, data=None):
    """Lower the model file ``source`` for ``target`` (a :class:`sparq.targets.Target` or its name) with hardware
    ``params`` (:func:`sparq.hwconfig.parameters`) into ``out_dir``, calibrating on ``data`` (default the digits
    split) where the target needs it; returns the :class:`sparq.targets.Lowered`."""
    lowered = get(target).lower(Path(source), params, Path(out_dir), data or digits())
    write_marker(lowered.directory, lowered.meta)
    return lowered


def load_lowered(directory, *, data=None):
    """The :class:`sparq.targets.Lowered` that :func:`lower_model` wrote into ``directory`` (``data``: the data it
    was lowered with, default the digits split)."""
    directory = Path(directory)
    name, meta = read_marker(directory)
    return get(name).load(directory, meta, data or digits())

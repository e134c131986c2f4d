"""The Deep Compression pipeline: prune, retrain, share weights, fine-tune the centroids, Huffman-code.

:func:`compress` runs it on any IR model with a :class:`DeepCompressionConfig` and data (a
:class:`sparq.compiler.data.Dataset` or the four arrays of a split); :func:`compress_digits_mlp` is the one call for
the shipped digits MLP. Both return a :class:`CompressedModel` (what the EIE lowering consumes) and the report of
:mod:`sparq.compiler.report`. Three modes:

* **retrained** (the default, labelled data): iterative pruning with retraining, k-means sharing, centroid
  fine-tuning, as the paper;
* **one-shot** (``retrain=False``, data without labels, or no data at all): magnitude pruning and k-means sharing,
  no training; without labels the accuracy is not measured (the report says so) and :func:`output_drift` tells how
  far the compressed model's outputs moved from the float model's on the data (:func:`weight_error`, how far the
  weights moved, is always reported);
* **auto sparsity** (``sparsity="auto"``): each layer's sparsity is chosen first by
  :func:`sparq.compiler.sensitivity.sensitivity_scan` on a validation split of the training data, within
  ``max_drop`` accuracy points; the report keeps the scan's curves.

Range problems (:mod:`sparq.compiler.ranges`) are reported before any work starts, and numpy's floating-point
warnings become one :class:`~sparq.compiler.errors.RangeError`. From the command line::

    .venv/bin/python -m sparq.compiler.pipeline --bits 4 --other-methods --json bench/results/compression_digits_mlp.json
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from .data import Dataset, validation_split
from .datasets import load_digits_split
from .errors import CompileError, ConfigError, ModelFormatError
from .ir import forward
from .models import load_shipped
from .npz_io import load_arrays, model_arrays, model_from_arrays
from .prune import prune_and_retrain, prune_one_shot
from .ranges import check_ranges, numeric_guard
from .report import layer_storage, print_report, total_storage, write_report
from .sensitivity import sensitivity_scan
from .share import CodebookWeight, SharedWeights, share_weights
from .train import accuracy, fit

__all__ = ["CompressedModel", "DeepCompressionConfig", "DIGITS_MLP_SPARSITY", "SHIPPED_SPARSITY", "compress",
           "compress_digits_mlp", "output_drift", "weight_error", "main"]

ACCURACY_KEY = "__accuracy__"


@dataclass(eq=False)
class CompressedModel:
    """A weight-shared model: the IR ``model`` whose shared layers' weights are ``shared[name].decode()``.

    ``shared`` maps layer names to :class:`~sparq.compiler.share.SharedWeights`; the biases stay float32 in the model
    (:attr:`biases`); ``accuracy`` holds the measured test accuracies by stage (``"compressed"`` is the decoded
    model's).
    """

    model: object
    shared: dict
    accuracy: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, shared in self.shared.items():
            layer = self.model.layer(name)
            if shared.codes.shape != layer.weight.shape or not np.array_equal(shared.decode(), layer.weight):
                raise ModelFormatError(f"layer {name!r}: its weight is not the decoded shared weight; build the "
                                       f"CompressedModel from the decoded weights")

    @property
    def biases(self):
        """``{layer name: float32 bias}`` of the shared layers."""
        return {name: self.model.layer(name).bias for name in self.shared}

    def export_onnx(self, path, softmax=None):
        """Write the compressed model as a standard ONNX file (opset 17) that any runtime runs: the decoded shared
        weights as dense float32 initializers, the float biases, a Softmax at the end if the source model had one
        (or as ``softmax`` says). ``metadata_props`` record, per layer, the kept fraction and the code bits, and
        the measured accuracies (``sparq.*`` keys)."""
        from .onnx_io import write_onnx

        layers = {name: {"kept": float(np.count_nonzero(s.codes)) / s.codes.size, "bits": s.bits}
                  for name, s in self.shared.items()}
        write_onnx(self.model, path, softmax, metadata={"sparq.compression": json.dumps(layers),
                                                        "sparq.accuracy": json.dumps(self.accuracy)})

    def save(self, path):
        """Write the model, codes, codebooks and accuracies to the ``.npz`` file ``path``."""
        arrays = model_arrays(self.model)
        for name, shared in self.shared.items():
            del arrays[f"{name}.weight"]  # rebuilt from the codes on load
            arrays[f"{name}.codes"] = shared.codes
            arrays[f"{name}.codebook"] = shared.codebook
            arrays[f"{name}.keep_zero"] = np.array(shared.keep_zero)
        arrays[ACCURACY_KEY] = np.array(json.dumps(self.accuracy))
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path):
        """Read a :class:`CompressedModel` written by :meth:`save`; a bad file raises ``ModelFormatError``."""
        arrays = load_arrays(path)
        names = sorted(key[:-len(".codes")] for key in arrays if key.endswith(".codes"))
        if ACCURACY_KEY not in arrays or not names:
            raise ModelFormatError(f"{path}: not a compressed model (no {ACCURACY_KEY!r} or no '<layer>.codes' "
                                   f"arrays); write it with CompressedModel.save")
        shared = {}
        for name in names:
            missing = [k for k in (f"{name}.codebook", f"{name}.keep_zero") if k not in arrays]
            codes, codebook = arrays[f"{name}.codes"], arrays.get(f"{name}.codebook")
            if missing or codes.dtype != np.uint8 or codebook.dtype != np.float32 or codes.size and \
                    codes.max() >= len(codebook):
                raise ModelFormatError(f"{path}: layer {name!r} has missing arrays {missing} or codes that do not "
                                       f"index a float32 codebook; the file is corrupt -- rewrite it")
            shared[name] = SharedWeights(codes, codebook, bool(arrays[f"{name}.keep_zero"]))
            arrays[f"{name}.weight"] = shared[name].decode()
        try:
            accuracies = json.loads(str(arrays[ACCURACY_KEY]))
        except ValueError:
            raise ModelFormatError(f"{path}: the accuracies in {ACCURACY_KEY!r} are not valid JSON; the file is "
                                   f"corrupt -- rewrite it") from None
        return cls(model_from_arrays(arrays, path), shared, accuracies)


@dataclass
class DeepCompressionConfig:
    """Settings of :func:`compress`.

    ``sparsity`` maps layer names to the pruned fraction (absent: not pruned), is one fraction for every weighted
    layer, or is ``"auto"``: chosen per layer by a sensitivity scan within ``max_drop`` accuracy points (needs
    labels). ``retrain=False`` makes the compression one-shot (no training), as data without labels does. Every
    weighted layer is shared with ``bits``-bit codes and zero kept as code 0; ``index_bits`` is the relative index
    width the storage is counted with.
    """

    sparsity: object
    bits: int = 4
    index_bits: int = 5
    init: str = "linear"
    prune_steps: int = 6
    prune_epochs: int = 10
    prune_lr: float = 5e-4
    finetune_epochs: int = 10
    finetune_lr: float = 1e-4
    batch_size: int = 32
    seed: int = 0
    retrain: bool = True
    max_drop: float = 0.5


DIGITS_MLP_SPARSITY = {"fc1": 0.93, "fc2": 0.95, "fc3": 0.7}
"""Per-layer pruned fractions for the digits MLP (7 %, 5 % and 30 % of the weights kept)."""

SHIPPED_SPARSITY = {
    "digits_mlp": DIGITS_MLP_SPARSITY,
    "digits_cnn": {"conv1": 0.5, "conv2": 0.7, "fc": 0.7},
    "wine_mlp": {"fc1": 0.9, "fc2": 0.9, "fc3": 0.6},
    "breast_cancer_mlp": {"fc1": 0.9, "fc2": 0.9, "fc3": 0.5},
}
"""Hand-chosen per-layer pruned fractions of each shipped model (:data:`sparq.compiler.models.SHIPPED`), retrained
with the default :class:`DeepCompressionConfig`: on their test splits the compressed models lose 0.4 (digits MLP),
0.4 (digits CNN), 0 (wine) and 0.6 (breast cancer) accuracy points."""


def output_drift(reference, model, x, batch_size=1024):
    """How far ``model``'s outputs move from ``reference``'s on inputs ``x``: ``{"relative_rms_error": ||y -
    y_ref|| / ||y_ref|| over every output, "top1_agreement": fraction of samples with the same arg-max,
    "samples": n}``."""
    error = norm = agree = 0.0
    for start in range(0, len(x), batch_size):
        y_ref = forward(reference, x[start:start + batch_size]).astype(np.float64)
        y = forward(model, x[start:start + batch_size]).astype(np.float64)
        error += float(np.square(y - y_ref).sum())
        norm += float(np.square(y_ref).sum())
        agree += float((y.argmax(axis=1) == y_ref.argmax(axis=1)).sum())
    return {"relative_rms_error": float(np.sqrt(error / norm)) if norm > 0 else float(np.sqrt(error)),
            "top1_agreement": agree / len(x), "samples": int(len(x))}


def weight_error(reference, model):
    """``{layer: ||W - W_ref|| / ||W_ref||}``: how far each weighted layer's weights moved from ``reference``'s
    (pruning and sharing alone, in a one-shot compression)."""
    return {layer.name: float(np.linalg.norm(layer.weight.astype(np.float64) - reference.layer(layer.name).weight) /
                              max(np.linalg.norm(reference.layer(layer.name).weight.astype(np.float64)), 1e-30))
            for layer in model.weighted()}


def _dataset(data):
    """``data`` as a :class:`~sparq.compiler.data.Dataset` (it may be the four arrays of a labelled split)."""
    if isinstance(data, Dataset):
        return data
    try:
        x_train, y_train, x_test, y_test = data
    except (TypeError, ValueError):
        raise ConfigError("compress needs data as a sparq.compiler.data.Dataset or as (x_train, y_train, x_test, "
                          "y_test)") from None
    return Dataset(x_train, y_train, x_test, y_test, f"arrays: {len(x_train):,} training and {len(x_test):,} test "
                   f"samples", "arrays")


def _targets(model, config, dataset):
    """``(per-layer sparsity, sensitivity scan or None)``: the config's targets, or those an auto scan chooses."""
    if isinstance(config.sparsity, dict):
        return dict(config.sparsity), None
    if isinstance(config.sparsity, (int, float)) and not isinstance(config.sparsity, bool):
        return {layer.name: float(config.sparsity) for layer in model.weighted()}, None
    if config.sparsity != "auto":
        raise ConfigError(f"sparsity must be {{layer: fraction}}, one fraction for every layer, or 'auto', got "
                          f"{config.sparsity!r}")
    if dataset is None or not dataset.labelled:
        raise ConfigError("sparsity='auto' chooses each layer's sparsity by measuring accuracy, which needs labels; "
                          "give y (or y_train and y_test) in the data, or per-layer sparsities")
    _, _, x_val, y_val = validation_split(dataset.x_train, dataset.y_train, seed=config.seed)
    with numeric_guard("the sensitivity scan"):
        scan = sensitivity_scan(model, x_val, y_val, config.max_drop)
    return dict(scan.chosen), scan


def _share(layer, config):
    """:func:`~sparq.compiler.share.share_weights` of one layer, its errors naming the layer."""
    try:
        return share_weights(layer.weight, config.bits, config.init, keep_zero=True, seed=config.seed)
    except CompileError as exc:
        raise type(exc)(f"layer {layer.name!r}: {exc}") from None


def compress(model, data, config, name="model", progress=None):
    """Run Deep Compression on ``model`` with ``data`` (a :class:`~sparq.compiler.data.Dataset`, ``(x_train,
    y_train, x_test, y_test)``, or None for a one-shot compression of the weights alone: a weight matrix with no
    data) and ``config`` (see the module docstring for the modes).

    Retrained: prunes and retrains (:func:`~sparq.compiler.prune.prune_and_retrain`), shares every weighted layer's
    weights with k-means (:func:`~sparq.compiler.share.share_weights`, ``keep_zero``), fine-tunes the centroids.
    One-shot: :func:`~sparq.compiler.prune.prune_one_shot` then the sharing. Then counts the storage with Huffman
    coding. Returns ``(CompressedModel, report)``; the report holds the per-layer rows, the total, the config, the
    sparsities used, the test accuracy after each stage (``"compressed"`` is the final, decoded model's; empty when
    ``accuracy_measured`` is False), the output drift against the float model on the data (None without data), each
    layer's relative weight error, and the scan of an auto sparsity.
    """
    dataset = None if data is None else _dataset(data)
    labelled = dataset is not None and dataset.labelled
    check_ranges(model, None if dataset is None else dataset.x_train)
    targets, scan = _targets(model, config, dataset)
    one_shot = not config.retrain or not labelled
    accuracies = {}

    def measure(stage, measured):
        if labelled:
            accuracies[stage] = accuracy(measured, dataset.x_test, dataset.y_test)

    measure("float", model)
    with numeric_guard("pruning" if one_shot else "pruning and retraining"):
        if one_shot:
            pruned, _ = prune_one_shot(model, targets)
        else:
            pruned, _ = prune_and_retrain(model, dataset.x_train, dataset.y_train, sparsity=targets,
                                          steps=config.prune_steps, epochs=config.prune_epochs, lr=config.prune_lr,
                                          batch_size=config.batch_size, seed=config.seed, progress=progress)
    measure("pruned", pruned)
    with numeric_guard("weight sharing"):
        shared = {layer.name: _share(layer, config) for layer in pruned.weighted()}
    for layer in pruned.weighted():
        layer.weight = shared[layer.name].decode()
    tuned = pruned
    if not one_shot:
        measure("quantized", pruned)
        with numeric_guard("centroid fine-tuning"):
            tuned = fit(pruned, dataset.x_train, dataset.y_train, epochs=config.finetune_epochs,
                        lr=config.finetune_lr, batch_size=config.batch_size, seed=config.seed + config.prune_steps,
                        weights={n: CodebookWeight(s) for n, s in shared.items()}, desc="fine-tune centroids",
                        progress=progress)
        for layer in tuned.weighted():
            layer.weight = shared[layer.name].decode()
    measure("compressed", tuned)
    drift = None
    if dataset is not None:
        with numeric_guard("measuring the output drift"):
            drift = output_drift(model, tuned, dataset.x_test if labelled else dataset.x_train)
    rows = [layer_storage(layer.name, shared[layer.name], layer.bias.size, config.index_bits)
            for layer in tuned.weighted()]
    report = {"model": name, "config": dataclasses.asdict(config), "mode": "one-shot" if one_shot else "retrained",
              "data": "no data" if dataset is None else dataset.description, "sparsity": targets, "layers": rows,
              "total": total_storage(rows), "accuracy": accuracies, "accuracy_measured": labelled,
              "output_drift": drift, "weight_error": weight_error(model, tuned),
              "layer_types": {lay.name: type(lay).__name__ for lay in tuned.weighted()}}
    if not labelled:
        report["accuracy_note"] = ("accuracy was not measured: " +
                                   ("no data was given" if dataset is None else "the data has no labels (x only)"))
    if scan is not None:
        report["sensitivity"] = scan.to_dict()
    return CompressedModel(tuned, shared, accuracies), report


def compress_digits_mlp(bits=4, progress=None, **overrides):
    """Deep Compression of the shipped digits MLP with ``bits``-bit codes; returns ``(CompressedModel, report)``.

    Deterministic (fixed seeds); ``overrides`` replace fields of the :class:`DeepCompressionConfig` (default
    sparsities :data:`DIGITS_MLP_SPARSITY`).
    """
    try:
        config = DeepCompressionConfig(**{"sparsity": DIGITS_MLP_SPARSITY, "bits": bits, **overrides})
    except TypeError as exc:
        raise ConfigError(f"{exc}; the settings are {[f.name for f in dataclasses.fields(DeepCompressionConfig)]}") \
            from None
    return compress(load_shipped("digits_mlp"), load_digits_split(), config, name="digits_mlp", progress=progress)


def main(argv=None):
    """Command line: compress the digits MLP, print the report, optionally write its JSON and the model."""
    parser = argparse.ArgumentParser(description="Deep Compression of the shipped digits MLP")
    parser.add_argument("--bits", type=int, default=4, help="bits per shared-weight code (default 4)")
    parser.add_argument("--json", help="write the report as JSON to this path")
    parser.add_argument("--save", help="write the compressed model to this .npz path")
    parser.add_argument("--other-methods", action="store_true",
                        help="also measure int8, ternary and low-rank accuracy (sparq.compiler.survey) into the report")
    args = parser.parse_args(argv)
    try:
        compressed, report = compress_digits_mlp(bits=args.bits)
    except CompileError as exc:
        parser.exit(1, f"error: {exc}\n")
    print_report(report)
    if args.other_methods:
        from .survey import survey
        report["other_methods"] = survey()
        print(json.dumps(report["other_methods"], indent=2))
    if args.json:
        write_report(report, args.json)
        print(f"wrote {args.json}")
    if args.save:
        compressed.save(args.save)
        print(f"wrote {args.save}")


if __name__ == "__main__":
    main()

"""The Deep Compression pipeline: prune, retrain, share weights, fine-tune the centroids, Huffman-code.

:func:`compress` runs it on any IR model with a :class:`DeepCompressionConfig`; :func:`compress_digits_mlp` is the
one call for the shipped digits MLP. Both return a :class:`CompressedModel` (what the EIE lowering consumes) and the
report of :mod:`sparq.compiler.report`. From the command line::

    .venv/bin/python -m sparq.compiler.pipeline --bits 4 --other-methods --json bench/results/compression_digits_mlp.json
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from .datasets import load_digits_split
from .errors import CompileError, ConfigError, ModelFormatError
from .models import load_shipped
from .npz_io import load_arrays, model_arrays, model_from_arrays
from .prune import prune_and_retrain
from .report import layer_storage, print_report, total_storage, write_report
from .share import CodebookWeight, SharedWeights, share_weights
from .train import accuracy, fit

__all__ = ["CompressedModel", "DeepCompressionConfig", "DIGITS_MLP_SPARSITY", "compress", "compress_digits_mlp",
           "main"]

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
    """Settings of :func:`compress`. ``sparsity`` maps layer names to the pruned fraction (absent: not pruned);
    every weighted layer is shared with ``bits``-bit codes and zero kept as code 0."""

    sparsity: dict
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


DIGITS_MLP_SPARSITY = {"fc1": 0.93, "fc2": 0.95, "fc3": 0.7}
"""Per-layer pruned fractions for the digits MLP (7 %, 5 % and 30 % of the weights kept)."""


def compress(model, data, config, name="model", progress=None):
    """Run Deep Compression on ``model`` with ``data = (x_train, y_train, x_test, y_test)``.

    Prunes and retrains (:func:`~sparq.compiler.prune.prune_and_retrain`), shares every weighted layer's weights with
    k-means (:func:`~sparq.compiler.share.share_weights`, ``keep_zero``), fine-tunes the centroids, then counts the storage
    with Huffman coding. Returns ``(CompressedModel, report)``; the report holds the per-layer rows, the total, the
    config and the test accuracy after each stage (``"compressed"`` is the final, decoded model's).
    """
    x_train, y_train, x_test, y_test = data
    accuracies = {"float": accuracy(model, x_test, y_test)}
    pruned, _ = prune_and_retrain(model, x_train, y_train, sparsity=config.sparsity, steps=config.prune_steps,
                                  epochs=config.prune_epochs, lr=config.prune_lr, batch_size=config.batch_size,
                                  seed=config.seed, progress=progress)
    accuracies["pruned"] = accuracy(pruned, x_test, y_test)
    shared = {layer.name: share_weights(layer.weight, config.bits, config.init, keep_zero=True, seed=config.seed)
              for layer in pruned.weighted()}
    for layer in pruned.weighted():
        layer.weight = shared[layer.name].decode()
    accuracies["quantized"] = accuracy(pruned, x_test, y_test)
    tuned = fit(pruned, x_train, y_train, epochs=config.finetune_epochs, lr=config.finetune_lr,
                batch_size=config.batch_size, seed=config.seed + config.prune_steps,
                weights={n: CodebookWeight(s) for n, s in shared.items()}, desc="fine-tune centroids",
                progress=progress)
    for layer in tuned.weighted():
        layer.weight = shared[layer.name].decode()
    accuracies["compressed"] = accuracy(tuned, x_test, y_test)
    rows = [layer_storage(layer.name, shared[layer.name], layer.bias.size, config.index_bits)
            for layer in tuned.weighted()]
    report = {"model": name, "config": dataclasses.asdict(config), "layers": rows, "total": total_storage(rows),
              "accuracy": accuracies, "layer_types": {lay.name: type(lay).__name__ for lay in tuned.weighted()}}
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

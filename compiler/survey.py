"""Test accuracy of the other compression methods on the shipped digits models, for the report.

* the float MLP and CNN as shipped;
* int8 (per-channel weights, integer requantization) of both, with min/max and percentile calibration;
* trained ternary quantization of the MLP's three Dense layers;
* low-rank factorization of the MLP's two hidden layers at 90 % energy.
"""

from .datasets import load_digits_split
from .lowrank import factorize
from .models import load_shipped
from .quantize import CALIBRATIONS, forward_int8, quantize_model
from .ternary import TTQ_THRESHOLD, train_ternary
from .train import accuracy

__all__ = ["survey"]


def survey(progress=None):
    """``{method: {...}}`` of test accuracies (and sizes where they matter) of each method on the digits models."""
    x_train, y_train, x_test, y_test = load_digits_split()
    mlp, cnn = load_shipped("digits_mlp"), load_shipped("digits_cnn")
    results = {"float": {"digits_mlp": accuracy(mlp, x_test, y_test), "digits_cnn": accuracy(cnn, x_test, y_test)}}
    for method in CALIBRATIONS:
        results[f"int8_{method}"] = {
            name: float((forward_int8(quantize_model(model, x_train, method), x_test).argmax(axis=1) == y_test).mean())
            for name, model in (("digits_mlp", mlp), ("digits_cnn", cnn))}
    ternary, weights = train_ternary(mlp, x_train, y_train, progress=progress)
    results["ternary_mlp"] = {
        "accuracy": accuracy(ternary, x_test, y_test), "threshold": TTQ_THRESHOLD,
        "layers": {n: {"wp": float(w.wp[0]), "wn": float(w.wn[0]),
                       "nonzero_percent": 100.0 * float((w.weight() != 0).mean())} for n, w in weights.items()}}
    low_rank = factorize(mlp, ["fc1", "fc2"], energy=0.9)
    results["low_rank_mlp"] = {
        "accuracy": accuracy(low_rank, x_test, y_test), "energy": 0.9,
        "shapes": {layer.name: list(layer.weight.shape) for layer in low_rank.weighted()},
        "parameters": sum(layer.weight.size + layer.bias.size for layer in low_rank.weighted())}
    return results

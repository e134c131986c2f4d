"""Compression without retraining (one-shot, with and without labels), auto sparsity by a sensitivity scan, and the
range checks that stop a compression before it starts."""

import warnings

import numpy as np
import pytest

from sparq.compiler.data import Dataset, validation_split
from sparq.compiler.errors import ConfigError, RangeError
from sparq.compiler.ir import Dense, Model, Relu, forward
from sparq.compiler.pipeline import DIGITS_MLP_SPARSITY, DeepCompressionConfig, compress, output_drift
from sparq.compiler.ranges import ACTIVATION_LIMIT, check_ranges, numeric_guard
from sparq.compiler.report import print_report
from sparq.compiler.sensitivity import SCAN_GRID, sensitivity_scan

FAST = dict(prune_steps=2, prune_epochs=2, finetune_epochs=1)


def unlabelled(digits):
    x_train, _, x_test, _ = digits
    return Dataset(np.concatenate([x_train, x_test]), None, None, None, "x.npz: unlabelled", "x.npz")


MILD = {"fc1": 0.6, "fc2": 0.6, "fc3": 0.3}


def test_one_shot_without_labels_reports_output_drift_not_accuracy(mlp, digits, capsys):
    compressed, report = compress(mlp, unlabelled(digits), DeepCompressionConfig(MILD), progress=False)
    assert report["mode"] == "one-shot" and not report["accuracy_measured"] and report["accuracy"] == {}
    assert "not measured" in report["accuracy_note"] and compressed.accuracy == {}
    drift = report["output_drift"]
    x = unlabelled(digits).x_train
    assert drift["samples"] == len(x) and drift == output_drift(mlp, compressed.model, x)
    assert 0 < drift["relative_rms_error"] < 0.3 and 0.97 < drift["top1_agreement"] <= 1.0
    _, hard = compress(mlp, unlabelled(digits), DeepCompressionConfig(DIGITS_MLP_SPARSITY), progress=False)
    assert hard["output_drift"]["relative_rms_error"] > 2 * drift["relative_rms_error"]  # no retraining to recover
    for name, target in MILD.items():  # pruned exactly to target, no retraining
        weight = compressed.model.layer(name).weight
        assert np.mean(weight == 0) == pytest.approx(target, abs=1e-3)
        kept = weight != 0
        np.testing.assert_array_equal(kept, np.abs(mlp.layer(name).weight) >=
                                      np.sort(np.abs(mlp.layer(name).weight), axis=None)[int(round(target *
                                                                                                   weight.size))])
    print_report(report)
    assert "accuracy was not measured" in capsys.readouterr().out


def test_one_shot_with_labels_measures_accuracy_without_training(mlp, digits):
    config = DeepCompressionConfig({"fc1": 0.5, "fc2": 0.5}, retrain=False)
    compressed, report = compress(mlp, digits, config, progress=False)
    assert report["mode"] == "one-shot" and list(report["accuracy"]) == ["float", "pruned", "compressed"]
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.02
    np.testing.assert_array_equal(compressed.model.layer("fc3").weight != 0, mlp.layer("fc3").weight != 0)
    assert report["output_drift"]["samples"] == len(digits[2])
    np.testing.assert_array_equal(compressed.model.layer("fc1").bias, mlp.layer("fc1").bias)  # nothing trained


def test_output_drift_of_a_model_against_itself(mlp, digits):
    assert output_drift(mlp, mlp, digits[2]) == {"relative_rms_error": 0.0, "top1_agreement": 1.0, "samples": 540}


def test_sensitivity_scan_choice_rule(mlp, digits):
    _, _, x_val, y_val = validation_split(digits[0], digits[1])
    scan = sensitivity_scan(mlp, x_val, y_val, max_drop=0.5)
    assert scan.grid == sorted(SCAN_GRID) and set(scan.curves) == {"fc1", "fc2", "fc3"}
    assert scan.validation_samples == len(y_val) == 252
    for name, curve in scan.curves.items():
        assert len(curve) == len(scan.grid) and all(0 <= a <= 1 for a in curve)
        chosen = scan.chosen[name]
        within = [100 * (scan.baseline - a) <= 0.5 + 1e-9 for a in curve]
        expected = 0.0 if not within[0] else scan.grid[within.index(False) - 1] if False in within else scan.grid[-1]
        assert chosen == expected
    assert scan.curves["fc1"][-1] < scan.baseline  # pruning 99 % of a layer costs accuracy
    loose = sensitivity_scan(mlp, x_val, y_val, max_drop=20.0)
    assert all(loose.chosen[n] >= scan.chosen[n] for n in scan.chosen)
    with pytest.raises(ConfigError, match="max_drop"):
        sensitivity_scan(mlp, x_val, y_val, max_drop=-1)


def test_auto_sparsity_prunes_to_the_scan_choice_and_keeps_the_curves(mlp, digits):
    compressed, report = compress(mlp, digits, DeepCompressionConfig("auto", max_drop=0.5, **FAST), progress=False)
    scan = report["sensitivity"]
    assert report["sparsity"] == scan["chosen"] and scan["max_drop"] == 0.5 and len(scan["grid"]) == len(SCAN_GRID)
    _, _, x_val, y_val = validation_split(digits[0], digits[1])
    assert scan == sensitivity_scan(mlp, x_val, y_val, 0.5).to_dict()  # on the validation split, not the test split
    for name, target in scan["chosen"].items():
        assert np.mean(compressed.model.layer(name).weight == 0) == pytest.approx(target, abs=1e-3)
    assert report["accuracy"]["compressed"] >= report["accuracy"]["float"] - 0.01
    with pytest.raises(ConfigError, match="needs labels"):
        compress(mlp, unlabelled(digits), DeepCompressionConfig("auto"), progress=False)
    with pytest.raises(ConfigError, match="'auto'"):
        compress(mlp, digits, DeepCompressionConfig("most"), progress=False)


def test_huge_weight_is_reported_before_any_work_with_layer_and_remedy(mlp, digits):
    import copy

    model = copy.deepcopy(mlp)
    model.layer("fc2").weight[3, 7] = 1e30
    model.layer("fc1").bias[0] = -4e4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may escape
        with pytest.raises(RangeError) as info:
            compress(model, digits, DeepCompressionConfig(DIGITS_MLP_SPARSITY), progress=False)
    message = str(info.value)
    assert "2 range problem(s)" in message and "\n" not in message
    assert "layer 'fc2': weight 1e+30 at (3, 7)" in message and "layer 'fc1': bias -4e+04 at (0,)" in message
    assert "rescale the layer" in message and "clip the outlier" in message


def test_diverging_activations_are_reported(digits):
    model = Model([Dense("big", np.full((4, 64), 3e4, np.float32)), Relu("r"),
                   Dense("out", np.full((3, 4), 3e4, np.float32))], (64,))
    with pytest.raises(RangeError, match="layer 'out': its outputs on the data are up to .*training would diverge"):
        check_ranges(model, digits[0])
    check_ranges(model)  # the weights alone fit
    assert ACTIVATION_LIMIT == 2.0 ** 32


def test_numeric_guard_turns_warnings_into_one_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RangeError, match="fine-tuning: numerical overflow"):
            with numeric_guard("fine-tuning"):
                np.float32(3e38) * np.float32(10)


def test_dense_without_a_bias_has_a_zero_bias(digits):
    layer = Dense("fc", np.ones((3, 64)))
    assert layer.bias.dtype == np.float32 and not layer.bias.any()
    model = Model([layer], (64,))
    np.testing.assert_allclose(forward(model, digits[2][:4]), digits[2][:4].sum(axis=1, keepdims=True).repeat(3, 1),
                               rtol=1e-6)


def test_a_weight_matrix_alone_compresses_one_shot_without_data():
    """One feed-forward layer of a large pretrained network: a (out, in) matrix, no bias, no data."""
    weight = np.random.default_rng(3).normal(0, 0.02, (96, 384)).astype(np.float32)
    model = Model([Dense("ffn", weight)], (384,))
    compressed, report = compress(model, None, DeepCompressionConfig(0.9), progress=False)
    assert report["mode"] == "one-shot" and report["output_drift"] is None and report["data"] == "no data"
    assert "no data was given" in report["accuracy_note"] and report["sparsity"] == {"ffn": 0.9}
    assert np.mean(compressed.model.layer("ffn").weight == 0) == pytest.approx(0.9, abs=1e-3)
    error = report["weight_error"]["ffn"]
    kept = compressed.model.layer("ffn").weight != 0
    pruned_only = np.linalg.norm(weight * ~kept) / np.linalg.norm(weight)
    assert pruned_only <= error < pruned_only + 0.05  # pruning dominates; 4-bit sharing adds a little
    assert report["total"]["ratio"]["huffman"] > 20

"""Bad input gets one clear CompileError (a ValueError) naming the problem and the way out."""

import numpy as np
import pytest

from sparq.compiler.errors import CompileError, ConfigError, ModelFormatError, WeightError
from sparq.compiler.ir import Dense
from sparq.compiler.onnx_io import read_onnx
from sparq.compiler.prune import magnitude_mask
from sparq.compiler.share import kmeans_1d, share_weights

BAD_VALUES = [np.nan, np.inf, -np.inf]


def test_the_error_family():
    for cls in (ModelFormatError, WeightError, ConfigError):
        assert issubclass(cls, CompileError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("bad", BAD_VALUES)
def test_nan_or_inf_weight(bad):
    weight = np.ones((4, 3))
    weight[2, 1] = bad
    for make in (lambda: Dense("fc7", weight, np.zeros(4)), lambda: share_weights(weight, 2),
                 lambda: magnitude_mask(weight, 0.5)):
        with pytest.raises(WeightError, match="NaN, infinite or beyond-float32.*\\(2, 1\\).*retrain"):
            make()


@pytest.mark.parametrize("sparsity", [1.0, 1.5, -0.1, np.nan, "half"])
def test_sparsity_outside_zero_one(sparsity):
    with pytest.raises(ConfigError, match="fraction in \\[0, 1\\)"):
        magnitude_mask(np.ones((3, 3)), sparsity)


def test_more_clusters_than_distinct_weights():
    """k-means refuses; sharing keeps the few distinct values exactly (a small layer pruned hard)."""
    weight = np.array([0.0, 1.0, 1.0, 2.0, 2.0, 3.0])
    with pytest.raises(WeightError, match="16 clusters.*only 4 distinct.*at most 2"):
        kmeans_1d(weight, 16)
    for keep_zero in (False, True):
        shared = share_weights(weight, 4, keep_zero=keep_zero)
        np.testing.assert_array_equal(shared.decode(), weight)
        assert len(shared.codebook) == 16 and shared.codebook[0] == 0.0 and shared.codes.max() == 3


def test_empty_layer():
    with pytest.raises(WeightError, match="'fc0'.*empty"):
        Dense("fc0", np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(WeightError, match="empty"):
        share_weights(np.zeros((0, 3)), 2)
    with pytest.raises(WeightError, match="fully pruned"):
        share_weights(np.zeros((4, 3)), 2)
    with pytest.raises(WeightError, match="empty"):
        kmeans_1d(np.array([]), 2)


def test_corrupt_onnx_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ModelFormatError, match="corrupt.onnx.*corrupt or truncated"):
        read_onnx(path)


def test_other_bad_settings():
    with pytest.raises(ConfigError, match="1 to 8 bits"):
        share_weights(np.arange(10.0), 9)
    with pytest.raises(ConfigError, match="unknown k-means initialisation"):
        share_weights(np.arange(10.0), 2, init="kmeans++")

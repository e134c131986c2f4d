"""Low-rank factorization of fully connected layers."""

import numpy as np
import pytest

from sparq.compiler.errors import ConfigError
from sparq.compiler.ir import forward
from sparq.compiler.lowrank import factorize, factorize_dense, rank_for_energy


def test_full_rank_reproduces_the_model(mlp):
    x = np.random.default_rng(0).random((8, 64), dtype=np.float32)
    full = factorize(mlp, ["fc1"], rank=64)
    assert [layer.name for layer in full.weighted()] == ["fc1.v", "fc1.u", "fc2", "fc3"]
    np.testing.assert_allclose(forward(full, x), forward(mlp, x), rtol=1e-4, atol=1e-4)


def test_energy_picks_the_rank():
    assert rank_for_energy([3.0, 2.0, 1.0], 0.5) == 1        # 9 of 14
    assert rank_for_energy([3.0, 2.0, 1.0], 0.92) == 2       # 13 of 14
    assert rank_for_energy([3.0, 2.0, 1.0], 1.0) == 3


def test_truncation_is_the_best_rank_r_approximation(mlp):
    layer = mlp.layer("fc2")
    v, u = factorize_dense(layer, rank=10)
    assert v.weight.shape == (10, 300) and u.weight.shape == (100, 10)
    np.testing.assert_array_equal(u.bias, layer.bias)
    s = np.linalg.svd(layer.weight.astype(np.float64), compute_uv=False)
    error = np.linalg.norm(u.weight.astype(np.float64) @ v.weight - layer.weight)
    assert error == pytest.approx(np.sqrt(np.sum(s[10:] ** 2)), rel=1e-4)


def test_bad_factorizations(mlp):
    with pytest.raises(ConfigError, match="exactly one"):
        factorize(mlp, ["fc1"])
    with pytest.raises(ConfigError, match="rank must be"):
        factorize(mlp, ["fc1"], rank=65)
    with pytest.raises(ConfigError, match="Dense layers"):
        factorize(mlp, ["relu1"], rank=2)

"""Weight sharing: 1-D k-means, the keep-zero contract, the Fig. 3 golden example and centroid fine-tuning."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sparq.compiler.share import (
    INITS,
    CodebookWeight,
    SharedWeights,
    centroid_gradients,
    finetune_centroids,
    kmeans_1d,
    nearest_codes,
    share_weights,
)
from sparq.compiler.train import fit

# Deep Compression, Fig. 3 (REFERENCE.md)
FIG3_W = np.array([[2.09, -0.98, 1.48, 0.09], [0.05, -0.14, -1.08, 2.12], [-0.91, 1.92, 0, -1.03],
                   [1.87, 0, 1.53, 1.49]])
FIG3_CLUSTERS = np.array([[3, 0, 2, 1], [1, 1, 0, 3], [0, 3, 1, 0], [3, 1, 2, 2]])
FIG3_GRAD = np.array([[-.03, -.01, .03, .02], [-.01, .01, -.02, .12], [-.01, .02, .04, .01],
                      [-.07, -.02, .01, -.02]])


def test_fig3_clusters_and_centroids():
    shared = share_weights(FIG3_W, bits=2, keep_zero=False)
    np.testing.assert_array_equal(shared.codes, FIG3_CLUSTERS)
    np.testing.assert_allclose(shared.codebook, [-1.00, 0.00, 1.50, 2.00], atol=1e-6)


def test_fig3_grouped_gradients_and_fine_tuning():
    shared = SharedWeights(FIG3_CLUSTERS.astype(np.uint8), np.array([-1.0, 0.0, 1.5, 2.0], np.float32),
                           keep_zero=False)
    np.testing.assert_allclose(centroid_gradients(shared.codes, FIG3_GRAD, 4), [-0.03, 0.04, 0.02, 0.04], atol=1e-7)
    tuned = finetune_centroids(shared, FIG3_GRAD, lr=1.0)
    np.testing.assert_allclose(tuned.codebook, [-0.97, -0.04, 1.48, 1.96], atol=1e-6)
    np.testing.assert_array_equal(tuned.codes, shared.codes)


@pytest.mark.parametrize("init", INITS)
@pytest.mark.parametrize("bits", [2, 4, 5])
def test_keep_zero_contract(init, bits):
    rng = np.random.default_rng(bits)
    weight = rng.normal(size=(60, 50)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.8] = 0.0
    shared = share_weights(weight, bits, init=init)
    assert shared.codes.dtype == np.uint8 and shared.codes.shape == weight.shape
    assert shared.codebook.dtype == np.float32 and len(shared.codebook) == 2 ** bits and shared.bits == bits
    assert shared.codebook[0] == 0.0
    np.testing.assert_array_equal(shared.codes == 0, weight == 0)
    assert len(np.unique(shared.codes)) == 2 ** bits  # empty clusters are relocated: every code is used
    error = np.mean((shared.decode() - weight)[weight != 0] ** 2) / np.mean(weight[weight != 0] ** 2)
    assert error < {2: 0.2, 4: 0.02, 5: 0.01}[bits]


@st.composite
def weights_and_bits(draw):
    bits = draw(st.integers(1, 4))
    values = draw(arrays(np.float32, st.integers(2 ** bits, 300), unique=True,
                         elements=st.floats(-100, 100, width=32, allow_subnormal=False)))
    return values, bits


@settings(max_examples=60, deadline=None)
@given(weights_and_bits(), st.sampled_from(INITS), st.booleans())
def test_every_weight_goes_to_its_nearest_centroid(case, init, keep_zero):
    values, bits = case
    if keep_zero:
        values = values[values != 0]
        if len(values) < 2 ** bits - 1 or bits == 1:
            return
    shared = share_weights(values, bits, init=init, keep_zero=keep_zero, max_iter=10_000)
    candidates = shared.codebook[1:] if keep_zero else shared.codebook
    distance = np.abs(values[:, None].astype(np.float64) - candidates[None, :].astype(np.float64))
    assigned = distance[np.arange(len(values)), shared.codes.astype(int) - int(keep_zero)]
    assert np.all(assigned <= distance.min(axis=1) + 1e-9)


def test_nearest_codes_breaks_ties_downwards():
    np.testing.assert_array_equal(nearest_codes(np.array([0.5, 0.50001, -3.0]), np.array([0.0, 1.0])), [0, 1, 0])


def test_kmeans_on_a_large_layer_reaches_a_lloyd_fixed_point():
    values = np.random.default_rng(3).normal(size=2_000_000).astype(np.float32)
    centroids = kmeans_1d(values, 16, max_iter=1000)
    assert np.all(np.diff(centroids) > 0)
    codes = nearest_codes(values, centroids)
    means = np.bincount(codes, weights=values, minlength=16) / np.bincount(codes, minlength=16)
    np.testing.assert_allclose(means, centroids, atol=1e-4)


def test_codebook_training_keeps_codes_and_zero(mlp, digits):
    shared = {"fc1": share_weights(np.where(np.abs(mlp.layer("fc1").weight) > 0.1, mlp.layer("fc1").weight, 0), 3)}
    codes_before = shared["fc1"].codes.copy()
    codebook_before = shared["fc1"].codebook.copy()
    tuned = fit(mlp, digits[0][:300], digits[1][:300], epochs=2, lr=1e-3, progress=False,
                weights={"fc1": CodebookWeight(shared["fc1"])})
    np.testing.assert_array_equal(shared["fc1"].codes, codes_before)
    assert shared["fc1"].codebook[0] == 0.0 and not np.array_equal(shared["fc1"].codebook, codebook_before)
    np.testing.assert_array_equal(tuned.layer("fc1").weight, shared["fc1"].decode())

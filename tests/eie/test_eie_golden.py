"""sparq.sim.eie.golden: bit-exact against an independent dense reference, zero skipping, float agreement, digits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.eie import LayerSpec, lower, lower_compressed
from sparq.formats.eie import ACT_FRAC, EieConfig, EieImage, to_fixed
from sparq.sim.eie import Golden
from sparq.sim.scoreboard import assert_words_equal


def _random_network(rng, sizes, density, scale=0.4):
    """LayerSpecs of a random ReLU network with the given layer sizes; the last layer has no ReLU."""
    specs = []
    for l, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        codes = (rng.random((n_out, n_in)) < density) * rng.integers(1, 16, (n_out, n_in))
        codebook = np.r_[0.0, np.sort(rng.uniform(-scale, scale, 15))]
        specs.append(LayerSpec(codes, codebook, rng.normal(0, 0.3, n_out), relu=l < len(sizes) - 2))
    return specs


def _dense_reference(specs, image, a):
    """The documented integer semantics on dense matrices, written independently of the golden model."""
    for spec, entry, codebook in zip(specs, image.layers, image.codebooks):
        f = entry.w_frac
        acc = (np.rint(spec.bias * 256).astype(np.int64) * 2 ** f) + codebook[spec.codes] @ a
        y = np.clip((acc + (2 ** f // 2)) // 2 ** f, -32768, 32767)  # floor division: round half up
        a = np.maximum(y, 0) if spec.relu else y
    return a


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=4), st.sampled_from([0.05, 0.3, 1.0]), st.integers(1, 9),
       st.integers(0, 2 ** 32 - 1))
def test_golden_is_bit_exact_against_a_dense_integer_reference(sizes, density, n_pe, seed):
    rng = np.random.default_rng(seed)
    specs = _random_network(rng, sizes, density)
    image = lower(specs, EieConfig(n_pe=n_pe))
    golden = Golden(image)
    for _ in range(3):
        a = rng.integers(-2000, 2000, sizes[0]) * (rng.random(sizes[0]) < 0.6)
        trace = golden.run(a)
        assert_words_equal(_dense_reference(specs, image, a), trace.output, what="network output")


def test_zero_activations_are_skipped_exactly():
    """Garbage in a column whose activation is zero changes nothing; in a column that is read, it does."""
    specs = [LayerSpec(np.full((8, 6), 5), np.r_[0.0, np.linspace(-0.5, 0.5, 15)], relu=False)]
    image = lower(specs, EieConfig(n_pe=2))
    a = np.array([100, 0, 0, 50, 0, 7])
    expected = Golden(image).run(a).output
    for column, changes in ((1, False), (3, True)):
        spmat = image.spmat.copy()
        for k in range(2):  # 4 rows per PE: column j is entries 4j..4j+3, word j // 2, half j % 2
            spmat[k, column // 2] ^= np.uint64(0x0F0F0F0F << (32 * (column % 2)))
        corrupted = EieImage(image.config, image.layers, image.codebooks, image.ptr, spmat, image.bias)
        got = Golden(corrupted).run(a).output
        assert (not np.array_equal(got, expected)) == changes, f"column {column}"


def test_golden_agrees_with_the_float_network_within_the_documented_bound():
    rng = np.random.default_rng(7)
    specs = _random_network(rng, [40, 60, 30, 10], 0.2)
    golden = Golden(lower(specs, EieConfig(n_pe=4)))
    for _ in range(20):
        x = rng.uniform(-1, 1, 40) * (rng.random(40) < 0.5)
        trace = golden.run(to_fixed(x, ACT_FRAC))
        assert trace.saturated == [0, 0, 0]
        bounds = golden.error_bound(x, trace)
        y = x
        for l, spec in enumerate(specs):
            y = spec.codebook[spec.codes] @ y + spec.bias
            y = np.maximum(y, 0) if spec.relu else y
            error = np.abs(trace.acts[l + 1] / 2 ** ACT_FRAC - y)
            assert np.all(error <= bounds[l]), f"layer {l}: error {error.max()} over bound"
        assert bounds[-1].max() < 0.1


def test_saturation_is_counted_and_clips_to_16_bits():
    specs = [LayerSpec(np.ones((3, 4), dtype=np.uint8), [0.0, 0.9], relu=False)]
    golden = Golden(lower(specs, EieConfig(n_pe=2)))
    trace = golden.run(np.array([32767, 32767, 32767, -5]))
    assert trace.saturated == [3] and trace.output.tolist() == [32767] * 3
    with pytest.raises(ValueError, match="4 16-bit integers"):
        golden.run(np.array([40000, 0, 0, 0]))


@pytest.fixture(scope="module")
def digits():
    """The compressed digits MLP (Deep Compression, 4-bit codes) and its report; trains for about 40 s."""
    pipeline = pytest.importorskip("sparq.compiler.pipeline")
    return pipeline.compress_digits_mlp(bits=4)


def test_digits_accuracy_equals_the_compression_report(digits, tmp_path):
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.ir import forward

    compressed, report = digits
    _, _, x_test, y_test = load_digits_split()
    image = lower_compressed(compressed, EieConfig(n_pe=4, act_depth=128, bias_depth=128))
    image.save(tmp_path)
    golden = Golden(EieImage.load(tmp_path, image.config))
    predicted = golden.classify(x_test)
    assert np.mean(predicted == y_test) == report["accuracy"]["compressed"]
    logits = forward(compressed.model, x_test[:40])
    for x, expected in zip(x_test[:40], logits):
        trace = golden.run(to_fixed(x, ACT_FRAC))
        assert sum(trace.saturated) == 0
        assert np.all(np.abs(trace.output / 2 ** ACT_FRAC - expected) <= golden.error_bound(x, trace)[-1] + 1e-4)

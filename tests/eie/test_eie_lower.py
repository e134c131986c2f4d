"""sparq.compiler.eie: the paper's golden examples, a round trip through an independent decoder, fixed point and errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.eie import LayerSpec, column_entries, lower, lower_compressed, lower_layer
from sparq.compiler.errors import ShapeError, UnsupportedError, WeightError
from sparq.compiler.ir import Dense, Flatten, Model, Relu
from sparq.compiler.pipeline import CompressedModel
from sparq.compiler.share import share_weights
from sparq.formats.eie import CapacityError, EieConfig, unpack_entries
from sparq.sim.scoreboard import assert_words_equal

CODEBOOK = np.r_[0.0, np.linspace(-0.5, 0.5, 15)]

# EIE paper, Fig. 2/3: the 16x8 matrix on 4 PEs; PE0 holds rows 0, 4, 8, 12.
PE0_WEIGHTS = [(0, 0), (8, 0), (12, 0), (4, 1), (0, 2), (12, 2), (0, 4), (4, 4), (0, 5), (12, 5), (0, 6), (8, 7),
               (12, 7)]


def test_paper_example_pe0_pointers_and_relative_indices():
    rng = np.random.default_rng(0)
    codes = (rng.random((16, 8)) < 0.4) * rng.integers(1, 16, (16, 8))
    codes[0::4] = 0
    for n, (i, j) in enumerate(PE0_WEIGHTS):
        codes[i, j] = n + 1
    lowered = lower_layer(codes, 4)
    assert_words_equal([0, 3, 4, 6, 6, 8, 10, 11, 13], lowered.ptr[0], what="PE0 column pointers")
    v, z = unpack_entries(lowered.spmat[0])
    assert_words_equal([0, 1, 0, 1, 0, 2, 0, 0, 0, 2, 0, 2, 0], z[:13], what="PE0 relative indices")
    assert_words_equal(np.arange(1, 14), v[:13], what="PE0 codes")


def test_paper_padding_example():
    codes = np.zeros((23, 1), dtype=np.uint8)
    codes[[2, 3, 22], 0] = [1, 2, 3]
    lowered = lower_layer(codes, 1)
    v, z = unpack_entries(lowered.spmat[0])
    assert_words_equal([0, 4], lowered.ptr[0], what="pointers")
    assert_words_equal([1, 2, 0, 3], v[:4], what="v")
    assert_words_equal([2, 0, 15, 2], z[:4], what="z")


def _decode_slowly(image, l):
    """Independent reference decoder: the dense code matrix of layer ``l``, walking every entry in Python."""
    layer, n = image.layers[l], image.config.n_pe
    codes = np.zeros((layer.out_len, layer.in_len), dtype=np.int64)
    for k in range(n):
        even, odd = image.ptr[k, 0::2], image.ptr[k, 1::2]
        words = image.spmat[k]
        for j in range(layer.in_len):
            g = layer.ptr_base + j
            banks = (even, odd) if g % 2 == 0 else (odd, even)
            start, end = int(banks[0][g >> 1]), int(banks[1][(g + 1) >> 1])  # p[j], p[j+1]: one from each bank
            row = -1
            for address in range(8 * layer.spmat_base + start, 8 * layer.spmat_base + end):
                entry = (int(words[address >> 3]) >> (8 * (address & 7))) & 0xFF
                row += (entry >> 4) + 1
                codes[row * n + k, j] += entry & 0xF
    return codes


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 40), st.sampled_from([0.02, 0.2, 0.7]),
       st.integers(1, 7), st.integers(0, 2 ** 32 - 1))
def test_two_layers_round_trip_through_an_independent_decoder(out1, in1, out2, density, n_pe, seed):
    rng = np.random.default_rng(seed)
    codes = [(rng.random(shape) < density) * rng.integers(1, 16, shape) for shape in ((out1, in1), (out2, out1))]
    image = lower([LayerSpec(c, CODEBOOK) for c in codes], EieConfig(n_pe=n_pe))
    for l, expected in enumerate(codes):
        assert_words_equal(expected, _decode_slowly(image, l), what=f"layer {l} codes")
        entries = column_entries(expected, n_pe)
        assert_words_equal(entries, np.diff(image.pointers(l), axis=1), what=f"layer {l} entries per column")
        padding = sum(np.count_nonzero(image.entries(l, k)[0] == 0) for k in range(n_pe))
        assert entries.sum() - np.count_nonzero(expected) == padding, "padding entries are the code-0 entries"


def test_layer_table_chains_the_memories():
    codes = [np.ones((10, 6), dtype=np.uint8), np.ones((4, 10), dtype=np.uint8)]
    image = lower([LayerSpec(codes[0], CODEBOOK), LayerSpec(codes[1], CODEBOOK, relu=False)], EieConfig(n_pe=4))
    first, second = image.layers
    assert (first.ptr_base, second.ptr_base) == (0, 7)
    assert (first.bias_base, second.bias_base) == (0, 3)
    assert (first.spmat_base, second.spmat_base) == (0, 3)  # PE0: 3 rows x 6 columns = 18 entries, 3 words
    assert (first.relu, second.relu) == (True, False)


def test_w_frac_is_the_most_fraction_bits_that_fit():
    def w_frac(codebook, codes=None, bias=None):
        codes = np.ones((2, 3), dtype=np.uint8) if codes is None else codes
        return lower([LayerSpec(codes, codebook, bias)], EieConfig(n_pe=1, act_depth=600)).layers[0].w_frac

    assert w_frac([0.0, 0.7]) == 15
    assert w_frac([0.0, -1.0]) == 14  # -1.0 * 2**15 = -32768 is refused: codebook words stay in (-2**15, 2**15)
    assert w_frac([0.0, 3.0]) == 13
    # 600 weights of 0.99 times 16-bit inputs could reach 600 * 2**15 * 0.99 * 2**15 > 2**39: one bit less instead.
    assert w_frac([0.0, 0.99], np.ones((2, 600), dtype=np.uint8)) == 14
    image = lower([LayerSpec(np.ones((2, 2), dtype=np.uint8), [0.0, 0.3], [0.25, -1.0])], EieConfig(n_pe=1))
    assert image.codebooks[0, 1] == round(0.3 * 2 ** 15) and image.bias[0].tolist() == [64, -256]


def test_bad_layers_are_refused_with_the_way_out():
    codes = np.ones((4, 3), dtype=np.uint8)
    with pytest.raises(WeightError, match="at most 16 codebook entries.*bits <= 4"):
        LayerSpec(codes, np.zeros(17))
    with pytest.raises(WeightError, match="entry 0 must be exactly 0.0.*keep_zero=True"):
        LayerSpec(codes, [0.1, 0.2])
    with pytest.raises(WeightError, match="codes must index the 2-entry codebook"):
        LayerSpec(codes * 2, [0.0, 0.2])
    with pytest.raises(ShapeError, match="bias must be 4 finite values"):
        LayerSpec(codes, CODEBOOK, np.zeros(3))
    with pytest.raises(ShapeError, match="layer 1 takes 5 inputs but layer 0 gives 4 outputs"):
        lower([LayerSpec(codes, CODEBOOK), LayerSpec(np.ones((2, 5), dtype=np.uint8), CODEBOOK)], EieConfig(n_pe=2))
    with pytest.raises(WeightError, match="bias 300 does not fit 16-bit fixed point with 8 fraction bits"):
        lower([LayerSpec(codes, CODEBOOK, np.full(4, 300.0))], EieConfig(n_pe=2))
    with pytest.raises(WeightError, match="too large .* rescale the layer"):
        lower([LayerSpec(codes, [0.0, 40000.0])], EieConfig(n_pe=2))


def test_an_image_too_large_names_each_memory_the_overflow_and_the_parameter():
    codes = np.ones((64, 100), dtype=np.uint8)
    small = EieConfig(n_pe=4, ptr_depth=50, spmat_depth=100, act_depth=10, bias_depth=8, max_layers=1)
    with pytest.raises(CapacityError) as error:
        lower([LayerSpec(codes, CODEBOOK), LayerSpec(codes[:, :64], CODEBOOK)], small)
    message = str(error.value)
    # 64 rows / 4 PEs = 16 rows per PE, 100 columns: 1600 entries = 200 words, then 16 x 64 = 128 words.
    assert "pointer memory (words over both banks) needs 166 per PE but EieConfig.ptr_depth=50: 116 over; raise " \
           "ptr_depth to at least 166" in message
    assert "sparse-matrix memory (64-bit words) needs 328 per PE but EieConfig.spmat_depth=100: 228 over" in message
    assert "activation buffer (16-bit words per ping-pong half) needs 25 per PE but EieConfig.act_depth=10" in message
    assert "bias memory (words) needs 32 per PE but EieConfig.bias_depth=8: 24 over" in message
    assert "layer table (layers) needs 2 per PE but EieConfig.max_layers=1: 1 over; raise max_layers" in message


def test_lowering_a_compressed_model_reads_relu_from_the_layer_list():
    rng = np.random.default_rng(1)
    dense = [Dense("a", (rng.normal(0, 0.3, (6, 5)) * (rng.random((6, 5)) < 0.5)).astype(np.float32),
                   np.zeros(6, np.float32)),
             Dense("b", (rng.normal(0, 0.3, (3, 6)) * (rng.random((3, 6)) < 0.5)).astype(np.float32),
                   np.full(3, 0.5, np.float32))]
    shared = {d.name: share_weights(d.weight, 2) for d in dense}
    for d in dense:
        d.weight = shared[d.name].decode()
    compressed = CompressedModel(Model([dense[0], Relu("r"), dense[1]], (5,)), shared)
    image = lower_compressed(compressed, EieConfig(n_pe=2))
    assert [layer.relu for layer in image.layers] == [True, False]
    assert image.bias[:, image.layers[1].bias_base:].tolist() == [[128, 128], [128, 0]]  # rows 0, 2 | 1, (none)
    flat = CompressedModel(Model([Flatten("f"), dense[0]], (5,)), {"a": shared["a"]})  # flattens the input
    assert lower_compressed(flat, EieConfig(n_pe=2)).input_len == 5
    doubled = CompressedModel(Model([dense[0], Relu("r"), Relu("r2")], (5,)), {"a": shared["a"]})
    with pytest.raises(UnsupportedError, match="layer 'r2' follows another Relu"):
        lower_compressed(doubled, EieConfig(n_pe=2))

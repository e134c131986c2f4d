"""Huffman coding: exact round trip, optimal lengths, canonical prefix-free codes, sizes."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparq.compiler.errors import ConfigError, ModelFormatError
from sparq.compiler.huffman import HuffmanStream, canonical_codes, code_lengths, huffman_decode, huffman_encode


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 64).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(0, k - 1), max_size=500))))
def test_round_trip(case):
    alphabet, symbols = case
    stream = huffman_encode(np.array(symbols, dtype=np.int64), alphabet)
    np.testing.assert_array_equal(huffman_decode(stream), symbols)
    assert stream.n_symbols == len(symbols) and len(stream.lengths) == alphabet


def test_textbook_lengths_and_canonical_codes():
    lengths = code_lengths([45, 13, 12, 16, 9, 5])  # CLRS example
    assert sorted(lengths) == [1, 3, 3, 3, 4, 4] and lengths[0] == 1
    codes = canonical_codes(lengths)
    words = [format(int(c), f"0{int(n)}b") for c, n in zip(codes, lengths)]
    assert len(set(words)) == 6
    assert not any(a != b and b.startswith(a) for a in words for b in words)  # prefix-free
    assert sum(2.0 ** -lengths) == 1.0  # complete


def test_sizes_and_entropy_bound():
    rng = np.random.default_rng(0)
    symbols = rng.choice(16, size=20_000, p=np.r_[0.5, np.full(15, 0.5 / 15)])
    stream = huffman_encode(symbols, 16)
    p = np.bincount(symbols, minlength=16) / len(symbols)
    entropy = -np.sum(p[p > 0] * np.log2(p[p > 0]))
    assert entropy <= stream.bits_per_symbol < entropy + 1
    assert stream.n_bits == int(np.sum(stream.lengths[symbols]))
    assert stream.total_bytes == -(-stream.n_bits // 8) + 16


def test_single_symbol_and_empty_streams():
    one = huffman_encode(np.full(7, 3), 4)
    assert one.n_bits == 7 and np.array_equal(huffman_decode(one), np.full(7, 3))
    empty = huffman_encode(np.array([], dtype=np.int64), 4)
    assert empty.n_symbols == 0 and huffman_decode(empty).size == 0 and empty.bits_per_symbol == 0.0


def test_bad_streams_and_symbols():
    stream = huffman_encode(np.arange(10) % 3, 3)
    with pytest.raises(ModelFormatError, match="corrupt"):
        huffman_decode(HuffmanStream(stream.data, stream.n_bits, stream.n_symbols + 1, stream.lengths))
    with pytest.raises(ModelFormatError, match="corrupt"):
        huffman_decode(HuffmanStream(stream.data[:1], stream.n_bits, stream.n_symbols, stream.lengths))
    with pytest.raises(ConfigError, match="\\[0, 3\\)"):
        huffman_encode(np.array([0, 3]), 3)

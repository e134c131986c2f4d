"""Relative-index sparse storage with padding entries."""

import numpy as np
import pytest

from sparq.compiler.errors import ConfigError
from sparq.compiler.sparse import decode_relative, encode_relative


def test_reference_tiny_example():
    codes = np.zeros((23, 1), np.uint8)
    codes[[2, 3, 22], 0] = [1, 2, 3]
    index = encode_relative(codes, 4)
    np.testing.assert_array_equal(index.codes, [1, 2, 0, 3])
    np.testing.assert_array_equal(index.gaps, [2, 0, 15, 2])
    assert index.n_padding == 1


@pytest.mark.parametrize("gap,entries", [(15, 1), (16, 2), (31, 2), (32, 3)])
def test_padding_boundaries(gap, entries):
    codes = np.zeros((gap + 1, 1), np.uint8)
    codes[gap, 0] = 7
    index = encode_relative(codes, 4)
    assert len(index.codes) == entries and index.gaps.max() <= 15
    np.testing.assert_array_equal(decode_relative(index), codes)


def test_column_major_order():
    codes = np.array([[1, 0], [0, 2]], np.uint8)
    index = encode_relative(codes, 2)
    np.testing.assert_array_equal(index.codes, [1, 2])
    np.testing.assert_array_equal(index.gaps, [0, 2])


@pytest.mark.parametrize("shape", [(40, 30), (6, 4, 3, 3)])
@pytest.mark.parametrize("bits", [1, 3, 5])
def test_round_trip(shape, bits):
    rng = np.random.default_rng(bits)
    codes = ((rng.random(shape) < 0.07) * rng.integers(1, 16, shape)).astype(np.uint8)
    np.testing.assert_array_equal(decode_relative(encode_relative(codes, bits)), codes)


def test_bad_index_bits():
    with pytest.raises(ConfigError, match="1 to 8 bits"):
        encode_relative(np.ones((2, 2), np.uint8), 0)

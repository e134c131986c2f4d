"""Shared set-up of the EIE RTL tests: hardware configurations (few, so Verilator builds are shared) and images."""

import numpy as np
import pytest

from sparq.compiler.eie import LayerSpec, lower
from sparq.formats.eie import EieConfig

#: The default suite's one Verilator build: 4 PEs, big enough for the paper example, the random layers and the
#: digits MLP.
CONFIG4 = EieConfig(n_pe=4, fifo_depth=8, ptr_depth=1024, spmat_depth=1024, act_depth=128, bias_depth=256,
                   max_layers=4)


def config_for(n_pe, fifo_depth=8, **depths):
    """A configuration for ``n_pe`` PEs sized for the random layers (at most 512 rows, 512 columns, 50 %)."""
    rows = -(-512 // n_pe)
    sizes = dict(ptr_depth=1040, spmat_depth=max(64, rows * 512 // 16 + 64), act_depth=max(rows, 16),
                 bias_depth=max(rows, 16), max_layers=4)
    return EieConfig(n_pe=n_pe, fifo_depth=fifo_depth, **{**sizes, **depths})


def random_codes(rng, out_len, in_len, density, *, empty_columns=0, padded_columns=0):
    """Random 4-bit codes at ``density``, with some empty columns and some columns with long zero runs."""
    codes = (rng.random((out_len, in_len)) < density) * rng.integers(1, 16, (out_len, in_len))
    for j in rng.choice(in_len, empty_columns + padded_columns, replace=False)[:empty_columns]:
        codes[:, j] = 0
    for j in rng.choice(in_len, padded_columns, replace=False):
        codes[:, j] = 0
        codes[[0, out_len - 1], j] = rng.integers(1, 16, 2)  # the whole column between is one zero run
    return codes


def layer_image(directory, config, codes, seed, relu=True):
    """Lower one layer with a random codebook and bias; save it into ``directory``; return ``(image, path)``."""
    rng = np.random.default_rng(seed)
    codebook = np.r_[0.0, np.sort(rng.uniform(-1, 1, 15))]
    image = lower([LayerSpec(codes, codebook, rng.normal(0, 0.5, codes.shape[0]), relu=relu)], config)
    return image, str(image.save(directory))


def random_inputs(rng, in_len, count, density=0.6):
    """``count`` Q8.8 input vectors: random ones at ``density``, then an all-zero and a fully dense one."""
    xs = [rng.integers(-2000, 2000, in_len) * (rng.random(in_len) < density) for _ in range(count)]
    xs += [np.zeros(in_len, dtype=np.int64), rng.integers(1, 2000, in_len) * rng.choice([-1, 1], in_len)]
    return [[int(v) for v in x] for x in xs]


PAPER_PE0 = [(0, 0), (8, 0), (12, 0), (4, 1), (0, 2), (12, 2), (0, 4), (4, 4), (0, 5), (12, 5), (0, 6), (8, 7),
             (12, 7)]


@pytest.fixture(scope="session")
def paper_image(tmp_path_factory):
    """The paper's 16x8 matrix on 4 PEs (PE0's entries as in Fig. 2/3, the other rows random), on CONFIG4."""
    rng = np.random.default_rng(0)
    codes = (rng.random((16, 8)) < 0.4) * rng.integers(1, 16, (16, 8))
    codes[0::4] = 0
    for n, (i, j) in enumerate(PAPER_PE0):
        codes[i, j] = n + 1
    return layer_image(tmp_path_factory.mktemp("paper"), CONFIG4, codes, seed=1)


@pytest.fixture(scope="session")
def digits_mlp():
    """The compressed digits MLP (4-bit codes) and the digits test split."""
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.pipeline import compress_digits_mlp
    compressed, report = compress_digits_mlp(bits=4, progress=False)
    _, _, x_test, y_test = load_digits_split()
    return compressed, report, x_test, y_test

"""Winograd lowering (sparq.compiler.systolic.winograd) and its golden execution: exact against the definition and identical to
the im2col path; fallbacks, errors and the format version."""

import json
from dataclasses import replace

import numpy as np
import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.errors import CompileError
from sparq.compiler.ir import Conv, Model, Relu
from sparq.compiler.systolic import compile_network
from sparq.compiler.systolic.winograd import SCALE, transform_weights, winograd_requant, winograd_tiles
from sparq.formats.systolic import (
    FORMAT_VERSION,
    Flag,
    FormatError,
    Instruction,
    Opcode,
    load_program,
    requantize,
    save_program,
)
from sparq.sim.systolic.golden import SystolicGolden, run_network, run_program
from sparq.sim.systolic.stimulus import config_for
from sparq.sim.systolic.winograd import conv_programs, random_conv, reference_conv, winograd_config


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


CASES = [  # channels, outputs, height, width, padding
    (3, 5, 6, 7, (1, 1, 1, 1)),  # odd output width
    (9, 4, 5, 5, (0, 0, 0, 0)),  # odd output size, no padding, channels not a multiple of the array
    (16, 16, 8, 8, (1, 1, 1, 1)),  # even tiling
    (1, 8, 8, 8, (1, 1, 1, 1)),  # the digits CNN's first layer shape
    (4, 3, 3, 3, (2, 0, 1, 2)),  # asymmetric padding
]


@pytest.mark.parametrize("size", [pytest.param(2, marks=pytest.mark.slow), 4, 8])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_winograd_golden_is_exact_and_equals_im2col(size, case):
    channels, outputs, height, width, padding = CASES[case]
    x, layer = random_conv(case, images=1 if case == 2 else 2, channels=channels, outputs=outputs, height=height,
                           width=width, padding=padding, relu=bool(case % 2))
    programs, unpack = conv_programs(x, layer, winograd_config(size))
    reference = reference_conv(x, layer.weight, layer.bias, layer.multiplier, layer.shift, layer.relu, padding)
    for path, (program, words) in programs.items():
        out = unpack(path, run_program(program.config, program.instructions, program.stream(words)))
        assert out.shape == reference.shape
        assert (out == reference).all(), f"{path}: first difference at {np.argwhere(out != reference)[0]}"


def test_weight_transform_is_integer_and_scaled():
    rng = np.random.default_rng(0)
    g = rng.integers(-128, 128, (2, 3, 3, 3)).astype(np.int8)
    u = transform_weights(g)
    assert u.shape == (16, 3, 2) and u.dtype == np.int64
    G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    exact = np.einsum("ai,ncij,bj->abcn", G, g.astype(float), G).reshape(16, 3, 2)
    assert np.array_equal(u, SCALE * exact)
    extreme = transform_weights(np.full((1, 1, 3, 3), -128, np.int8))
    assert extreme.min() == -1152  # WINOGRAD_U_BITS = 12


def test_requantization_removes_the_scale_exactly():
    rng = np.random.default_rng(1)
    acc = rng.integers(-(1 << 28), 1 << 28, 5000)
    for shift in (0, 1, 7, 20, 45):
        bias, multiplier = rng.integers(-(1 << 20), 1 << 20, 5000), rng.integers(0, 1 << 16, 5000)
        scaled = winograd_requant(bias, multiplier, np.full(5000, shift))
        assert (requantize(SCALE * acc, *scaled, True) == requantize(acc, bias, multiplier, shift, True)).all()
    with pytest.raises(CompileError, match="bias times 4"):
        winograd_requant([1 << 30], [1], [1])
    with pytest.raises(CompileError, match="shift plus 2"):
        winograd_requant([0], [1], [46])


def test_tiles_pad_odd_outputs():
    x = np.arange(2 * 1 * 5 * 5, dtype=np.int64).reshape(2, 1, 5, 5).astype(np.int8)
    tiles, size = winograd_tiles(x, (0, 0, 0, 0))
    assert size == (3, 3) and tiles.shape == (2 * 4 * 16, 1)  # 2x2 tiles per image, the last row/column padded
    first = tiles[:16, 0].reshape(4, 4)
    assert (first == x[0, 0, :4, :4]).all()
    last = tiles[3 * 16:4 * 16, 0].reshape(4, 4)
    assert (last[:3, :3] == x[0, 0, 2:5, 2:5]).all() and not last[3].any() and not last[:, 3].any()


def test_digits_cnn_winograd_equals_im2col(digits):
    from sparq.compiler.models import load_shipped
    model = load_shipped("digits_cnn")
    config = winograd_config(8)
    plain = compile_network(model, digits[0], config)
    fast = compile_network(model, digits[0], config, winograd=True)
    assert "Winograd" in fast.summary() and not fast.notes
    a, _ = run_network(plain, digits[2][:40])
    b, _ = run_network(fast, digits[2][:40])
    assert np.array_equal(a, b)


def test_other_convolutions_fall_back_to_im2col_with_a_note(digits):
    rng = np.random.default_rng(2)
    model = Model([
        Conv("strided", rng.normal(size=(4, 1, 3, 3)), np.zeros(4), stride=(2, 2), padding=(1, 1, 1, 1)),
        Relu("r1"),
        Conv("wide", rng.normal(size=(4, 4, 5, 5)) * 0.1, np.zeros(4), padding=(2, 2, 2, 2)),
        Relu("r2"),
        Conv("plain", rng.normal(size=(2, 4, 3, 3)) * 0.1, np.zeros(2), padding=(1, 1, 1, 1)),
    ], (1, 8, 8))
    x = digits[0][:64, :64].reshape(-1, 1, 8, 8)
    network = compile_network(model, x, winograd_config(4), winograd=True)
    assert any("strided" in n and "stride (2, 2) is not 1" in n for n in network.notes)
    assert any("wide" in n and "kernel (5, 5) is not 3x3" in n for n in network.notes)
    assert not any("plain" in n for n in network.notes)
    a, _ = run_network(network, x[:8])
    b, _ = run_network(compile_network(model, x, winograd_config(4)), x[:8])
    assert np.array_equal(a, b)


def test_winograd_needs_a_winograd_build(digits):
    from sparq.compiler.models import load_shipped
    with pytest.raises(CompileError, match="winograd=True needs a Winograd build"):
        compile_network(load_shipped("digits_cnn"), digits[0], config_for(8), winograd=True)
    golden = SystolicGolden(config_for(4))
    for ins in (Instruction(Opcode.TRANSFORM_IN, count=1), Instruction(Opcode.LOAD_WEIGHTS, Flag.WIDE)):
        with pytest.raises(FormatError, match="needs a Winograd build"):
            golden.execute(ins, iter(()), [])


def test_capacity_errors_for_winograd(digits):
    x, layer = random_conv(0, images=1, channels=8, outputs=8, height=8, width=8)
    small = replace(winograd_config(4), acc_depth=16)
    with pytest.raises(CompileError, match="raise acc_depth to at least 20"):
        conv_programs(x, layer, small)


def test_old_format_version_is_refused(tmp_path):
    x, layer = random_conv(0, images=1, channels=2, outputs=2, height=4, width=4)
    programs, _ = conv_programs(x, layer, winograd_config(2))
    path = tmp_path / "w.npz"
    save_program(programs["winograd"][0], path)
    assert load_program(path).instructions == programs["winograd"][0].instructions
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["header"]))
    header["version"] = 1
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    with pytest.raises(FormatError, match=f"format version 1, this sparq reads version {FORMAT_VERSION}; recompile"):
        load_program(tmp_path / "old.npz")

"""The Winograd build of the systolic accelerator under Verilator: random 3x3 convolutions lowered both ways
(Winograd and im2col) with random host back-pressure, every output byte against the golden model, the cycle model
against the counters, and the digits CNN end to end.

All under ``-m slow``: a Winograd accelerator build alone costs one to two minutes on two shared cores, beyond the
default suite's budget. The default suite checks the transform units under Verilator
(``test_winograd_blocks.py``) and the Winograd golden model against the definition and the im2col path
(``test_winograd_compiler.py``)."""

import numpy as np
import pytest

from sparq.formats.systolic import save_program
from sparq.hw.systolic.accelerator import SystolicAccelerator
from sparq.sim.harness import run_verilator
from sparq.sim.systolic.cycles import predict
from sparq.sim.systolic.winograd import conv_programs, random_conv, winograd_config

SHAPES = [  # channels, outputs, height, width, padding
    (3, 5, 6, 7, (1, 1, 1, 1)),
    (9, 4, 5, 5, (0, 0, 0, 0)),
    (8, 8, 8, 8, (1, 1, 1, 1)),
]


def _runs(tmp_path, size, shapes, seed=0):
    """Program files of each shape lowered both ways: a run with random back-pressure and (for the cycle model) a
    run with the host always ready."""
    config = winograd_config(size)
    runs, predicted = [], []
    for i, (channels, outputs, height, width, padding) in enumerate(shapes):
        x, layer = random_conv(seed + i, images=1, channels=channels, outputs=outputs, height=height, width=width,
                               padding=padding, relu=bool(i % 2))
        programs, _ = conv_programs(x, layer, config)
        for path, (program, words) in programs.items():
            stem = tmp_path / f"{i}_{path}"
            save_program(program, f"{stem}.npz")
            np.save(f"{stem}.npy", words)
            files = dict(program=f"{stem}.npz", inputs=f"{stem}.npy")
            runs.append(dict(name=f"shape {i} {path}, back-pressure", seed=seed + i, gap_probability=0.3,
                             stall_probability=0.3, instr_gap_probability=0.1, **files))
            runs.append(dict(name=f"shape {i} {path}, host always ready", **files))
            predicted.append(predict(config, program.instructions))
    return config, runs, predicted


def _check(config, runs, predicted):
    results = run_verilator(SystolicAccelerator(config), "sparq.sim.tb.systolic:run_program_files", optimize=False,
                            runs=runs)
    ready = [r for r in results if r["name"].endswith("always ready")]
    for result, estimate in zip(ready, predicted):
        assert result["cycles"] - result["stall_cycles"] == estimate.cycles, result["name"]
        assert (result["mac_busy"], result["active_cycles"]) == (estimate.mac_busy, estimate.active_cycles)
    return results


@pytest.mark.slow
def test_random_convolutions_2x2(tmp_path):
    _check(*_runs(tmp_path, 2, SHAPES[:1]))


@pytest.mark.slow
@pytest.mark.parametrize("size", [4, 8])
def test_random_convolutions(tmp_path, size):
    _check(*_runs(tmp_path, size, SHAPES, seed=size))


@pytest.mark.slow
def test_digits_cnn_on_the_rtl():
    """200 test images through the Winograd-compiled digits CNN on an 8x8 build, bit-exact with the golden model,
    logits identical to the im2col path's."""
    result = run_verilator(SystolicAccelerator(winograd_config(8)), "sparq.sim.tb.winograd:run_digits_cnn",
                           optimize=False, images=200, size=8, gap_probability=0.2, stall_probability=0.2)
    assert result["int8_accuracy"] > 0.9

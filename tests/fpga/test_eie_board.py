"""The EIE board top end to end under Verilator: the UART bus-functional model speaks the host protocol with the
driver's own sequences (sparq.fpga.driver.eie_job, eie_load), and every output word is checked bit-exactly against
sparq.sim.eie.golden on the same image.

The default test runs two digits images on a 2-PE build with per-PE counters and the sparse matrices in SPRAM
(loaded over the UART first, as on the iCEBreaker), then patches the baked image through
the image space (the last layer's codebook and ReLU bit) and runs them again against the patched image's golden
model; the slow one runs twenty digits images on the 4-PE board design as ``sparq synth --design eie-board`` builds
it and checks the accuracy against the labels."""

import dataclasses

import numpy as np
import pytest

from sparq.formats.eie import ACT_FRAC, to_fixed
from sparq.fpga.designs import get_design, make_design
from sparq.fpga.images import eie_image
from sparq.fpga.top import EieHost
from sparq.sim.harness import run_verilator as run

DIVISOR = 4


def _digits(count):
    """``count`` digits test images as Q8.8 input vectors, and their labels."""
    from sparq.compiler.datasets import load_digits_split
    _, _, x_test, y_test = load_digits_split()
    return [[int(v) for v in to_fixed(x, ACT_FRAC)] for x in x_test[:count]], y_test[:count]


def _run_board(tmp_path, config, image, inputs, *, new_image=None, **eie_options):
    params = dict(image=str(image.save(tmp_path / "baked")), inputs=inputs, divisor=DIVISOR,
                  spram=eie_options.get("spram", False))
    if new_image is not None:
        params["new_image"] = str(new_image.save(tmp_path / "new"))
    host = EieHost(config, image, divisor=DIVISOR, timeout=100 * DIVISOR, **eie_options)
    return run(host, "sparq.fpga.tb:eie_board", optimize=False, **params)


def test_eie_board_design_elaborates():
    from amaranth.back import rtlil
    board, params = make_design("eie-board")
    assert (params["n_pe"], params["pe_counters"], params["baud"]) == (4, False, 115_200)
    core = board.make_core(104)
    assert isinstance(core, EieHost) and core.bridge.n_counters == 2
    rtlil.convert(core)


def test_digits_eie_board_verilator(tmp_path):
    config, image = eie_image("digits", n_pe=2)
    last = len(image.layers) - 1
    codebooks = image.codebooks.copy()
    codebooks[last] = -np.clip(codebooks[last], -(1 << 15) + 1, None)
    patched = dataclasses.replace(image, codebooks=codebooks, layers=image.layers[:last] + (
        dataclasses.replace(image.layers[last], relu=not image.layers[last].relu),))
    inputs, _ = _digits(2)
    results = _run_board(tmp_path, config, image, inputs, new_image=patched, pe_counters=True, spram=True)
    assert [r["image"] for r in results] == ["baked", "baked", "loaded", "loaded"]
    assert all(len(r["busy_cycles"]) == 2 for r in results)
    assert results[0]["outputs"] != results[2]["outputs"]


@pytest.mark.slow
def test_digits_eie_board_accuracy_verilator(tmp_path):
    defaults = get_design("eie-board").defaults
    config, image = eie_image(defaults["image"], n_pe=defaults["n_pe"], fifo_depth=defaults["fifo_depth"])
    inputs, labels = _digits(20)
    results = _run_board(tmp_path, config, image, inputs, pe_counters=defaults["pe_counters"],
                         spram=defaults["spram"])
    predicted = np.array([int(np.argmax(r["outputs"])) for r in results])
    assert np.mean(predicted == labels) >= 0.85

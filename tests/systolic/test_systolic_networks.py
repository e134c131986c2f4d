"""The digits MLP and CNN: compiled, run bit-exactly on the golden model against the float and int8 references, and
end to end on the 8x8 RTL, every device call checked byte for byte against the golden model."""

import numpy as np
import pytest

from sparq.compiler.datasets import load_digits_split
from sparq.compiler.errors import UnsupportedError
from sparq.compiler.ir import Dense, Model, Relu, forward
from sparq.compiler.models import load_shipped
from sparq.compiler.quantize import forward_int8, quantize_model
from sparq.compiler.systolic import CapacityError, compile_network
from sparq.formats.systolic import SystolicConfig
from sparq.hw.systolic.accelerator import SystolicAccelerator
from sparq.sim.harness import run_verilator
from sparq.sim.systolic.golden import run_network
from sparq.sim.systolic.stimulus import config_for

MODELS = ["digits_mlp", "digits_cnn"]


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


@pytest.mark.parametrize("name", MODELS)
def test_golden_int8_against_float(digits, name):
    """On all 540 test images: the accelerator's int8 result loses at most one point of accuracy against float,
    its predictions agree with the compiler's int8 reference (int32 logits) on 99 % of images or more, and its
    dequantized logits stay within 5 % of the float logits' range."""
    x_train, _, x_test, y_test = digits
    model = load_shipped(name)
    network = compile_network(model, x_train, config_for(8), name=name)
    logits, calls = run_network(network, x_test)
    reference = forward(model, x_test)
    int8_reference = forward_int8(quantize_model(model, x_train), x_test)
    accuracy = (logits.argmax(1) == y_test).mean()
    assert accuracy >= (reference.argmax(1) == y_test).mean() - 0.01
    assert (logits.argmax(1) == int8_reference.argmax(1)).mean() >= 0.99
    error = np.abs(logits * network.output_scale - reference).max() / np.abs(reference).max()
    assert error < 0.05
    assert len(calls) == -(-len(x_test) // network.batch) * sum(1 for s in network.steps if hasattr(s, "layers"))


def test_capacity_error_names_memory_and_parameter(digits):
    small = SystolicConfig(rows=8, cols=8, ub_depth=4096, wb_depth=1024, acc_depth=64)
    with pytest.raises(CapacityError, match=r"weight buffer needs \d+ words .* raise wb_depth to at least \d+"):
        compile_network(load_shipped("digits_mlp"), digits[0], small)
    with pytest.raises(CapacityError, match=r"unified buffer needs \d+ words .*raise ub_depth"):
        compile_network(load_shipped("digits_mlp"), digits[0], config_for(8), batch=1000)


def test_unsupported_layer_is_refused(digits):
    rng = np.random.default_rng(0)
    model = Model([Dense("fc", rng.normal(size=(4, 64)), np.zeros(4)), Relu("r")], (64,))
    with pytest.raises(UnsupportedError):
        compile_network(model, digits[0], config_for(4))


def _rtl(images, **pressure):
    results = run_verilator(SystolicAccelerator(config_for(8)), "sparq.sim.tb.systolic:run_networks", optimize=False, models=MODELS,
                            images=images, size=8, **pressure)
    for name, result in results.items():
        assert result["int8_accuracy"] >= result["float_accuracy"] - 0.05, (name, result)
    return results


def test_digits_rtl_20_images():
    _rtl(20, seed=1, gap_probability=0.2, stall_probability=0.2, instr_gap_probability=0.1)


@pytest.mark.slow
def test_digits_rtl_200_images():
    results = _rtl(200)
    for result in results.values():
        assert result["int8_accuracy"] >= result["float_accuracy"] - 0.01

"""The compressed digits MLP as a three-layer network on the RTL: outputs bit-exact with the golden model (checked
by the body), hence the same accuracy."""

import numpy as np
import pytest
from conftest import CONFIG4

from sparq.compiler.eie import lower_compressed
from sparq.formats.eie import ACT_FRAC, to_fixed
from sparq.hw.eie import EIE
from sparq.sim.eie import Golden
from sparq.sim.harness import run_verilator


def _run(digits_mlp, tmp_path, count):
    compressed, _, x_test, y_test = digits_mlp
    image = lower_compressed(compressed, CONFIG4)
    path = str(image.save(tmp_path / "mlp"))
    inputs = [[int(v) for v in to_fixed(x, ACT_FRAC)] for x in x_test[:count]]
    result = run_verilator(EIE(CONFIG4), "sparq.sim.tb.eie:run_network", jobs=[{"image_dir": path, "inputs": inputs}],
                           seed=count)[0]
    rtl = np.array([int(np.argmax(out)) for out in result["outputs"]])
    golden = Golden(image).classify(x_test[:count])
    assert np.array_equal(rtl, golden)
    assert len(image.layers) == 3
    return np.mean(rtl == y_test[:count])


def test_digits_mlp_20_images(digits_mlp, tmp_path):
    assert _run(digits_mlp, tmp_path, 20) >= 0.85


@pytest.mark.slow
def test_digits_mlp_200_images(digits_mlp, tmp_path):
    assert _run(digits_mlp, tmp_path, 200) >= 0.9

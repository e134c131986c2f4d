"""EIE with the sparse matrices in single-port halfword memories (``EIE(spram=True)``, the iCE40 UltraPlus SPRAM
organisation) under Verilator: bit-exact against the golden model (checked by the body) with random host
back-pressure, on the digits MLP and a random layer, and every counter equal to the default organisation's."""

import numpy as np
import pytest
from conftest import CONFIG4, layer_image, random_codes, random_inputs

from sparq.compiler.eie import lower_compressed
from sparq.formats.eie import ACT_FRAC, to_fixed
from sparq.hw.eie import EIE
from sparq.sim.harness import run_verilator


@pytest.mark.slow  # the default suite runs the SPRAM EIE on the board top (tests/fpga/test_eie_board.py)
def test_spram_organisation_verilator(digits_mlp, tmp_path):
    compressed, _, x_test, _ = digits_mlp
    mlp = lower_compressed(compressed, CONFIG4).save(tmp_path / "mlp")
    rng = np.random.default_rng(60)
    codes = random_codes(rng, 128, 200, 0.3, empty_columns=3, padded_columns=2)
    _, layer = layer_image(tmp_path / "layer", CONFIG4, codes, seed=60)
    jobs = [{"image_dir": str(mlp), "inputs": [[int(v) for v in to_fixed(x, ACT_FRAC)] for x in x_test[:6]]},
            {"image_dir": layer, "inputs": random_inputs(rng, 200, 1)}]
    # The default organisation shares the other tests' build; the SPRAM one is built at -O0, faster to build.
    spram, default = (run_verilator(EIE(CONFIG4, spram=flag), "sparq.sim.tb.eie:run_network", jobs=jobs, seed=60,
                                    gap_probability=0.2, stall_probability=0.2, optimize=not flag)
                      for flag in (True, False))
    for job_spram, job_default in zip(spram, default):
        assert job_spram["outputs"] == job_default["outputs"]
        assert job_spram["counters"] == job_default["counters"]

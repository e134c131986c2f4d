"""The EIE on the native runner (sparq.sim.native) against the cocotb path, on the same jobs."""

import numpy as np
from conftest import CONFIG4, layer_image, random_codes, random_inputs

from sparq.formats.eie import EieImage, image_words
from sparq.hw.eie import EIE
from sparq.sim.eie import cycle
from sparq.sim.harness import run_verilator
from sparq.sim.native import run_native

PRESSURE = dict(gap_probability=0.3, stall_probability=0.3)


def test_eie_native_equals_cocotb(tmp_path):
    """Random layers (empty and padded columns), valid gaps and back-pressure, a reset in the middle of a run: the
    same outputs and the same counters, bit for bit, and the pressure asked for reached the streams."""
    rng = np.random.default_rng(16)
    jobs, images = [], []
    for n, (density, (out_len, in_len)) in enumerate([(0.05, (64, 96)), (0.3, (128, 200)), (0.5, (33, 17))]):
        codes = random_codes(rng, out_len, in_len, density, empty_columns=3, padded_columns=2)
        image, path = layer_image(tmp_path / f"layer{n}", CONFIG4, codes, seed=n, relu=bool(n % 2))
        jobs.append({"image_dir": path, "inputs": random_inputs(rng, in_len, 2)})
        images.append(image)
    params = dict(jobs=jobs, seed=7, reset_at=60, **PRESSURE)
    cocotb = run_verilator(EIE(CONFIG4), "sparq.sim.tb.eie:run_network", **params)
    native = run_native(EIE(CONFIG4), "sparq.sim.tb.eie:run_network", optimize=True, **params)  # -O2, as cocotb
    assert [job["outputs"] for job in native] == [job["outputs"] for job in cocotb]
    assert [job["counters"] for job in native] == [job["counters"] for job in cocotb]
    for image, spec, job in zip(images, jobs, native):
        # The last input is fully dense (no all-zero group for the leading non-zero detector): the cycle model with
        # the RTL's queue latency gives its compute cycles exactly.
        dense = np.array(spec["inputs"][-1])
        model = cycle.simulate(cycle.layer_costs(image, 0, dense), CONFIG4.fifo_depth,
                                **cycle.RTL_LATENCY)
        assert job["counters"][-1]["compute"] == model.total
        streams = job["streams"]
        assert streams["load"]["starved"] > 0 and streams["read"]["starved"] > 0  # valid gaps
        assert streams["out"]["stalled"] > 0  # back-pressure on the output
    # Every word loaded once: the image, then each input (the first one twice, before and after the reset).
    words = 0
    for job_number, job in enumerate(jobs):
        words += len(image_words(EieImage.load(job["image_dir"])))
        words += sum(len(x) for x in job["inputs"]) + (len(job["inputs"][0]) if job_number == 0 else 0)
    assert sum(job["streams"]["load"]["transfers"] for job in native) == words


def test_eie_session_keeps_the_image(tmp_path, paper_image):
    """One simulation across calls (the front door's per-image runs, :func:`sparq.rtl.eie_images` and its native
    twin on :class:`sparq.sim.native.eie.Eie`): the image loaded by the first call serves the next ones
    (``load_image=False``), with the same outputs and counters on both runners."""
    _, path = paper_image
    inputs = random_inputs(np.random.default_rng(8), 8, 3)
    body = "sparq.rtl:eie_images"
    cocotb = run_verilator(EIE(CONFIG4), body, image_dir=path, inputs=inputs, seed=4)
    native = run_native(EIE(CONFIG4), body, image_dir=path, inputs=inputs, seed=4, optimize=True)
    assert native == cocotb

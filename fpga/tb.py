"""Testbench bodies for the board tops (:class:`sparq.fpga.top.SystolicHost`, :class:`sparq.fpga.top.EieHost`): each
runs the host driver's own sequences (:mod:`sparq.fpga.driver`) through the board's UART pins, with the UART
bus-functional model of :mod:`sparq.sim.uart.bfm` in place of the serial port, and checks every output word against
the golden models."""

import random

import numpy as np

from sparq.formats import uart as protocol
from sparq.formats.eie import EieImage, image_words
from sparq.formats.systolic import COUNTERS, Opcode, load_program, pack_matrix
from sparq.formats.uart import DeviceError
from sparq.sim.bench import Agent
from sparq.sim.eie.golden import Golden
from sparq.sim.scoreboard import Mismatch, assert_words_equal
from sparq.sim.systolic.golden import run_program
from sparq.sim.uart.bfm import UARTLink

from .driver import eie_job, eie_load, eie_spmat_load, systolic_job

__all__ = ["systolic_board", "systolic_board_error", "eie_board"]


class LevelWatch(Agent):
    """Records every level each watched port took."""

    def __init__(self, *ports):
        self.levels = {port: set() for port in ports}

    def sample(self, bench):
        for port, seen in self.levels.items():
            seen.add(bench.get(port))


async def _board_link(bench, *, divisor, seed):
    """A board top under test, reset, with a UART link (random gaps between bytes) and a watch on its LEDs, after
    HELLO: ``(link, leds, info)``."""
    leds = LevelWatch("busy", "done")
    link = UARTLink(bench, divisor=divisor, agents=[leds], rng=random.Random(seed), max_gap=divisor)
    bench.set("rx", 1)
    await bench.reset()
    return link, leds, await link.run(protocol.hello())


async def systolic_board(bench, *, program: str, inputs: str, divisor: int, seed: int = 0):
    """A :class:`sparq.fpga.top.SystolicHost` end to end through its UART, with the driver's own sequence
    (:func:`sparq.fpga.driver.systolic_job`): for each input matrix saved in ``inputs`` (``numpy.save`` of an int8 array
    ``runs x M x K``), load it, START, poll until done, read the outputs and the counters; every output byte checked
    against ``sparq.sim.systolic.golden``, the LEDs (``busy`` during a run, ``done`` after it) and ``mac_busy`` against the
    program. Returns the counters of each run."""
    prog = load_program(program)
    runs = np.load(inputs)
    lanes = prog.config.lanes
    link, leds, info = await _board_link(bench, divisor=divisor, seed=seed)
    if (bench.get("busy"), bench.get("done"), info.n_counters) != (0, 0, len(COUNTERS)):
        raise Mismatch(f"after reset: busy {bench.get('busy')}, done {bench.get('done')}, "
                       f"{info.n_counters} counters (expected 0, 0, {len(COUNTERS)})")
    results = []
    for k, x in enumerate(runs):
        expected = run_program(prog.config, prog.instructions, prog.stream(pack_matrix(x, lanes)))
        leds.levels = {port: set() for port in leds.levels}
        outputs, counters = await link.run(systolic_job(prog, x))
        assert_words_equal(expected.view(np.uint8), outputs.view(np.uint8), what=f"run {k}: output bytes")
        matmul_rows = sum(ins.count for ins in prog.instructions if ins.opcode == Opcode.MATMUL)
        if counters["mac_busy"] != matmul_rows or not 0 < counters["active_cycles"] <= counters["cycles"]:
            raise Mismatch(f"run {k}: counters {counters}, expected mac_busy {matmul_rows}")
        if 1 not in leds.levels["busy"] or (bench.get("busy"), bench.get("done")) != (0, 1):
            raise Mismatch(f"run {k}: busy LED took {leds.levels['busy']} during the run; after it busy "
                           f"{bench.get('busy')}, done {bench.get('done')} (expected 0, 1)")
        results.append({**counters, "outputs": outputs.reshape(-1).tolist()})
    return results


async def systolic_board_error(bench, *, program: str, inputs: str, divisor: int, seed: int = 0):
    """A :class:`sparq.fpga.top.SystolicHost` whose instruction ROM holds an opcode the accelerator does not execute
    in place of one of ``program``'s instructions: the driver's own sequence (:func:`sparq.fpga.driver.systolic_job`
    on the first matrix in ``inputs``) must fail with :class:`sparq.formats.uart.DeviceError`; STATUS then reads
    ``error`` and ``done``, not ``busy``, and so do the LEDs (``done`` lit). A second job stops the same way (START
    resets the accelerator, which meets the same word again). Returns the STATUS after the first job."""
    prog = load_program(program)
    x = np.load(inputs)[0]
    link, leds, _ = await _board_link(bench, divisor=divisor, seed=seed)
    for attempt in range(2):
        try:
            await link.run(systolic_job(prog, x))
        except DeviceError:
            pass
        else:
            raise Mismatch(f"job {attempt}: the board ran the program to the end; expected it to stop on the bad word")
        state = await link.run(protocol.status())
        if not (state.error and state.done) or state.busy or (bench.get("busy"), bench.get("done")) != (0, 1):
            raise Mismatch(f"job {attempt}: status {state}, LEDs busy {bench.get('busy')} done {bench.get('done')} "
                           f"(expected error and done, not busy)")
        if attempt == 0:
            first = state
    return {name: getattr(first, name) for name in protocol.STATUS_BITS}


async def eie_board(bench, *, image: str, inputs, divisor: int, new_image: str | None = None, spram: bool = False,
                    seed: int = 0):
    """A :class:`sparq.fpga.top.EieHost` end to end through its UART, with the driver's own sequences: for each input
    vector of ``inputs`` (Q8.8 integers), :func:`sparq.fpga.driver.eie_job` loads it, STARTs, polls until done and reads the
    output and the counters; every output word checked against :mod:`sparq.sim.eie.golden` on ``image`` (the directory of
    the baked :class:`sparq.formats.eie.EieImage`), the LEDs (``busy`` during a run, ``done`` after it) and the counters
    (``0 < compute_cycles <= cycles``; per PE, if present, ``busy + starve == compute``). With ``new_image`` (a saved
    image for the same configuration), the load-port words in which it differs from ``image`` then go through the
    image space (:func:`sparq.fpga.driver.eie_load`) and the inputs run again against the new image's golden model. With
    ``spram`` (a host built with ``spram=True``), the sparse matrices are loaded first, as the driver does after
    power-up (:func:`sparq.fpga.driver.eie_spmat_load`).
    Returns one ``{"image", **counters, "outputs"}`` per run."""
    baked = EieImage.load(image)
    n_pe = baked.config.n_pe
    link, leds, info = await _board_link(bench, divisor=divisor, seed=seed)
    if (bench.get("busy"), bench.get("done"), info.n_counters) not in ((0, 0, 2), (0, 0, 2 + 3 * n_pe)):
        raise Mismatch(f"after reset: busy {bench.get('busy')}, done {bench.get('done')}, {info.n_counters} "
                       f"counters (expected 0, 0, and 2 or {2 + 3 * n_pe})")
    if spram:
        await link.run(eie_spmat_load(baked))
    results = []
    images = [("baked", baked)]
    if new_image is not None:
        images.append(("loaded", EieImage.load(new_image)))
    for name, current in images:
        if current is not baked:
            changed = [word for old, word in zip(image_words(baked), image_words(current)) if old != word]
            await link.run(eie_load(changed))
        golden = Golden(current)
        for k, x in enumerate(inputs):
            expected = golden.run(np.asarray(x, dtype=np.int64)).output
            leds.levels = {port: set() for port in leds.levels}
            outputs, counters = await link.run(eie_job(current, x))
            assert_words_equal(expected, outputs, what=f"{name} image, input {k}: output words")
            if not 0 < counters["compute_cycles"] <= counters["cycles"]:
                raise Mismatch(f"{name} image, input {k}: counters {counters} (expected 0 < compute <= cycles)")
            if "busy_cycles" in counters and any(
                    busy + starve != counters["compute_cycles"] or busy > counters["compute_cycles"]
                    for busy, starve in zip(counters["busy_cycles"], counters["starve_cycles"])):
                raise Mismatch(f"{name} image, input {k}: per-PE counters {counters} (expected busy + starve == "
                               f"compute for every PE)")
            if 1 not in leds.levels["busy"] or (bench.get("busy"), bench.get("done")) != (0, 1):
                raise Mismatch(f"{name} image, input {k}: busy LED took {leds.levels['busy']} during the run; after "
                               f"it busy {bench.get('busy')}, done {bench.get('done')} (expected 0, 1)")
            results.append({"image": name, **counters, "outputs": outputs.tolist()})
    return results

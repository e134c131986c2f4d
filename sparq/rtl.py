"""Testbench bodies that ``sparq simulate --backend rtl`` runs under Verilator: the bodies of :mod:`sparq.sim.tb.eie` and
:mod:`sparq.sim.tb.systolic`, one image or one device call at a time, with the number done written to ``progress_file``
after each so that the command's progress bar (in the parent process) can follow the simulation.

Every output is checked against the golden model inside those bodies (a mismatch names the first differing word).
"""

from pathlib import Path

__all__ = ["eie_images", "systolic_calls"]


def _report(progress_file, done):
    if progress_file:
        Path(progress_file).write_text(str(done))


async def eie_images(bench, *, image_dir, inputs, seed=0, progress_file=None):
    """Load the EIE image once, then run each Q8.8 input vector (:func:`sparq.sim.tb.eie.run_network`, one job per input;
    the memories keep the image across the reset each job starts with). Returns the output and counters per input."""
    from sparq.sim.tb.eie import run_network
    outputs, counters = [], []
    for number, x in enumerate(inputs):
        [result] = await run_network(bench, jobs=[{"image_dir": image_dir, "inputs": [x]}], seed=seed + number,
                                     load_image=number == 0)
        outputs += result["outputs"]
        counters += result["counters"]
        _report(progress_file, number + 1)
    return {"outputs": outputs, "counters": counters}


async def systolic_calls(bench, *, runs, progress_file=None):
    """Run each saved program on its saved input words (:func:`sparq.sim.tb.systolic.run_program_file`, every output
    byte checked against the golden model); return the counters of each call."""
    from sparq.sim.tb.systolic import run_program_file
    results = []
    for number, run in enumerate(runs):
        results.append(await run_program_file(bench, **run))
        _report(progress_file, number + 1)
    return results

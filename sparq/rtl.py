"""Testbench bodies that ``sparq simulate --backend rtl`` runs under Verilator: the bodies of :mod:`sparq.sim.tb.eie` and
:mod:`sparq.sim.tb.systolic`, one image or one device call at a time, with the number done written to ``progress_file``
after each so that the command's progress bar (in the parent process) can follow the simulation.

Each body has a native twin (its ``native`` attribute, what :func:`sparq.sim.native.run_native` runs for it): the
same jobs, arguments and result on the native runner (:class:`sparq.sim.native.eie.Eie`,
:class:`sparq.sim.native.systolic.Accelerator`), one driver call per image or device call, in one process. The same
seed gives the same valid gaps and back-pressure on both, so both give the same outputs and counters.

Every output is checked against the golden model inside those bodies (a mismatch names the first differing word).
"""

from pathlib import Path

__all__ = ["eie_images", "systolic_calls"]


def _report(progress_file, done):
    if progress_file:
        Path(progress_file).write_text(str(done))


def _eie_job(image_dir, number, x, seed):
    """The :func:`sparq.sim.tb.eie.run_network` arguments for input ``number``, ``x``: a job of its own, with its own
    seed; the first loads the image, the others find it in the memories (the job's reset keeps them)."""
    return dict(jobs=[{"image_dir": image_dir, "inputs": [x]}], seed=seed + number, load_image=number == 0)


def _eie_result(results):
    """The outputs and counters, per input, of the per-input jobs' ``results``."""
    return {"outputs": [o for r in results for o in r["outputs"]],
            "counters": [c for r in results for c in r["counters"]]}


async def eie_images(bench, *, image_dir, inputs, seed=0, progress_file=None):
    """Load the EIE image once, then run each Q8.8 input vector (:func:`sparq.sim.tb.eie.run_network`, one job per input;
    the memories keep the image across the reset each job starts with). Returns the output and counters per input."""
    from sparq.sim.tb.eie import run_network
    results = []
    for number, x in enumerate(inputs):
        results += await run_network(bench, **_eie_job(image_dir, number, x, seed))
        _report(progress_file, number + 1)
    return _eie_result(results)


def _eie_images_native(component, *, image_dir, inputs, seed=0, progress_file=None, name=None, optimize=None):
    """:func:`eie_images` on the native runner."""
    from sparq.sim.native.eie import Eie
    results = []
    with Eie(component, name, optimize) as eie:
        for number, x in enumerate(inputs):
            results += eie.run_network(**_eie_job(image_dir, number, x, seed))
            _report(progress_file, number + 1)
    return _eie_result(results)


async def systolic_calls(bench, *, runs, progress_file=None):
    """Run each saved program on its saved input words (:func:`sparq.sim.tb.systolic.run_program_file`, every output
    byte checked against the golden model); return the counters of each call."""
    from sparq.sim.tb.systolic import run_program_file
    results = []
    for number, run in enumerate(runs):
        results.append(await run_program_file(bench, **run))
        _report(progress_file, number + 1)
    return results


def _systolic_calls_native(component, *, runs, progress_file=None, name=None, optimize=None):
    """:func:`systolic_calls` on the native runner."""
    from sparq.sim.native.systolic import Accelerator
    results = []
    with Accelerator(component, name, optimize) as accelerator:
        for number, run in enumerate(runs):
            results.append(accelerator.run_program_file(**run))
            _report(progress_file, number + 1)
    return results


eie_images.native = _eie_images_native
systolic_calls.native = _systolic_calls_native

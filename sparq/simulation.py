"""``sparq simulate``'s step: run inputs on a lowered model, on the golden model or on the RTL under Verilator, and
write what was measured (:class:`sparq.results.SimulationResult`) to ``simulation-<backend>.json`` in the lowered
directory, in one atomic write that adds it to the directory's record (:mod:`sparq.workspace`): accuracy, cycles,
counters, what the design did (:mod:`sparq.activity`) and its energy (:mod:`sparq.energy`).

Which inputs (the test split of ``data``, by default the data the model was lowered with, or float inputs ``x``
given directly) and how the RTL is run (``runner``) are parameters of :func:`simulate`; the target
(:class:`sparq.targets.Target`) does the rest.
"""

import json
import time

import numpy as np

from .builds import build
from .data import load
from .errors import InputError
from .results import BACKENDS, SimulationResult
from .targets import RunOptions, get
from .workspace import json_text, simulation_path, writing

__all__ = ["BACKENDS", "simulate", "simulation_inputs", "read_result"]


def simulation_inputs(lowered, *, images=20, data=None, x=None, labels=None):
    """``(x, y, data line, inputs noun)``: the inputs a simulation of ``lowered`` runs. ``x`` (float, of the
    model's input shape or reshaped to it where that is unambiguous) with optional ``labels``; else the first
    ``images`` test inputs of ``data`` (an :class:`sparq.data.Origin`; None: the data ``lowered`` was lowered with)."""
    from sparq.compiler.data import check_labels, fit_inputs
    from sparq.compiler.errors import DataError, ShapeError
    model = lowered.model
    if x is not None:
        try:
            x, _ = fit_inputs(x, model.input_shape)
            y = None if labels is None else check_labels(labels, len(x), int(np.prod(model.output_shape)), "labels",
                                                         "the labels given")
        except (DataError, ShapeError, ValueError) as error:
            raise InputError(f"the inputs given: {error}", "give x as an array of shape (n, "
                             f"{', '.join(map(str, model.input_shape))}) and one label per row") from None
        if len(x) == 0:
            raise InputError("no inputs given (x has no rows)", "give at least one input")
        return x, y, f"{len(x):,} inputs given in memory", "inputs given"
    used = load(data, model, lowered.meta["model"]) if data is not None else lowered.target.data_of(lowered)
    x, y = used.test(images)
    return x, y, used.description, used.test_noun


def simulate(lowered, backend, *, images=20, data=None, x=None, labels=None, seed=0, console=None, optimize=None,
             prebuilt=False, runner=None):
    """Run inputs (:func:`simulation_inputs`: the first ``images`` test inputs of ``data``, default the lowering's own
    data, or the float inputs ``x`` with optional ``labels``) on ``lowered``, on the golden model
    (``backend="golden"``: the bit-exact model, cycles from the cycle model) or on the RTL (``"rtl"``: every output
    checked against the golden model, cycles and counters from the RTL). Writes and returns the
    :class:`sparq.results.SimulationResult`.

    ``optimize`` builds the Verilator model at ``-O2`` (True) or ``-O0`` (False) instead of the target's default
    (:attr:`sparq.targets.Target.rtl_optimize`); ``prebuilt`` says :func:`sparq.builds.build_rtl` has built it
    already (the run then skips the separate build step and its status line). ``runner`` runs the design
    (:class:`sparq.targets.RunOptions`; default :func:`sparq.sim.harness.run_verilator`, cocotb under Verilator).
    """
    from sparq.compiler.ir import forward
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}", "choose golden or rtl")
    x, y, description, noun = simulation_inputs(lowered, images=images, data=data, x=x, labels=labels)
    target = lowered.target
    started = time.perf_counter()
    if optimize is None:
        optimize = target.rtl_optimize
    build_seconds = 0.0
    if backend == "rtl":
        if runner is None:
            from sparq.sim.harness import run_verilator as runner
        if not prebuilt:
            build_seconds = build(target, lowered.config, console, optimize)
    measured = target.simulate(lowered, x, RunOptions(backend, seed=seed, optimize=optimize, console=console,
                                                      runner=runner))
    predictions = np.array(measured.predictions)
    float_predictions = forward(lowered.model, x).argmax(1)
    result = SimulationResult.of(
        measured, target=target, backend=backend, model=lowered.meta["model"],
        config=json.loads(json.dumps(lowered.meta["config"])), data=description, inputs=noun, images=len(x),
        labels=None if y is None else y.tolist(),
        accuracy=None if y is None else float(np.mean(predictions == y)),
        float_accuracy=None if y is None else float(np.mean(float_predictions == y)),
        float_agreement=float(np.mean(predictions == float_predictions)), seconds=time.perf_counter() - started,
        build_seconds=build_seconds)
    with writing(lowered.directory, "lowered", keep=True, expect=lowered.record) as transaction:
        transaction.write_text(simulation_path(lowered.directory, backend).name, json_text(result.to_json()))
    lowered.record = transaction.record
    return result


def read_result(path, record):
    """The :class:`sparq.results.SimulationResult` that :func:`simulate` wrote to ``path``, in the lowered directory
    of ``record`` (a verified :class:`sparq.workspace.Record`): it must describe that lowering."""
    try:
        data = json.loads(path.read_text())
        result = SimulationResult.from_json(data, get(data["target"]))
    except (ValueError, KeyError, TypeError, InputError) as error:
        raise InputError(f"{path}: unreadable simulation result ({error})", "run `sparq simulate` on its lowered "
                         "directory again") from None
    meta = record.meta
    if (result.target.name, result.model, result.config) != (meta.get("target"), meta.get("model"),
                                                            meta.get("config")):
        raise InputError(f"{path}: a simulation of {result.target.name} {result.config} from {result.model}, not of "
                         f"the lowering in {record.directory}", "run `sparq simulate` on the directory again")
    return result

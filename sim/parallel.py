"""K accelerator instances running one network split by :mod:`sparq.compiler.parallel`: golden and cycle models for any
K, the systolic RTL for small K, scaling efficiency, and a design-space sweep on a Dask cluster.

Time follows :mod:`sparq.compiler.parallel`'s communication model: every instance has a clock; a call on instance ``i``
advances it by ``link(bytes in) + compute + link(bytes out)``; a model-parallel round ends with a barrier (every
clock moves to the latest), data-parallel calls do not wait for each other. ``T(K)`` is the latest clock at the end.
Compute cycles come from the cycle models: :func:`sparq.sim.systolic.cycles.predict` (exact against the RTL) and
:mod:`sparq.sim.eie.cycle` (the EIE RTL's compute cycles within 2 % of it here); the outputs come from the bit-exact golden models.

Sweep (:func:`sweep`): each point of a grid (accelerator, model, mode, K, link) is one Dask task; the shared inputs
(the networks and the test images) are scattered to the workers once. ``sweep(points, payload)`` starts a
``LocalCluster`` of two single-threaded worker processes; pass ``address=`` to run the same sweep on any Dask
scheduler, on one machine or many.
"""

from dataclasses import dataclass, field

import numpy as np

from sparq.compiler.eie import lower, lower_compressed
from sparq.compiler.parallel import (
    Link,
    SystolicDataParallel,
    SystolicModelParallel,
    batch_shares,
    eie_image_bytes,
    gather_rows,
    split_eie_rows,
)
from sparq.formats.eie import ACT_BITS, ACT_FRAC, to_fixed

from .eie.cycle import layer_costs, simulate
from .eie.golden import Golden
from .systolic.cycles import predict
from .systolic.golden import run_program

__all__ = ["ParallelRun", "EieCall", "run_systolic", "replay_on_rtl", "replay_eie_on_rtl", "run_eie", "scaling",
           "ACCELERATORS", "sweep_point", "sweep", "MODES"]

DEFAULT_LINK = Link()
"""The link of :func:`run_systolic` and :func:`run_eie` when none is given."""

MODES = ("model", "data")
"""Model parallel (rows split, a barrier per layer) and data parallel (batch split)."""

_ACT_BYTES = ACT_BITS // 8


@dataclass
class ParallelRun:
    """A run on ``k`` instances: the ``output``, ``cycles`` (``T(K)``), and on the instance that finished last the
    cycles it spent computing and on its link; ``bytes_moved`` over all links; ``setup_bytes`` loaded before the
    run (resident EIE images); ``calls`` the calls made: ``(sparq.compiler.parallel.Call, output words, predicted
    cycles)`` for the systolic array, :class:`EieCall` for EIE."""

    k: int
    mode: str
    output: np.ndarray
    cycles: int
    compute_cycles: int
    link_cycles: int
    bytes_moved: int
    setup_bytes: int = 0
    calls: list = field(default_factory=list, repr=False)

    def summary(self):
        """The numbers as a JSON-ready dict."""
        return {"k": self.k, "mode": self.mode, "cycles": self.cycles, "compute_cycles": self.compute_cycles,
                "link_cycles": self.link_cycles, "bytes_moved": self.bytes_moved, "setup_bytes": self.setup_bytes}


@dataclass
class EieCall:
    """One EIE call: ``image`` run on the Q8.8 ``input`` by ``instance``, ``model_cycles`` by the cycle model."""

    instance: int
    image: object
    input: np.ndarray
    model_cycles: int


class _Clocks:
    """Per-instance clocks with their compute and link shares."""

    def __init__(self, k):
        self.time = np.zeros(k, dtype=np.int64)
        self.compute = np.zeros(k, dtype=np.int64)
        self.link = np.zeros(k, dtype=np.int64)
        self.bytes = 0

    def call(self, i, compute, link_cycles, nbytes):
        self.time[i] += compute + link_cycles
        self.compute[i] += compute
        self.link[i] += link_cycles
        self.bytes += nbytes

    def barrier(self):
        last = int(np.argmax(self.time))
        self.time[:] = self.time[last]
        self.compute[:] = self.compute[last]
        self.link[:] = self.link[last]

    def run(self, k, mode, output, **extra):
        last = int(np.argmax(self.time))
        return ParallelRun(k, mode, output, int(self.time[last]), int(self.compute[last]), int(self.link[last]),
                           int(self.bytes), **extra)


def _mode(mode):
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return mode


def run_systolic(network, images, k, mode, link=DEFAULT_LINK):
    """Run the :class:`sparq.compiler.systolic.SystolicNetwork` ``network`` on float ``images`` split over ``k``
    instances (``mode`` "model" or "data"), every call on the golden model and timed by the cycle model; return a
    :class:`ParallelRun` whose ``output`` is the int8 logits. ``k = 1`` in data mode is the unsplit baseline."""
    split = (SystolicModelParallel if _mode(mode) == "model" else SystolicDataParallel)(network, k)
    clocks, calls, cycles = _Clocks(k), [], {}
    rounds = split.execute(images)
    try:
        request = next(rounds)
        while True:
            outputs = []
            for call in request:
                program = call.program
                out = run_program(program.config, program.instructions, program.stream(call.input_words))
                if id(program) not in cycles:
                    cycles[id(program)] = predict(program.config, program.instructions).cycles
                compute = cycles[id(program)]
                clocks.call(call.instance, compute, link.cycles(call.bytes_in) + link.cycles(call.bytes_out),
                            call.bytes_in + call.bytes_out)
                calls.append((call, out, compute))
                outputs.append(out)
            if split.barrier:
                clocks.barrier()
            request = rounds.send(outputs)
    except StopIteration as done:
        return clocks.run(k, mode, done.value, calls=calls)


def replay_eie_on_rtl(run, directory, *, seed=0, gap_probability=0.0, stall_probability=0.0):
    """Run every call of the EIE ``run`` (from :func:`run_eie`) on the EIE RTL, in one Verilator simulation: each
    distinct image is loaded once, then its calls' inputs run one after another, every output checked against the
    golden model. All images must share one :class:`sparq.formats.eie.EieConfig` (they do within a run). Returns per call
    ``{"instance", "rtl_cycles", "model_cycles"}``, ``rtl_cycles`` being the RTL's ``compute_cycles``.
    """
    from pathlib import Path

    from sparq.hw.eie import EIE

    from .harness import run_verilator

    calls = [c for c in run.calls if isinstance(c, EieCall)]
    if not calls:
        raise ValueError("replay_eie_on_rtl needs an EIE run (sparq.sim.parallel.run_eie); this one has no EIE calls")
    directory = Path(directory)
    jobs, order = {}, []
    for call in calls:
        if id(call.image) not in jobs:
            path = call.image.save(directory / f"image{len(jobs)}")
            jobs[id(call.image)] = {"image_dir": str(path), "inputs": []}
        order.append((id(call.image), len(jobs[id(call.image)]["inputs"])))
        jobs[id(call.image)]["inputs"].append([int(v) for v in call.input])
    keys = list(jobs)
    results = run_verilator(EIE(calls[0].image.config), "sparq.sim.tb.eie:run_network", jobs=[jobs[k] for k in keys],
                            seed=seed, gap_probability=gap_probability, stall_probability=stall_probability)
    by_image = dict(zip(keys, results))
    return [{"instance": call.instance, "rtl_cycles": by_image[key]["counters"][n]["compute"],
             "model_cycles": call.model_cycles} for call, (key, n) in zip(calls, order)]


def replay_on_rtl(run, directory, *, seed=0, gap_probability=0.0, stall_probability=0.0):
    """Run every call of the systolic ``run`` (a :class:`ParallelRun`) on the RTL of its configuration, in one
    Verilator simulation (each call starts with a reset, as a separate instance would), checking every output
    byte against the golden model. ``directory`` receives the programs and inputs. Returns per call
    ``{"instance", "rtl_cycles", "model_cycles"}`` where ``rtl_cycles`` is the RTL's ``cycles - stall_cycles``.

    The instances do not interact within a call, so K instances run one after another on one simulated
    accelerator are K instances; the golden run supplies each call's input, which the RTL output must match.
    """
    from pathlib import Path

    from sparq.formats.systolic import save_program
    from sparq.hw.systolic.accelerator import SystolicAccelerator

    from .harness import run_verilator

    if not run.calls:
        raise ValueError("replay_on_rtl needs a systolic run (sparq.sim.parallel.run_systolic); this one has no calls")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    runs, saved = [], {}
    for n, (call, _, _) in enumerate(run.calls):
        if id(call.program) not in saved:
            saved[id(call.program)] = directory / f"program{len(saved)}.npz"
            save_program(call.program, saved[id(call.program)])
        np.save(directory / f"input{n}.npy", call.input_words)
        runs.append({"name": f"call {n} on instance {call.instance}", "program": str(saved[id(call.program)]),
                     "inputs": str(directory / f"input{n}.npy"), "seed": seed + n,
                     "gap_probability": gap_probability, "stall_probability": stall_probability})
    config = run.calls[0][0].program.config
    results = run_verilator(SystolicAccelerator(config), "sparq.sim.tb.systolic:run_program_files", optimize=False,
                            runs=runs)
    return [{"instance": call.instance, "rtl_cycles": result["cycles"] - result["stall_cycles"],
             "model_cycles": model_cycles} for (call, _, model_cycles), result in zip(run.calls, results)]


def _eie_layer(golden, image, a, depth):
    """Output and compute cycles of a single-layer image on integer input ``a``."""
    trace = golden.run(a)
    return trace.output, simulate(layer_costs(image, 0, a), depth).total


def _lower_eie(network, config):
    """Lower ``network``, a :class:`sparq.compiler.eie.LayerSpec` list or a :class:`sparq.compiler.pipeline.CompressedModel`."""
    return lower_compressed(network, config) if hasattr(network, "shared") else lower(network, config)


def run_eie(network, config, inputs, k, mode, link=DEFAULT_LINK):
    """Run the EIE ``network`` (a :class:`sparq.compiler.eie.LayerSpec` list or a
    :class:`sparq.compiler.pipeline.CompressedModel`) on float ``inputs`` (one vector a row)
    over ``k`` instances of ``config`` (``config.n_pe`` PEs each), one input after another; return a
    :class:`ParallelRun` whose ``output`` is the Q8.8 outputs, one row per input.

    Model mode lowers for ``k * n_pe`` PEs and deals the PEs out (:func:`sparq.compiler.parallel.split_eie_rows`): per
    layer, every instance takes the full input vector and returns its rows. Data mode gives every instance the
    whole ``n_pe`` image and a share of the inputs.
    """
    from dataclasses import replace
    clocks, outputs, calls = _Clocks(k), [], []
    depth = config.fifo_depth
    vectors = [to_fixed(x, ACT_FRAC) for x in np.asarray(inputs, dtype=np.float64)]
    if _mode(mode) == "model":
        wide = _lower_eie(network, replace(config, n_pe=k * config.n_pe))
        shards = split_eie_rows(wide, k)
        goldens = [[Golden(image) if image else None for image in layer] for layer in shards]
        setup = sum(eie_image_bytes(image) for layer in shards for image in layer if image)
        for a in vectors:
            for layer, layer_goldens in zip(shards, goldens):
                parts = []
                for i, (image, golden) in enumerate(zip(layer, layer_goldens)):
                    if image is None:
                        continue
                    y, compute = _eie_layer(golden, image, a, depth)
                    calls.append(EieCall(i, image, a, compute))
                    nbytes = (len(a) + len(y)) * _ACT_BYTES
                    clocks.call(i, compute, link.cycles(len(a) * _ACT_BYTES) + link.cycles(len(y) * _ACT_BYTES),
                                nbytes)
                    parts.append(y)
                clocks.barrier()
                a = gather_rows(parts)
            outputs.append(a)
    else:
        image = _lower_eie(network, config)
        golden = Golden(image)
        setup = k * eie_image_bytes(image)
        for i, share in enumerate(batch_shares(len(vectors), k)):
            for a in vectors[share]:
                trace = golden.run(a)
                compute = sum(simulate(layer_costs(image, l, trace.acts[l]), depth).total
                              for l in range(len(image.layers)))
                calls.append(EieCall(i, image, a, compute))
                bytes_in, bytes_out = len(a) * _ACT_BYTES, len(trace.output) * _ACT_BYTES
                clocks.call(i, compute, link.cycles(bytes_in) + link.cycles(bytes_out), bytes_in + bytes_out)
                outputs.append(trace.output)
    return clocks.run(k, mode, np.array(outputs), setup_bytes=setup, calls=calls)


def scaling(runs):
    """Speed-up ``T(1) / T(K)`` and efficiency ``T(1) / (K T(K))`` of ``runs`` (ParallelRun list) against the
    unsplit baseline, which must be among them (``k == 1``, data mode)."""
    base = [r for r in runs if r.k == 1 and r.mode == "data"]
    if not base:
        raise ValueError("scaling needs the unsplit baseline: a run with k=1 in data mode")
    t1 = base[0].cycles
    return [{**r.summary(), "speedup": t1 / r.cycles, "efficiency": t1 / (r.k * r.cycles),
             "link_share": r.link_cycles / r.cycles if r.cycles else 0.0} for r in runs]


# --- design-space sweep on Dask ---------------------------------------------------------------------------------------

def _run_eie_entry(entry, images, k, mode, link):
    network, config = entry
    return run_eie(network, config, images, k, mode, link)


ACCELERATORS = {"eie": _run_eie_entry, "systolic": run_systolic}
"""How a sweep runs each accelerator: ``accelerator name -> run(payload entry, images, k, mode, link)``, the entry
being what the payload holds for one model (EIE: ``(network, EieConfig)``; systolic: a ``SystolicNetwork``)."""


def sweep_point(point, payload):
    """Evaluate one sweep point (a dict: ``accelerator``, a key of :data:`ACCELERATORS`, ``model``, ``mode``,
    ``k``, ``bytes_per_cycle``, ``latency``) with the shared ``payload``: ``{"images": float test images,
    accelerator: {model: entry}}``, e.g. ``{"eie": {model: (network, EieConfig)}, "systolic": {model:
    SystolicNetwork}}``. Returns the point with its run's numbers."""
    run = ACCELERATORS.get(point["accelerator"])
    if run is None:
        raise ValueError(f"accelerator must be one of {', '.join(map(repr, ACCELERATORS))}, got "
                         f"{point['accelerator']!r}")
    link = Link(point["bytes_per_cycle"], point["latency"])
    entry = payload[point["accelerator"]][point["model"]]
    return {**point, **run(entry, payload["images"], point["k"], point["mode"], link).summary()}


def sweep(points, payload, *, address=None, n_workers=2):
    """Evaluate every point with :func:`sweep_point` as Dask tasks; return the results in the order of ``points``,
    each with ``speedup`` and ``efficiency`` against the matching unsplit point (k 1, data mode, same
    accelerator, model and link), when the grid has it.

    Runs on the Dask scheduler at ``address`` if given, else on a ``LocalCluster`` of ``n_workers`` single-threaded
    processes started and closed here.
    """
    from .cluster import dask_client

    with dask_client(address, n_workers=n_workers) as client:
        shared = client.scatter(payload, broadcast=True)
        futures = [client.submit(sweep_point, point, shared, pure=False) for point in points]
        results = client.gather(futures)
    key = lambda r: (r["accelerator"], r["model"], r["bytes_per_cycle"], r["latency"])  # noqa: E731
    base = {key(r): r["cycles"] for r in results if r["k"] == 1 and r["mode"] == "data"}
    for r in results:
        if key(r) in base:
            r["speedup"] = base[key(r)] / r["cycles"]
            r["efficiency"] = r["speedup"] / r["k"]
    return results

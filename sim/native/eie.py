"""The EIE accelerator on the native runner: :func:`sparq.sim.tb.eie.run_network`'s jobs, one driver call each.

:func:`run_network` takes the component and then exactly the keyword arguments of the cocotb body, and returns the
same result structure, so ``run_verilator(EIE(config), "sparq.sim.tb.eie:run_network", **params)`` and
``run_network(EIE(config), **params)`` are interchangeable (:func:`sparq.sim.native.run_native` takes the body's
name); :class:`Eie` keeps one simulation, and the memories' contents, across several calls. Each job (load the
image, then per input: load it, start, wait for ``done``, read the output back, read the counters) is one script:
the load words, the read requests, the valid gaps and the back-pressure all come from the driver, and the same seed
gives the same gaps and stalls as the cocotb body, cycle for cycle. Every output word is compared with the golden
model here, after the job; the stream rules are checked by the driver on every cycle.
"""

import time

import numpy as np

from sparq.formats.eie import EieImage, image_words, input_words, read_requests

from ..eie.golden import Golden
from ..harness import waves_requested
from ..scoreboard import Mismatch, assert_words_equal
from ..tb.eie import counters
from .build import build_native
from .script import Job, NativeProcess, Sink, Source, waveform_path

__all__ = ["Eie", "run_network", "MAX_RUN_CYCLES"]

MAX_RUN_CYCLES = 10_000_000
"""As the cocotb body: a run that has not raised ``done`` after this many cycles fails."""


def _stream_budget(count: int) -> int:
    """The cocotb body's cycle budget for a host stream of ``count`` words."""
    return 20 * count + 100


class Eie:
    """An ``EIE`` ``component`` on the native runner (built or found in the cache) in one process, whose memories
    keep their contents from one :meth:`run_network` call to the next, as in one cocotb simulation (so an image
    loaded by one call serves the calls after it with ``load_image=False``); a context manager."""

    def __init__(self, component, name=None, optimize=None, coverage=None):
        self.config = component.config
        self.build = build_native(component, name=name, waves=waves_requested(), optimize=optimize,
                                  coverage=coverage is not None)
        self.process = NativeProcess(self.build, fst=waveform_path(self.build) if self.build.waves else None,
                                     coverage=coverage)
        # Every output that is not part of a stream: the counters (whatever their names), running and done.
        streamed = {i for s in self.build.streams for i in (s.valid, s.ready, s.payload)}
        self._counters = [p.name for i, p in enumerate(self.build.ports) if not p.input and i not in streamed]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.close()

    def run_network(self, *, jobs, seed=0, gap_probability=0.0, stall_probability=0.0, load_image=True,
                    reset_at=None, poll=16):
        """:func:`sparq.sim.tb.eie.run_network` (same arguments, same result; see :func:`run_network`)."""
        config = self.config
        results = []
        for job_number, spec in enumerate(jobs):
            started = time.perf_counter()
            image = EieImage.load(spec["image_dir"])
            golden = Golden(image)
            job = Job(self.build)
            if job_number == 0:
                job.seed(seed)
                job.reset()
            job.set("n_layers", len(image.layers))
            if load_image:
                words = image_words(image)
                job.run([Source("load", words, gap_probability)], max_cycles=_stream_budget(len(words)),
                        label="image load")
            reset_check = None
            if reset_at is not None and job_number == 0:
                words = input_words(config.n_pe, spec["inputs"][0])
                job.run([Source("load", words, gap_probability)], max_cycles=_stream_budget(len(words)),
                        label="reset test: input load")
                _start(job, "reset test: run")
                job.tick(reset_at, label="reset test: run")
                reset_check = job.snapshot(["done"], label="reset test: run")
                job.reset(label="reset test: reset")
            reads = []
            for number, x in enumerate(spec["inputs"]):
                where = f"job {job_number}, input {number}"
                words = input_words(config.n_pe, x)
                job.run([Source("load", words, gap_probability)], max_cycles=_stream_budget(len(words)),
                        label=f"input load: {where}")
                _start(job, f"run: {where}")
                job.wait("done", poll=poll, max_cycles=MAX_RUN_CYCLES, label=f"run: {where}")
                requests = read_requests(config.n_pe, config.act_depth, image.output_len)
                out, _ = job.run([Source("read", requests, gap_probability),
                                  Sink("out", image.output_len, stall_probability)],
                                 max_cycles=_stream_budget(len(requests)), label=f"read-out: {where}")
                reads.append((out, job.snapshot(self._counters, label=f"counters: {where}")))
            reply = self.process.run(job)
            if reset_check is not None and reply.data[reset_check].get("done"):
                raise Mismatch(f"the run ended before the reset at cycle {reset_at}; pick an earlier one")
            outputs, stats = [], []
            for number, ((out, snapshot), x) in enumerate(zip(reads, spec["inputs"])):
                got = [int(v) for v in reply.data[out].values()]
                expected = golden.run(np.asarray(x, dtype=np.int64)).output
                assert_words_equal(expected, got, what=f"job {job_number}, input {number}: network output")
                outputs.append(got)
                stats.append(counters(reply.data[snapshot], config.n_pe))
            phases = {phase: {"cycles": reply.cycles(phase), "seconds": reply.seconds(phase)}
                      for phase in ("image load", "input load", "run", "read-out")}
            results.append({"outputs": outputs, "counters": stats, "run_seconds": phases["run"]["seconds"],
                            "seconds": time.perf_counter() - started - phases["image load"]["seconds"],
                            "streams": reply.streams, "phases": phases})
        return results


def run_network(component, *, jobs, seed=0, gap_probability=0.0, stall_probability=0.0, load_image=True,
                reset_at=None, poll=16, name=None, optimize=None):
    """:func:`sparq.sim.tb.eie.run_network` on the native runner, for the ``EIE`` ``component`` (``name`` and
    ``optimize`` as for :func:`sparq.sim.native.build.build_native`).

    Returns one ``{"outputs", "counters", "run_seconds", "seconds", "streams", "phases"}`` per job: the cocotb
    body's keys, plus the transfers, stalled and starved cycles of each stream port during the job (``streams``, the
    evidence that the pressure asked for happened) and the cycles and wall seconds of the image load, the input
    loads, the runs and the read-outs (``phases``).
    """
    with Eie(component, name, optimize) as eie:
        return eie.run_network(jobs=jobs, seed=seed, gap_probability=gap_probability,
                               stall_probability=stall_probability, load_image=load_image, reset_at=reset_at,
                               poll=poll)


def _start(job: Job, label: str):
    """A cycle with ``start`` high (the cocotb body's ``_start``)."""
    job.set("start", 1, label=label)
    job.tick(1, label=label)
    job.set("start", 0, label=label)

"""The systolic accelerator on the native runner: the accelerator bodies of :mod:`sparq.sim.tb.systolic`.

:func:`run_program_file`, :func:`run_program_files` and :func:`run_networks` take the component and then exactly the
keyword arguments of the cocotb bodies of the same names, and return the same results. Each program run (reset,
then the instruction stream, ``host_in`` and ``host_out`` at once until the output is complete and the accelerator
has halted, then the counters) is one driver call, with the cocotb bodies' valid gaps and back-pressure (same seed,
same cycles); every output byte is compared with the golden model after the call.
"""

import numpy as np

from sparq.formats.systolic import COUNTERS, load_program

from ..harness import waves_requested
from ..scoreboard import Mismatch, assert_words_equal
from ..systolic.golden import run_program
from .build import build_native
from .script import Job, NativeProcess, Sink, Source, waveform_path

__all__ = ["Accelerator", "run_program_file", "run_program_files", "run_networks"]


class Accelerator:
    """A systolic accelerator ``component`` on the native runner (built or found in the cache; ``name`` and
    ``optimize`` as for :func:`sparq.sim.native.build.build_native`), in one process that runs programs one after
    the other (:meth:`program`); a context manager."""

    def __init__(self, component, name=None, optimize=None, coverage=None):
        self.build = build_native(component, name=name, waves=waves_requested(), optimize=optimize,
                                  coverage=coverage is not None)
        self.process = NativeProcess(self.build, fst=waveform_path(self.build) if self.build.waves else None,
                                     coverage=coverage)
        self.lanes = self.build.ports[self.build.streams[self.build.stream("host_in")].payload].width // 8
        # A build with an error output stops there, as the cocotb body does.
        self._error = "error" if any(p.name == "error" for p in self.build.ports) else None
        self._seeded = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.close()

    def _words(self, words) -> np.ndarray:
        """int8 host words (n, lanes) as port words (n, 32-bit words)."""
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.lanes)
        per_item = -(-self.lanes // 4)
        raw = np.zeros((len(words), 4 * per_item), dtype=np.uint8)
        raw[:, :self.lanes] = words.view(np.uint8)
        return raw.view("<u4").reshape(len(words), per_item)

    def program(self, program, input_words, *, seed=None, gap_probability=0.0, stall_probability=0.0,
                instr_gap_probability=0.0, label="program"):
        """Reset and stream ``program`` with ``input_words`` until it halts (the cocotb ``_stream_program``);
        ``seed`` starts a new random sequence (else it continues). Returns the output words (int8, (n, lanes)),
        the counters and the driver's :class:`~sparq.sim.native.script.Reply` (timings, stream counts)."""
        stream = program.stream(input_words)
        job = Job(self.build)
        if seed is not None or not self._seeded:
            job.seed(seed or 0)
            self._seeded = True
        job.reset(label=f"{label}: reset")
        budget = (50 * (len(stream) + program.output_words + len(program.instructions)) + 200_000
                  + 4 * sum(ins.count for ins in program.instructions))
        out, sent = job.run([Source("instr", program.encoded(), instr_gap_probability, waited_for=False),
                             Source("host_in", self._words(stream), gap_probability, waited_for=False),
                             Sink("host_out", program.output_words, stall_probability)],
                            until="halted", stop=self._error, max_cycles=budget, label=f"{label}: run")
        counters = job.snapshot([*COUNTERS, *([self._error] if self._error else [])], label=f"{label}: counters")
        reply = self.process.run(job)
        if self._error and reply.data[counters].get(self._error):
            raise Mismatch(f"the accelerator stopped on an error (an instruction it does not execute) with "
                           f"{reply.data[sent][0]} of {len(program.instructions)} instructions sent")
        raw = reply.data[out].raw.view(np.uint8).reshape(len(reply.data[out]), -1)[:, :self.lanes]
        snapshot = reply.data[counters]
        return raw.view(np.int8), {name: snapshot.get(name) for name in COUNTERS}, reply

    def run_program_file(self, *, program: str, inputs: str, seed: int = 0, gap_probability: float = 0.0,
                         stall_probability: float = 0.0, instr_gap_probability: float = 0.0):
        """:func:`sparq.sim.tb.systolic.run_program_file` (same arguments, same result) in this simulation."""
        prog, input_words = load_program(program), np.load(inputs)
        expected = run_program(prog.config, prog.instructions, prog.stream(input_words))
        got, counters, _ = self.program(prog, input_words, seed=seed, gap_probability=gap_probability,
                                        stall_probability=stall_probability,
                                        instr_gap_probability=instr_gap_probability)
        assert_words_equal(expected.view(np.uint8), got.view(np.uint8), what="host_out bytes")
        return {**counters, "output_words": len(got)}


def run_program_file(component, *, program: str, inputs: str, seed: int = 0, gap_probability: float = 0.0,
                     stall_probability: float = 0.0, instr_gap_probability: float = 0.0, name=None, optimize=None):
    """:func:`sparq.sim.tb.systolic.run_program_file` on the native runner: the counters and ``output_words``."""
    with Accelerator(component, name, optimize) as accelerator:
        return accelerator.run_program_file(program=program, inputs=inputs, seed=seed,
                                            gap_probability=gap_probability, stall_probability=stall_probability,
                                            instr_gap_probability=instr_gap_probability)


def run_program_files(component, *, runs: list, name=None, optimize=None):
    """:func:`sparq.sim.tb.systolic.run_program_files` on the native runner: one process, one call per run."""
    results = []
    with Accelerator(component, name, optimize) as accelerator:
        for i, run in enumerate(runs):
            run = dict(run)
            run_name = run.pop("name", f"run {i}")
            try:
                results.append({"name": run_name, **accelerator.run_program_file(**run)})
            except AssertionError as error:
                raise Mismatch(f"{run_name}: {error}") from None
    return results


def run_networks(component, *, models: list, images: int, size: int, seed: int = 0, gap_probability: float = 0.0,
                 stall_probability: float = 0.0, instr_gap_probability: float = 0.0, name=None, optimize=None):
    """:func:`sparq.sim.tb.systolic.run_networks` on the native runner: every device call is one driver call."""
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.ir import forward
    from sparq.compiler.models import load_shipped
    from sparq.compiler.systolic import compile_network

    from ..systolic.stimulus import config_for
    x_train, _, x_test, y_test = load_digits_split()
    x, y = x_test[:images], y_test[:images]
    results = {}
    with Accelerator(component, name, optimize) as accelerator:
        first = True  # the cocotb body seeds one random sequence, shared by every device call
        for model_name in models:
            model = load_shipped(model_name)
            network = compile_network(model, x_train, config_for(size), name=model_name)
            calls, totals, count = network.execute(x), dict.fromkeys(COUNTERS, 0), 0
            try:
                request = next(calls)
                while True:
                    program, words = request
                    expected = run_program(program.config, program.instructions, program.stream(words))
                    got, counters, _ = accelerator.program(
                        program, words, seed=seed if first else None, gap_probability=gap_probability,
                        stall_probability=stall_probability, instr_gap_probability=instr_gap_probability,
                        label=f"{model_name}, device call {count}")
                    first = False
                    assert_words_equal(expected.view(np.uint8), got.view(np.uint8),
                                       what=f"{model_name}, device call {count} "
                                            f"({program.meta['layers'][0]['name']}...), host_out bytes")
                    for key, value in counters.items():
                        totals[key] += value
                    count += 1
                    request = calls.send(got)
            except StopIteration as done:
                logits = done.value
            results[model_name] = {"int8_accuracy": float((logits.argmax(1) == y).mean()),
                                   "float_accuracy": float((forward(model, x).argmax(1) == y).mean()),
                                   "images": images, "device_calls": count, "batch": network.batch, **totals}
    return results

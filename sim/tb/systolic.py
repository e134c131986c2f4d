"""Testbench bodies for the systolic accelerator (``hw.systolic``) against ``sim.systolic.golden``.

Block-level bodies drive one block cycle by cycle against a small model; the accelerator bodies stream a whole
program through the instruction, ``host_in`` and ``host_out`` ports (with seeded random gaps and back-pressure)
and compare every output byte with the golden model at the end, keeping the Python per cycle to the stream agents.
"""

import random

import numpy as np

from formats.systolic import (PARAM_WORDS, FormatError, SystolicConfig, SystolicProgram, load_program, requantize,
                              words_to_ints)

from ..bench import Agent, StreamSink, StreamSource
from ..golden.mac import fit
from ..scoreboard import Mismatch, assert_words_equal
from ..systolic.golden import SystolicGolden, run_program

COUNTERS = ("cycles", "mac_busy", "stall_cycles", "active_cycles")


async def _stream_program(bench, program: SystolicProgram, input_words, *, rng, gap_probability=0.0,
                          stall_probability=0.0, instr_gap_probability=0.0, expect_halt=True):
    """Stream ``program`` with ``input_words`` through a running accelerator; return the output words (int8)."""
    stream = program.stream(input_words)
    instructions = StreamSource("instr", program.encoded(), rng=rng, gap_probability=instr_gap_probability)
    host_in = StreamSource("host_in", words_to_ints(stream), rng=rng, gap_probability=gap_probability)
    host_out = StreamSink("host_out", program.output_words, rng=rng, stall_probability=stall_probability)
    agents = [instructions, host_in, host_out]
    if expect_halt:
        until = lambda: host_out.done and bench.get("halted")  # noqa: E731
    else:
        until = lambda: host_out.done and instructions.done and host_in.done  # noqa: E731
    budget = 50 * (len(stream) + program.output_words + len(program.instructions)) + 200_000 + 4 * sum(
        ins.count for ins in program.instructions)
    await bench.run(agents, until=until, max_cycles=budget)
    lanes = program.config.lanes
    raw = b"".join(int(v).to_bytes(lanes, "little") for v in host_out.items)
    return np.frombuffer(raw, dtype=np.int8).reshape(-1, lanes)


def _counters(bench):
    return {name: bench.get(name) for name in COUNTERS}


async def run_program_file(bench, *, program: str, inputs: str, seed: int = 0, gap_probability: float = 0.0,
                           stall_probability: float = 0.0, instr_gap_probability: float = 0.0):
    """Run the saved program ``program`` (``formats.systolic.save_program``) on the input words saved with
    ``numpy.save`` at ``inputs``; check every output byte against the golden model; return the counters."""
    prog = load_program(program)
    input_words = np.load(inputs)
    expected = run_program(prog.config, prog.instructions, prog.stream(input_words))
    await bench.reset()
    got = await _stream_program(bench, prog, input_words, rng=random.Random(seed), gap_probability=gap_probability,
                                stall_probability=stall_probability, instr_gap_probability=instr_gap_probability)
    assert_words_equal(expected.view(np.uint8), got.view(np.uint8), what="host_out bytes")
    return {**_counters(bench), "output_words": len(got)}

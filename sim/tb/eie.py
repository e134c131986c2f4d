"""Testbench bodies for the EIE accelerator (:mod:`sparq.hw.eie`) against :mod:`sparq.sim.eie.golden`, and for its blocks.

Images travel as directories written by :meth:`sparq.formats.eie.EieImage.save`; inputs as lists of Q8.8 integers.
The load-port and read-port words come from :mod:`sparq.formats.eie` (:func:`~sparq.formats.eie.image_words` and
the other packers), the same description the hardware's layouts are built from, so this module needs neither
Amaranth nor the hardware.
"""

import random
import time

import numpy as np

from sparq.formats.eie import (
    ACT_BITS,
    COUNTER_BITS,
    COUNTERS,
    PE_COUNTERS,
    EieImage,
    image_words,
    input_words,
    read_requests,
)

from ..bench import Agent, StreamSink, StreamSource
from ..eie.golden import Golden
from ..scoreboard import Mismatch, assert_words_equal


def counters(bench, n_pe):
    """The performance counters of the last run (``sparq.formats.eie.COUNTERS``, then ``PE_COUNTERS`` if the design
    has its per-PE counters, ``EIE(pe_counters=True)``), keyed by their names without ``_cycles``: ``cycles``,
    ``compute``, then the per-PE lists ``busy``, ``starve``, ``stall``."""
    def split(port):
        word = bench.get(port)
        return [(word >> (COUNTER_BITS * k)) & ((1 << COUNTER_BITS) - 1) for k in range(n_pe)]
    result = {name.removesuffix("_cycles"): bench.get(name) for name in COUNTERS}
    if PE_COUNTERS[0] in bench.ports:
        result.update({name.removesuffix("_cycles"): split(name) for name in PE_COUNTERS})
    return result


def _tally(pressure, agents):
    """Add the pressure the ``agents`` saw (their gap, blocked and stall cycles) to ``pressure``, by port."""
    for agent in agents:
        port = pressure.setdefault(agent.port, {})
        for name in ("gap_cycles", "blocked_cycles", "stall_cycles"):
            if hasattr(agent, name):
                port[name] = port.get(name, 0) + getattr(agent, name)


async def _stream(bench, port, items, rng, gap, pressure):
    source = StreamSource(port, items, rng=rng, gap_probability=gap)
    await bench.run([source], max_cycles=20 * len(items) + 100)
    _tally(pressure, [source])


async def _wait_done(bench, poll, max_cycles):
    waited = 0
    while not bench.get("done"):
        await bench.tick(poll)
        waited += poll
        if waited > max_cycles:
            raise Mismatch(f"no done after {waited} cycles")


async def _read_output(bench, n_pe, act_depth, length, rng, gap, stall, pressure):
    source = StreamSource("read", read_requests(n_pe, act_depth, length), rng=rng, gap_probability=gap)
    sink = StreamSink("out", length, rng=rng, stall_probability=stall)
    await bench.run([source, sink], max_cycles=20 * length + 100)
    _tally(pressure, [source, sink])
    return sink.items


async def run_network(bench, *, jobs, seed=0, gap_probability=0.0, stall_probability=0.0, load_image=True,
                      reset_at=None, poll=16):
    """For each job ``{"image_dir", "inputs"}``: load the image (unless ``load_image`` is false: it is baked in),
    then for each input load it, run, read the output back and check it against the golden model.

    Returns one ``{"outputs": [...], "counters": [...], "pressure", "run_seconds", "seconds"}`` per job: an output
    and the counters per input, the pressure the host streams saw (by port: the sources' ``gap_cycles`` and
    ``blocked_cycles``, the sink's ``stall_cycles``; image load included), the wall time from ``start`` to ``done``
    summed over the inputs, and the job's wall time (input loads and output reads included, image load not).
    Every host stream is checked against the stream rules (:class:`~sparq.sim.bench.StreamRules`). ``reset_at``: before the
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
        pressure = {}
        if load_image:
            await _stream(bench, "load", image_words(image), rng, gap_probability, pressure)
        if reset_at is not None and job_number == 0:
            await _stream(bench, "load", input_words(c.n_pe, job["inputs"][0]), rng, gap_probability, pressure)
            await _start(bench)
            await bench.tick(reset_at)
            if bench.get("done"):
                raise Mismatch(f"the run ended before the reset at cycle {reset_at}; pick an earlier one")
            await bench.reset()
        outputs, stats, run_seconds, job_started = [], [], 0.0, time.perf_counter()
        for number, x in enumerate(job["inputs"]):
            await _stream(bench, "load", input_words(c.n_pe, x), rng, gap_probability, pressure)
            started = time.perf_counter()
            await _start(bench)
            await _wait_done(bench, poll, 10_000_000)
            run_seconds += time.perf_counter() - started
            got = await _read_output(bench, c.n_pe, c.act_depth, image.output_len, rng, gap_probability,
                                     stall_probability, pressure)
            expected = golden.run(np.asarray(x, dtype=np.int64)).output
            assert_words_equal(expected, got, what=f"job {job_number}, input {number}: network output")
            outputs.append(got)
            stats.append(counters(bench, c.n_pe))
        results.append({"outputs": outputs, "counters": stats, "pressure": pressure, "run_seconds": run_seconds,
                        "seconds": time.perf_counter() - job_started})
    return results


async def _start(bench):
    bench.set("start", 1)
    await bench.tick()
    bench.set("start", 0)


async def _write_memory(bench, prefix, words):
    for addr, word in enumerate(words):
        bench.set(f"{prefix}write_addr", addr)
        bench.set(f"{prefix}write_data", int(word))
        bench.set(f"{prefix}write_en", 1)
        await bench.tick()
    bench.set(f"{prefix}write_en", 0)


async def pointer_unit(bench, *, seed, pointers, ptr_base, ptr_width, columns, gap_probability, stall_probability):
    """PointerReadUnit: ``columns`` (indices j) in with random gaps, ``(value, p[g], p[g+1])`` out with random
    back-pressure, ``g = ptr_base + j``."""
    rng = random.Random(seed)
    await bench.reset()
    await _write_memory(bench, "", pointers)
    bench.set("ptr_base", ptr_base)
    values = [rng.getrandbits(ACT_BITS) for _ in columns]
    source = StreamSource("column", [v | j << ACT_BITS for v, j in zip(values, columns)], rng=rng,
                          gap_probability=gap_probability)
    sink = StreamSink("run", len(columns), rng=rng, stall_probability=stall_probability)
    await bench.run([source, sink], max_cycles=20 * len(columns) + 100)
    expected = [v | pointers[ptr_base + j] << ACT_BITS | pointers[ptr_base + j + 1] << (ACT_BITS + ptr_width)
                for v, j in zip(values, columns)]
    assert_words_equal(expected, sink.items, what="runs")


class _Entries(Agent):
    """Collects the payloads of the always-ready stream port ``port`` (no ``ready`` to drive)."""

    def __init__(self, port, count):
        self.port, self.count, self.items = port, count, []

    @property
    def done(self):
        return len(self.items) == self.count

    def sample(self, bench):
        if bench.get(f"{self.port}.valid"):
            if self.done:
                raise Mismatch(f"{self.port}: unexpected extra item {bench.get(f'{self.port}.payload')} after the "
                               f"{self.count} expected")
            self.items.append(bench.get(f"{self.port}.payload"))


async def spmat_unit(bench, *, seed, words, spmat_base, ptr_width, runs, gap_probability, spram=False):
    """SparseMatrixReadUnit: runs ``(start, end)`` in with random gaps, one entry per cycle out (its ``entry``
    port is always ready: the arithmetic unit never refuses one); returns the cycles the transfer took and the busy
    cycles counted. The 64-bit ``words`` are written first (as halfwords, low first, for
    ``SparseMatrixReadUnit(spram=True)``)."""
    rng = random.Random(seed)
    await bench.reset()
    await _write_memory(bench, "", [int(w) >> (16 * h) & 0xFFFF for w in words for h in range(4)] if spram
                        else words)
    bench.set("spmat_base", spmat_base)
    values = [rng.getrandbits(ACT_BITS) for _ in runs]
    expected = [value | ((int(words[spmat_base + e // 8]) >> (8 * (e % 8))) & 0xFF) << ACT_BITS
                | int(e == s) << (ACT_BITS + 8) for value, (s, t) in zip(values, runs) for e in range(s, t)]
    source = StreamSource("run", [v | s << ACT_BITS | t << (ACT_BITS + ptr_width) for v, (s, t) in zip(values, runs)],
                          rng=rng, gap_probability=gap_probability)
    sink = _Entries("entry", len(expected))

    class Busy(Agent):
        count = 0

        def sample(self, bench):
            Busy.count += bench.get("busy")

    start = bench.cycle
    await bench.run([source, sink, Busy()], max_cycles=20 * len(expected) + 20 * len(runs) + 100)
    assert_words_equal(expected, sink.items, what="entries")
    return {"cycles": bench.cycle - start, "busy": Busy.count}


async def lnzd_random(bench, *, seed, n, count):
    """LeadingNonZeroDetector: random masks and values, checked combinationally."""
    rng = random.Random(seed)
    for _ in range(count):
        mask = rng.getrandbits(n) & rng.getrandbits(n) if rng.random() < 0.7 else 0
        values = [rng.getrandbits(ACT_BITS) for _ in range(n)]
        bench.set("mask", mask)
        bench.set("values", sum(v << (ACT_BITS * k) for k, v in enumerate(values)))
        await bench.settle()
        lanes = [k for k in range(n) if mask >> k & 1]
        if bench.get("valid") != bool(lanes):
            raise Mismatch(f"mask {mask:#x}: valid {bench.get('valid')}")
        if lanes:
            lane = lanes[0]
            value = values[lane] - ((values[lane] >> 15) << 16)
            if (bench.get("lane"), bench.get("value")) != (lane, value):
                raise Mismatch(f"mask {mask:#x}: lane {bench.get('lane')} value {bench.get('value')}, expected "
                               f"{lane}, {value}")
        await bench.tick()


async def arith_random(bench, *, seed, act_depth, max_layers, count, flush_latency):
    """ArithmeticUnit: codebooks of ``max_layers`` layers and ``2 act_depth`` biases written through the host port;
    per layer, random columns of entries (same rows back to back across columns, with random idle cycles), then
    every accumulator flushed and compared with numpy, with its bias (``bias_addr``: the layer's ``bias_base`` plus
    the row, as the CCU sends it), read ``flush_latency`` cycles after its flush; then flushed again (accumulators
    must read 0)."""
    rng = random.Random(seed)
    codebooks = [[0] + [rng.randrange(-(1 << 15), 1 << 15) for _ in range(15)] for _ in range(max_layers)]
    biases = [rng.randrange(-(1 << 15), 1 << 15) for _ in range(2 * act_depth)]
    await bench.reset()
    for target, words in (("write_codebook", [w for book in codebooks for w in book]), ("write_bias", biases)):
        bench.set(target, 1)
        for addr, word in enumerate(words):
            bench.set("write_addr", addr)
            bench.set("write_data", word)
            await bench.tick()
        bench.set(target, 0)
    for row in range(act_depth):  # clear, as the CCU does
        bench.set("flush_addr", row)
        bench.set("flush_en", 1)
        await bench.tick()
    bench.set("flush_en", 0)
    await bench.tick(2)
    for layer in rng.sample(range(max_layers), max_layers):
        codebook, bias_base = codebooks[layer], rng.randrange(act_depth + 1)
        bench.set("layer_index", layer)
        expected = [0] * act_depth
        sent = 0
        while sent < count:
            value = rng.randrange(-(1 << 15), 1 << 15)
            row = -1
            first = 1
            while True:
                zeros = rng.choice([0, 0, 0, 1, 2, 15])
                if row + zeros + 1 >= act_depth or sent >= count:
                    break
                row += zeros + 1
                code = rng.randrange(16)
                expected[row] += codebook[code] * value
                bench.set("entry.valid", 1)
                bench.set("entry.payload", (value & 0xFFFF) | code << 16 | zeros << 20 | first << 24)
                await bench.tick()
                sent += 1
                first = 0
                if rng.random() < 0.2:
                    break
            bench.set("entry.valid", 0)
            if rng.random() < 0.3:
                await bench.tick(rng.randrange(1, 4))
        bench.set("entry.valid", 0)
        await bench.tick(8)
        for rounds in range(2):
            got, got_bias = [], []
            for i in range(act_depth + flush_latency - 1):  # row i flushed, row i - (flush_latency - 1) read
                bench.set("flush_addr", min(i, act_depth - 1))
                bench.set("bias_addr", bias_base + min(i, act_depth - 1))
                bench.set("flush_en", int(i < act_depth))
                await bench.tick()
                if i >= flush_latency - 1:
                    got.append(bench.get("result"))
                    got_bias.append(bench.get("bias"))
            bench.set("flush_en", 0)
            await bench.tick(2)
            assert_words_equal(expected if rounds == 0 else [0] * act_depth, got,
                               what=f"accumulators of layer {layer}, pass {rounds}")
            assert_words_equal(biases[bias_base:bias_base + act_depth], got_bias, what=f"biases from {bias_base}")


async def activation_finish_random(bench, *, seed, act_depth, count):
    """ActivationRegisters: random accumulators (every magnitude up to the 40-bit limits, and the edges where the
    finish clamps), biases, ``w_frac`` and ``relu`` finished into the destination bank, one per cycle; the bank is
    then made the source and read back against :func:`sparq.formats.eie.finish`. Bank 0 is loaded by the host first and
    must survive (results go to the other bank)."""
    from sparq.formats.eie import ACC_BITS, finish
    rng = random.Random(seed)
    await bench.reset()
    loaded = [rng.randrange(-(1 << 15), 1 << 15) for _ in range(act_depth)]
    for addr, value in enumerate(loaded):
        bench.set("load_addr", addr)
        bench.set("load_data", value)
        bench.set("load_en", 1)
        await bench.tick()
    bench.set("load_en", 0)
    lo, hi = -(1 << (ACC_BITS - 1)), (1 << (ACC_BITS - 1)) - 1
    for _ in range(count // act_depth):
        w_frac, relu = rng.randrange(16), rng.randrange(2)
        bench.set("w_frac", w_frac)
        bench.set("relu", relu)
        bench.set("parity", 0)
        expected = []
        for addr in range(act_depth):
            edge = 1 << (ACT_BITS + 1 + w_frac)
            acc = rng.choice([rng.randrange(-(1 << rng.randrange(1, ACC_BITS)), 1 << rng.randrange(1, ACC_BITS)),
                              rng.choice([lo, hi, edge, -edge, edge - 1, -edge - 1]) + rng.randrange(-2, 3)])
            acc = min(max(acc, lo), hi)
            bias = rng.randrange(-(1 << 15), 1 << 15)
            expected.append(int(finish(np.array([acc + (bias << w_frac)]), w_frac, relu)[0][0]))
            bench.set("result_addr", addr)
            bench.set("result_acc", acc)
            bench.set("result_bias", bias)
            bench.set("result_en", 1)
            await bench.tick()
        bench.set("result_en", 0)
        await bench.tick(2)
        for parity, want in ((1, expected), (0, loaded)):
            bench.set("parity", parity)
            got = []
            for addr in range(act_depth):
                bench.set("read_addr", addr)
                bench.set("read_en", 1)
                await bench.tick()
                got.append(bench.get("read_data"))
            bench.set("read_en", 0)
            assert_words_equal(want, got, what=f"bank {parity} (w_frac {w_frac}, relu {relu})")

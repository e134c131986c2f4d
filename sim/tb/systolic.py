"""Testbench bodies for the systolic accelerator (``sparq.hw.systolic``) against ``sparq.sim.systolic.golden``.

Block-level bodies drive one block cycle by cycle against a small model; the accelerator bodies stream a whole
program through the instruction, ``host_in`` and ``host_out`` ports (with seeded random gaps and back-pressure)
and compare every output byte with the golden model at the end, keeping the Python per cycle to the stream agents.
"""

import random

import numpy as np

from sparq.formats.systolic import COUNTERS, SystolicProgram, load_program, requantize, words_to_ints

from ..bench import Agent, StreamSink, StreamSource
from ..scoreboard import Mismatch, assert_words_equal
from ..systolic.golden import run_program
from ..systolic.stimulus import random_int8, random_int32


async def _stream_program(bench, program: SystolicProgram, input_words, *, rng, gap_probability=0.0,
                          stall_probability=0.0, instr_gap_probability=0.0):
    """Stream ``program`` (which ends with HALT) with ``input_words`` through a running accelerator until it halts;
    return the output words (int8)."""
    stream = program.stream(input_words)
    instructions = StreamSource("instr", program.encoded(), rng=rng, gap_probability=instr_gap_probability)
    host_in = StreamSource("host_in", words_to_ints(stream), rng=rng, gap_probability=gap_probability)
    host_out = StreamSink("host_out", program.output_words, rng=rng, stall_probability=stall_probability)
    agents = [instructions, host_in, host_out]
    until = lambda: bench.get("error") or (host_out.done and bench.get("halted"))  # noqa: E731
    budget = 50 * (len(stream) + program.output_words + len(program.instructions)) + 200_000 + 4 * sum(
        ins.count for ins in program.instructions)
    await bench.run(agents, until=until, max_cycles=budget)
    if bench.get("error"):
        raise Mismatch(f"the accelerator stopped on an error (an instruction it does not execute) with "
                       f"{instructions.sent} of {len(program.instructions)} instructions sent")
    lanes = program.config.lanes
    raw = b"".join(int(v).to_bytes(lanes, "little") for v in host_out.items)
    return np.frombuffer(raw, dtype=np.int8).reshape(-1, lanes)


def _counters(bench):
    return {name: bench.get(name) for name in COUNTERS}


async def run_program_file(bench, *, program: str, inputs: str, seed: int = 0, gap_probability: float = 0.0,
                           stall_probability: float = 0.0, instr_gap_probability: float = 0.0):
    """Reset, run the saved program ``program`` (``sparq.formats.systolic.save_program``) on the input words saved with
    ``numpy.save`` at ``inputs``; check every output byte against the golden model; return the counters."""
    prog = load_program(program)
    input_words = np.load(inputs)
    expected = run_program(prog.config, prog.instructions, prog.stream(input_words))
    await bench.reset()
    got = await _stream_program(bench, prog, input_words, rng=random.Random(seed), gap_probability=gap_probability,
                                stall_probability=stall_probability, instr_gap_probability=instr_gap_probability)
    assert_words_equal(expected.view(np.uint8), got.view(np.uint8), what="host_out bytes")
    return {**_counters(bench), "output_words": len(got)}


async def run_program_files(bench, *, runs: list):
    """:func:`run_program_file` for each dict of keyword arguments in ``runs`` (plus an optional ``name``), one
    after another on the same simulation (each starts with a reset); return the list of their results.

    One simulation for several programs saves the per-run start-up (Verilog conversion and simulator launch).
    """
    results = []
    for i, run in enumerate(runs):
        run = dict(run)
        name = run.pop("name", f"run {i}")
        try:
            results.append({"name": name, **await run_program_file(bench, **run)})
        except AssertionError as error:
            raise Mismatch(f"{name}: {error}") from None
    return results


async def stops_on_error(bench, *, instructions: list, host_words: list, consumed: int, max_cycles: int = 5000):
    """Reset, then stream the raw instruction words ``instructions`` (one of them an opcode the build does not
    execute) and the ``host_in`` words ``host_words`` (integers) into the accelerator, ``host_out`` always ready.
    It must raise ``error`` together with ``halted`` (never before), having taken exactly ``consumed`` host words,
    sent nothing on ``host_out``, and then stay stopped: ``error`` held, no host word taken, every counter
    frozen. Returns the counters."""
    rng = random.Random(0)
    await bench.reset()
    source = StreamSource("instr", instructions, rng=rng)
    host_in = StreamSource("host_in", host_words, rng=rng)
    host_out = StreamSink("host_out", 0, rng=rng)  # raises on any word

    class Flags(Agent):
        def sample(self, bench):
            if bench.get("error") and not bench.get("halted"):
                raise Mismatch(f"cycle {bench.cycle}: error without halted")

    agents = [source, host_in, host_out, Flags()]
    await bench.run(agents, until=lambda: bench.get("halted"), max_cycles=max_cycles)
    stopped = _counters(bench)
    end = bench.cycle + 50
    await bench.run(agents, until=lambda: bench.cycle >= end)
    if not bench.get("error") or host_in.sent != consumed or _counters(bench) != stopped:
        raise Mismatch(f"after the bad instruction: error {bench.get('error')} (expected 1), {host_in.sent} host "
                       f"words taken (expected {consumed}), counters {_counters(bench)} then {stopped} (expected "
                       f"frozen)")
    return stopped


# ---------------------------------------------------------------------------------------------------------------
# Block-level bodies. Each takes a ``prefix`` for its port names, so that it can drive a block on its own
# (``prefix=""``) or one of the blocks of a ``sparq.sim.rig.BlockRig`` (``prefix="pe."``).

class _Prefixed:
    """A view of a :class:`~sparq.sim.bench.Bench` that prefixes every port name."""

    def __init__(self, bench, prefix: str):
        self._bench, self._prefix = bench, prefix

    def set(self, name, value):
        self._bench.set(self._prefix + name, value)

    def get(self, name):
        return self._bench.get(self._prefix + name)

    def __getattr__(self, name):  # settle, tick, reset, cycle
        return getattr(self._bench, name)


def _pack(layout_offsets: dict, **values) -> int:
    """Raw bits of a struct given ``{field: (offset, width)}`` and the field values."""
    raw = 0
    for name, value in values.items():
        offset, width = layout_offsets[name]
        raw |= (int(value) & ((1 << width) - 1)) << offset
    return raw


def _offsets(layout) -> dict:
    return {name: (field.offset, field.width) for name, field in layout}


def _signed(raw: int, width: int) -> int:
    raw &= (1 << width) - 1
    return raw - (1 << width) if raw >> (width - 1) else raw


def _lanes(raw: int, lanes: int, width: int) -> list:
    return [_signed(raw >> (width * k), width) for k in range(lanes)]


def _unsigned_lanes(raw: int, lanes: int, width: int) -> list:
    return [(raw >> (width * k)) & ((1 << width) - 1) for k in range(lanes)]


def _join(values, width: int) -> int:
    return sum((int(v) & ((1 << width) - 1)) << (width * k) for k, v in enumerate(values))


async def random_pe(bench, *, seed: int, n: int, prefix: str = "", arithmetic: str = "int8"):
    """``n`` cycles of random activations, partial sums and weight shifts into a WeightStationaryPE of
    ``arithmetic`` (int8: 8-bit operands, 32-bit wrap, pipelined; fp16 / bf16: ``sparq.sim.golden.fp``, with stimulus
    that hits the special values often); ``act_out``, ``psum_out`` and ``w_out`` checked every cycle against a model
    (``psum_out`` adds the ``psum_in`` of the cycle ``pe_latency - 1`` after the activation)."""
    bench = _Prefixed(bench, prefix)
    from sparq.hw.systolic.pe import activation_lane, operand_shape, pe_latency

    from .fp import arithmetic_model
    model = arithmetic_model(arithmetic)
    lane = _offsets(activation_lane(operand_shape(arithmetic)))
    lag = pe_latency(arithmetic) - 1
    rng = random.Random(seed)
    await bench.reset()
    weights, act_out, psum_out = [0, 0], 0, 0
    history = [(0, 0, 0)] * lag  # (value, valid, weight of its bank) of the last `lag` cycles, oldest first
    for cycle in range(n):
        value, valid, bank = model.operand(rng), int(rng.random() < 0.7), rng.getrandbits(1)
        psum_in, w_in = model.accumulator(rng), model.operand(rng)
        w_shift, w_bank = int(rng.random() < 0.4), rng.getrandbits(1)
        bench.set("act_in", _pack(lane, value=value, valid=valid, bank=bank))
        for port, v in (("psum_in", psum_in), ("w_in", w_in), ("w_shift", w_shift), ("w_bank", w_bank)):
            bench.set(port, v)
        await bench.settle()
        if bench.get("w_out") != weights[w_bank]:
            raise Mismatch(f"cycle {cycle}: w_out {bench.get('w_out')}, expected bank {w_bank} = {weights[w_bank]}")
        await bench.tick()
        history.append((value, valid, weights[bank]))
        old_value, old_valid, old_weight = history.pop(0)
        if old_valid:
            psum_out = model.mac(psum_in, old_value, old_weight)
        act_out = _pack(lane, value=value, valid=valid, bank=bank)
        if w_shift:
            weights[w_bank] = w_in
        got = (bench.get("psum_out"), bench.get("act_out"))
        if got != (psum_out, act_out):
            raise Mismatch(f"cycle {cycle}: (psum_out, act_out) = {got}, expected {(psum_out, act_out)}")
    return {"cycles": n}


async def random_delays(bench, *, seed: int, n: int, lanes: int, width: int, reverse: bool, prefix: str = ""):
    """Random vectors into an InputSkew (``reverse=False``: lane k delayed k) or an OutputDeskew (``reverse=True``:
    lane k delayed lanes-1-k); every output lane checked every cycle."""
    bench = _Prefixed(bench, prefix)
    rng = random.Random(seed)
    delays = [lanes - 1 - k if reverse else k for k in range(lanes)]
    await bench.reset()
    history = []
    for cycle in range(n):
        vector = [rng.randint(-(1 << (width - 1)), (1 << (width - 1)) - 1) for _ in range(lanes)]
        history.append(vector)
        bench.set("i", _join(vector, width))
        await bench.settle()
        got = _lanes(bench.get("o"), lanes, width)
        expected = [history[cycle - d][k] if cycle >= d else 0 for k, d in enumerate(delays)]
        if got != expected:
            raise Mismatch(f"cycle {cycle}: o = {got}, expected {expected} (lane delays {delays})")
        await bench.tick()
    return {"cycles": n}


async def random_accumulators(bench, *, seed: int, n: int, cols: int, depth: int, prefix: str = ""):
    """``n`` cycles of random writes (overwrite or accumulate, often to the address just written, int32 wrap) to
    the Accumulators, each accumulating write announced on ``upcoming`` ``PREFETCH`` cycles ahead (``upcoming`` is
    random before the others), with a read of a random address (often the one just written) every cycle: each read
    must see exactly the writes made ``ACCUMULATE_LATENCY`` or more cycles before it, ``ACC_READ_LATENCY`` cycles
    later. Then every word is read back and compared with the model."""
    bench = _Prefixed(bench, prefix)
    from sparq.formats.systolic import ACC_READ_LATENCY, ACCUMULATE_LATENCY
    from sparq.hw.systolic.accumulators import Accumulators
    from sparq.hw.systolic.layouts import accumulator_tag_layout, accumulator_write_layout
    layout, tag = _offsets(accumulator_write_layout(cols, depth)), _offsets(accumulator_tag_layout(depth))
    ahead = Accumulators.PREFETCH
    rng = random.Random(seed)
    writes, last = [], 0
    for _ in range(n):
        valid, accumulate = int(rng.random() < 0.8), int(rng.random() < 0.7)
        addr = last if rng.random() < 0.4 else rng.randrange(depth)
        writes.append((valid, accumulate, addr, [random_int32(rng) for _ in range(cols)]))
        last = addr if valid else last
    writes += [(0, 0, 0, [0] * cols)] * ahead
    model = np.zeros((depth, cols), dtype=np.int64)
    await bench.reset()
    for i in range(depth):  # start from a known state
        bench.set("write", _pack(layout, valid=1, accumulate=0, addr=i, data=0))
        await bench.tick()
    bench.set("write", 0)
    await bench.tick(ACCUMULATE_LATENCY)
    states = [model.copy()] * ACCUMULATE_LATENCY  # the model after each of the last writes, oldest first
    reads = [None] * (ACC_READ_LATENCY - 1)  # (cycle, address, expected word) of the reads in flight
    for cycle in range(n + ahead):
        valid, accumulate, addr, data = writes[cycle - ahead] if cycle >= ahead else (0, 0, 0, [0] * cols)
        if cycle < n:
            future = writes[cycle]
            bench.set("upcoming", _pack(tag, valid=future[0], accumulate=future[1], addr=future[2]) if future[1]
                      else rng.getrandbits(sum(width for _, width in tag.values())))
        read = last if rng.random() < 0.5 else rng.randrange(depth)
        bench.set("write", _pack(layout, valid=valid, accumulate=accumulate, addr=addr, data=_join(data, 32)))
        bench.set("read_addr", read)
        reads.append((cycle, read, states[0][read].copy()))  # sees the writes up to ACCUMULATE_LATENCY ago
        await bench.tick()
        if valid:
            model[addr] = (model[addr] if accumulate else 0) + np.array(data)
            model[addr] = ((model[addr] + (1 << 31)) % (1 << 32)) - (1 << 31)
            last = addr
        states = states[1:] + [model.copy()]
        done = reads.pop(0)
        if done is not None:
            got = _lanes(bench.get("read_data"), cols, 32)
            if got != done[2].tolist():
                raise Mismatch(f"read of address {done[1]} in cycle {done[0]}: got {got}, expected {done[2].tolist()} "
                               f"(the writes up to {ACCUMULATE_LATENCY} cycles before it)")
    bench.set("write", 0)
    await bench.tick(ACCUMULATE_LATENCY)
    got = []
    for i in range(depth + ACC_READ_LATENCY - 1):
        bench.set("read_addr", min(i, depth - 1))
        await bench.tick()
        if i >= ACC_READ_LATENCY - 1:
            got.append(_lanes(bench.get("read_data"), cols, 32))
    assert_words_equal(model.ravel(), np.array(got).ravel(), what="accumulator words (address-major)")
    return {"cycles": bench.cycle}


async def random_unified_buffer(bench, *, seed: int, n: int, lanes: int, depth: int, prefix: str = ""):
    """``n`` cycles of random reads and writes on both slots of the UnifiedBuffer, each at an address of its slot's
    bank (``phase`` alternating, as the controller drives it), a tenth of the time with ``any_bank`` (the A read
    anywhere, the B read off): every read word is checked ``UB_READ_LATENCY`` cycles later against a model in which
    a write is seen from the next cycle on."""
    bench = _Prefixed(bench, prefix)
    from sparq.formats.systolic import UB_READ_LATENCY
    rng = random.Random(seed)
    model = [[0] * lanes for _ in range(depth)]
    await bench.reset()
    for address in range(depth):  # a known state, two words a cycle
        bench.set("phase", address % 2)
        bench.set("a_write_addr", address)
        bench.set("a_write_data", 0)
        bench.set("a_write_en", 1)
        await bench.tick()
    bench.set("a_write_en", 0)

    def address_in(bank):
        return 2 * rng.randrange((depth - bank + 1) // 2) + bank

    pending = [None] * (UB_READ_LATENCY - 1)
    for cycle in range(n):
        phase, any_bank = cycle % 2, int(rng.random() < 0.1)
        a_read = rng.randrange(depth) if any_bank else address_in(phase)
        b_read = address_in(1 - phase)
        writes = {}
        for slot, bank in (("a", phase), ("b", 1 - phase)):
            enable = int(rng.random() < 0.6)
            address = address_in(bank)
            word = [random_int8(rng) for _ in range(lanes)]
            for port, value in (("addr", address), ("data", _join(word, 8)), ("en", enable)):
                bench.set(f"{slot}_write_{port}", value)
            if enable:
                writes[address] = word
        for port, value in (("phase", phase), ("any_bank", any_bank), ("a_read_addr", a_read),
                            ("b_read_addr", b_read)):
            bench.set(port, value)
        pending.append((cycle, a_read, list(model[a_read]), None if any_bank else (b_read, list(model[b_read]))))
        await bench.tick()
        for address, word in writes.items():
            model[address] = word
        done = pending.pop(0)
        if done is None:
            continue
        got_a = _lanes(bench.get("a_read_data"), lanes, 8)
        if got_a != done[2]:
            raise Mismatch(f"cycle {done[0]}: A read of {done[1]} gave {got_a}, expected {done[2]}")
        if done[3] is not None and _lanes(bench.get("b_read_data"), lanes, 8) != done[3][1]:
            raise Mismatch(f"cycle {done[0]}: B read of {done[3][0]} gave {_lanes(bench.get('b_read_data'), lanes, 8)}, "
                           f"expected {done[3][1]}")
    return {"cycles": bench.cycle}


async def random_activation_unit(bench, *, seed: int, commands: int, cols: int, acc_depth: int, ub_depth: int,
                                 wb_depth: int, max_wait: int, gap_probability: float = 0.3, prefix: str = ""):
    """ACTIVATE commands (directed: back to back, count 1, waits 0 and ``max_wait``, both UB parities; then random)
    into the ActivationUnit, with models of its WB and accumulator read ports and the bank phase alternating. Checked
    every cycle against the timing contract (``sparq.formats.systolic.timing``): the first accumulator read of a
    command accepted at ``t`` at the first ``r >= t + 1 + max(ACTIVATE_PARAM_CYCLES - 1, wait)`` whose UB write,
    ``ACTIVATE_WRITE_LATENCY`` later, is in the B slot; one requantized row written a cycle from then on and nothing
    else; ``busy`` from ``t + 1`` through the last write, ``cmd.ready == ~busy``; ``wrote`` from the cycle after the
    first write."""
    bench = _Prefixed(bench, prefix)
    from sparq.formats.systolic import (
        ACC_READ_LATENCY,
        ACTIVATE_PARAM_CYCLES,
        ACTIVATE_WRITE_LATENCY,
        PARAM_WORDS,
        pack_params,
    )
    from sparq.hw.systolic.layouts import activate_command_layout
    layout = _offsets(activate_command_layout(acc_depth, ub_depth, wb_depth, max_wait))
    rng = random.Random(seed)
    acc = np.array([[random_int32(rng) for _ in range(cols)] for _ in range(acc_depth)], dtype=np.int64)
    records = wb_depth // PARAM_WORDS
    params = [(np.array([random_int32(rng) >> rng.randrange(32) for _ in range(cols)]),
               np.array([rng.randrange(1 << 16) for _ in range(cols)]), np.array([rng.randrange(48) for _ in range(cols)]))
              for _ in range(records)]
    wb = np.concatenate([pack_params(*p, cols) for p in params]).astype(np.int64)
    directed = [dict(count=1, wait=0), dict(count=3, wait=max_wait), dict(count=1, wait=max_wait), dict(count=5, wait=0)]
    plan = []
    for k in range(commands):
        shape = directed[k] if k < len(directed) else dict(count=rng.randint(1, min(12, acc_depth, ub_depth)),
                                                             wait=rng.randint(0, max_wait))
        count = shape["count"]
        plan.append(dict(acc=rng.randrange(acc_depth - count + 1), ub=rng.randrange(ub_depth - count + 1),
                         record=rng.randrange(records), relu=rng.getrandbits(1), gap=rng.random() < gap_probability,
                         **shape))
    await bench.reset()
    zeros = np.zeros(cols, dtype=np.int64)
    wb_data, acc_data = zeros, [zeros] * ACC_READ_LATENCY  # what the ports return now / in the next cycles
    expected_writes, busy_until, wrote_from = {}, -1, None
    issued, cycle, current, first_write = 0, 0, None, None
    while issued < len(plan) or cycle <= busy_until + 2:
        phase = cycle % 2
        bench.set("phase", phase)
        bench.set("wb_data", _join(wb_data, 8))
        bench.set("acc_data", _join(acc_data[0], 32))
        offer = issued < len(plan) and not (plan[issued]["gap"] and rng.random() < 0.5)
        if offer:
            p = plan[issued]
            bench.set("cmd.payload", _pack(layout, acc=p["acc"], ub=p["ub"], wb=p["record"] * PARAM_WORDS,
                                           count=p["count"], relu=p["relu"], wait=p["wait"]))
        bench.set("cmd.valid", int(offer))
        await bench.settle()
        busy = cycle <= busy_until and current is not None and cycle > current
        for port, value in (("busy", busy), ("cmd.ready", not busy), ("wrote", wrote_from is not None
                                                                              and cycle >= wrote_from)):
            if bench.get(port) != int(value):
                raise Mismatch(f"cycle {cycle}: {port} = {bench.get(port)}, expected {int(value)}")
        write = expected_writes.pop(cycle, None)
        if bench.get("ub_en") != int(write is not None):
            raise Mismatch(f"cycle {cycle}: ub_en = {bench.get('ub_en')}, expected {int(write is not None)}")
        if write is not None:
            got = (bench.get("ub_addr"), _lanes(bench.get("ub_data"), cols, 8))
            if got != write:
                raise Mismatch(f"cycle {cycle}: UB write {got}, expected {write}")
        wb_address, acc_address = bench.get("wb_addr"), bench.get("acc_addr")
        if offer and not busy:  # accepted: predict the command
            p, t = plan[issued], cycle
            issued += 1
            read = t + 1 + max(ACTIVATE_PARAM_CYCLES - 1, p["wait"])
            while p["ub"] % 2 == (read + ACTIVATE_WRITE_LATENCY) % 2:  # the write must be in the B slot
                read += 1
            bias, multiplier, shift = params[p["record"]]
            for i in range(p["count"]):
                y = requantize(acc[p["acc"] + i], bias, multiplier, shift, bool(p["relu"]))
                expected_writes[read + ACTIVATE_WRITE_LATENCY + i] = (p["ub"] + i, [int(v) for v in y])
            current, busy_until = t, read + ACTIVATE_WRITE_LATENCY + p["count"] - 1
            wrote_from = None
            first_write = read + ACTIVATE_WRITE_LATENCY
        if cycle == first_write:
            wrote_from = cycle + 1
        await bench.tick()
        cycle += 1
        wb_data = wb[wb_address] if wb_address < len(wb) else zeros
        acc_data = acc_data[1:] + [acc[acc_address % acc_depth]]
    if expected_writes:
        raise Mismatch(f"{len(expected_writes)} UB writes never happened, the first at cycle {min(expected_writes)}")
    return {"commands": len(plan), "cycles": cycle}


def requantizer_cases(seed: int, n: int) -> list:
    """Directed rounding edge cases, then ``n`` random ones: ``(acc, bias, multiplier, shift, relu)`` tuples.

    Directed: ``(acc + bias) * multiplier`` exactly on a tie (+-0.5, +-1.5, +-126.5, +-127.5, +-128.5, +-129.5), one
    step below and one above, at shifts 1 to 47, with and without ReLU; then the int32 and uint16 extremes with
    shifts 0, 1, 16 and 47 (saturation both ways, multiplier 0).
    """
    rng = random.Random(seed)
    cases = []
    for shift in (1, 2, 7, 15, 16, 31, 40, 47):
        scale = min(15, shift - 1)  # multiplier 2**scale, x = odd * 2**(shift - 1 - scale): a tie
        for odd in (1, 3, 253, 255, 257, 259, -1, -3, -253, -255, -257, -259):
            for delta in (-1, 0, 1):
                x = odd * (1 << (shift - 1 - scale)) + delta
                acc = max(-(1 << 31), min((1 << 31) - 1, x))
                if abs(x - acc) < 1 << 31:
                    cases += [(acc, x - acc, 1 << scale, shift, relu) for relu in (0, 1)]
    for acc in (-(1 << 31), (1 << 31) - 1, 0, -1, 1, 127, 128, -128, -129):
        for bias in (-(1 << 31), (1 << 31) - 1, 0, -1):
            for multiplier, shift in ((0, 0), (1, 0), (65535, 0), (65535, 47), (1, 47), (32768, 16), (3, 1)):
                cases.append((acc, bias, multiplier, shift, rng.getrandbits(1)))
    for _ in range(n):
        cases.append((random_int32(rng), random_int32(rng) >> rng.randrange(32), rng.randrange(1 << 16), rng.randrange(48),
                      rng.getrandbits(1)))
    return cases


async def requantizer_sweep(bench, *, seed: int, n: int, prefix: str = ""):
    """The Requantizer on :func:`requantizer_cases`, one case a cycle (every input changing every cycle), each
    output checked ``Requantizer.LATENCY`` cycles later against ``sparq.formats.systolic.requantize``."""
    bench = _Prefixed(bench, prefix)
    from sparq.hw.systolic.activation import Requantizer
    from sparq.hw.systolic.layouts import param_layout
    layout = _offsets(param_layout())
    cases = requantizer_cases(seed, n)
    latency = Requantizer.LATENCY
    await bench.reset()
    got = []
    for acc, bias, multiplier, shift, relu in cases + [cases[-1]] * latency:
        bench.set("acc", acc)
        bench.set("params", _pack(layout, bias=bias, multiplier=multiplier, shift=shift))
        bench.set("relu", relu)
        await bench.tick()
        got.append(bench.get("y"))
    expected = [int(requantize(a, b, m, s, bool(r))) for a, b, m, s, r in cases]
    assert_words_equal(expected, got[latency - 1:latency - 1 + len(cases)],
                       what="requantized outputs (see requantizer_cases for the order)")
    return {"cases": len(cases)}


async def random_matrix_unit(bench, *, seed: int, rows: int, cols: int, acc_depth: int, rounds: int = 4,
                             vectors: int = 30, gap_probability: float = 0.2, prefix: str = "",
                             arithmetic: str = "int8"):
    """Weight tiles shifted into one bank while vectors stream through the other with random gaps, then the bank
    switch on consecutive cycles, for ``rounds`` rounds; every result (address, data) checked against numpy
    (``arithmetic`` int8) or ``sparq.sim.golden.fp.fp_matmul`` (fp16 / bf16)."""
    bench = _Prefixed(bench, prefix)
    from sparq.hw.systolic.layouts import accumulator_write_layout, issue_layout

    from .fp import arithmetic_model
    model = arithmetic_model(arithmetic)
    width, acc_width = model.operand_width, model.acc_width
    issue = _offsets(issue_layout(acc_depth))
    result = _offsets(accumulator_write_layout(cols, acc_depth))
    read_lanes = _lanes if model.signed else _unsigned_lanes
    rng = random.Random(seed)
    tiles = [np.array([[model.operand(rng) for _ in range(cols)] for _ in range(rows)], dtype=np.int64)
             for _ in range(rounds + 1)]
    bank_tile = [0, None]  # which tile each bank holds
    expected, results = [], []

    async def cycle(bank=0, vector=None, weight_row=None, weight_bank=0):
        addr = len(expected) % acc_depth
        if vector is not None:
            expected.append((addr, model.matvec(vector, tiles[bank_tile[bank]])))
        bench.set("vector", _join(vector or [0] * rows, width))
        bench.set("issue", _pack(issue, valid=vector is not None, bank=bank, accumulate=0, addr=addr))
        bench.set("w_in", _join(weight_row if weight_row is not None else [0] * cols, width))
        bench.set("w_shift", int(weight_row is not None))
        bench.set("w_bank", weight_bank)
        await bench.tick()
        raw = bench.get("result")
        if (raw >> result["valid"][0]) & 1:
            results.append(((raw >> result["addr"][0]) & ((1 << result["addr"][1]) - 1),
                            read_lanes(raw >> result["data"][0], cols, acc_width)))

    def vector():
        return [model.operand(rng) for _ in range(rows)]

    await bench.reset()
    for row in tiles[0][::-1]:  # the last row first: it ends up in the bottom row
        await cycle(weight_row=row.tolist(), weight_bank=0)
    for r in range(rounds):
        bank, other = r % 2, (r + 1) % 2
        loads = [row.tolist() for row in tiles[r + 1][::-1]]
        sent = 0
        while sent < vectors or loads:
            row = loads.pop(0) if loads else None
            send = sent < vectors and rng.random() >= gap_probability
            await cycle(bank, vector() if send else None, row, other)
            sent += send
        bank_tile[other] = r + 1
        await cycle(other, vector())  # the switch, on the very next cycle
        for _ in range(rows + cols):  # let `bank` drain before the next round reloads it
            await cycle(other)
    for _ in range(rows + cols + 2):
        await cycle()
    if len(results) != len(expected):
        raise Mismatch(f"{len(results)} result vectors, expected {len(expected)}")
    for i, (got, want) in enumerate(zip(results, expected)):
        if got != want:
            raise Mismatch(f"result {i}: got address {got[0]} data {got[1]}, expected address {want[0]} "
                           f"data {want[1]}")
    return {"vectors": len(results)}


# ---------------------------------------------------------------------------------------------------------------
# Networks.

async def run_network_calls(bench, network, x, *, name: str, rng, gap_probability: float = 0.0,
                            stall_probability: float = 0.0, instr_gap_probability: float = 0.0):
    """Run ``network`` (a ``sparq.compiler.systolic.SystolicNetwork``) on the batch ``x`` with every device call on the
    RTL, each checked byte for byte against the golden model. Returns ``(logits, device calls, summed counters)``."""
    calls, totals, count = network.execute(x), dict.fromkeys(COUNTERS, 0), 0
    try:
        request = next(calls)
        while True:
            program, words = request
            expected = run_program(program.config, program.instructions, program.stream(words))
            await bench.reset()
            got = await _stream_program(bench, program, words, rng=rng, gap_probability=gap_probability,
                                        stall_probability=stall_probability,
                                        instr_gap_probability=instr_gap_probability)
            assert_words_equal(expected.view(np.uint8), got.view(np.uint8),
                               what=f"{name}, device call {count} ({program.meta['layers'][0]['name']}...), "
                                    "host_out bytes")
            for key, value in _counters(bench).items():
                totals[key] += value
            count += 1
            request = calls.send(got)
    except StopIteration as done:
        return done.value, count, totals


async def run_networks(bench, *, models: list, images: int, size: int, seed: int = 0, gap_probability: float = 0.0,
                       stall_probability: float = 0.0, instr_gap_probability: float = 0.0):
    """Compile each shipped model in ``models`` for the shared ``size x size`` configuration (calibrated on the
    digits training split), run it on the first ``images`` test images with every device call on the RTL, and
    check every output byte of every call against the golden model. Returns per model: int8 accuracy, float
    accuracy, calls made and the summed counters."""
    from sparq.compiler.datasets import load_digits_split
    from sparq.compiler.ir import forward
    from sparq.compiler.models import load_shipped
    from sparq.compiler.systolic import compile_network

    from ..systolic.stimulus import config_for
    x_train, _, x_test, y_test = load_digits_split()
    x, y = x_test[:images], y_test[:images]
    rng = random.Random(seed)
    results = {}
    for name in models:
        model = load_shipped(name)
        network = compile_network(model, x_train, config_for(size), name=name)
        logits, count, totals = await run_network_calls(
            bench, network, x, name=name, rng=rng, gap_probability=gap_probability,
            stall_probability=stall_probability, instr_gap_probability=instr_gap_probability)
        results[name] = {"int8_accuracy": float((logits.argmax(1) == y).mean()),
                         "float_accuracy": float((forward(model, x).argmax(1) == y).mean()),
                         "images": images, "device_calls": count, "batch": network.batch, **totals}
    return results

"""The activation unit: per-column requantization (int32 -> int8), optional ReLU and saturation."""

import math

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import (
    ACC_READ_LATENCY,
    ACTIVATE_PARAM_CYCLES,
    ACTIVATE_WRITE_LATENCY,
    MULTIPLIER_BITS,
    PARAM_READ_LATENCY,
    PARAM_WORDS,
    REQUANTIZE_LATENCY,
    SHIFT_BITS,
)

from ..common.dsp import RegisteredMultiplier
from .layouts import COUNT_BITS, activate_command_layout, param_layout, vector_layout

__all__ = ["Requantizer", "ActivationUnit"]


class Requantizer(wiring.Component):
    """One lane of ``sparq.formats.systolic.requantize``: ``x = acc + bias`` (exact), ``y = (x * multiplier +
    2**(shift-1)) >> shift`` (round to nearest, ties toward +inf; no rounding term when ``shift == 0``), then ReLU
    when ``relu``, then saturation to int8.

    Pipelined in :attr:`LATENCY` = ``sparq.formats.systolic.REQUANTIZE_LATENCY`` = 7 register stages, one result a
    cycle, each stage one adder or a few multiplexer levels deep:

    1. ``x = acc + bias``;
    2. and 3. the partial products ``x[0:16] * multiplier`` and ``x[16:32] * multiplier`` (16 x 16 unsigned, each a
       :class:`~sparq.hw.common.dsp.RegisteredMultiplier`: one DSP block with its operand and product registers);
    4. the product ``x * multiplier = lo + (mid << 16) - (x[32] ? multiplier << 32 : 0)``;
    5. with ``u = floor(product / 2**(shift-1))`` (``2 * product`` when ``shift == 0``): ``2 * product`` shifted by
       the high bits of ``shift`` (32, 16, 8), 17 bits kept (:func:`shift_right`);
    6. then by the low bits (4, 2, 1): the low 10 bits of ``u`` and whether ``u`` leaves ``[-512, 512)``;
    7. ``u`` saturated to 10 bits, rounded (``(u + 1) >> 1``; saturating first leaves the int8 result unchanged),
       ReLU, saturation to int8.

    ``multiplier``, ``shift`` and ``relu`` travel along with their operand, so every input may change every cycle.

    Ports
    -----
    acc : In(signed(acc_width))
    params : In(param_layout(acc_width))
        ``bias`` (signed), ``multiplier`` (unsigned 16 bits), ``shift`` (unsigned 6 bits, below 48).
    relu : In(1)
    y : Out(signed(8)), registered: the result for the inputs of cycle ``t`` is on ``y`` at ``t + LATENCY``.
    """

    LATENCY = REQUANTIZE_LATENCY

    def __init__(self, *, acc_width: int = 32):
        self.acc_width = acc_width
        super().__init__({
            "acc": In(signed(acc_width)),
            "params": In(param_layout(acc_width)),
            "relu": In(1),
            "y": Out(signed(8)),
        })

    def elaborate(self, platform):
        m = Module()
        assert self.LATENCY == 7 and RegisteredMultiplier.LATENCY == 2  # the stages below
        half = MULTIPLIER_BITS
        x_width = self.acc_width + 1
        width = x_width + MULTIPLIER_BITS  # |x * multiplier| < 2**(acc_width + MULTIPLIER_BITS)
        shift = _delayed(m, self.params.shift, 5, "shift")  # [k]: the shift of the operand in stage k + 1
        relu = _delayed(m, self.relu, 6, "relu")
        multiplier = _delayed(m, self.params.multiplier, 3, "multiplier")

        # Stage 1: the exact sum.
        x = Signal(signed(x_width))
        m.d.sync += x.eq(self.acc + self.params.bias)

        # Stages 2 and 3: partial products of the unsigned 16-bit pieces of x; the sign bit weighs -2**(2 * half).
        partial = []
        for k in range(math.ceil((x_width - 1) / half)):
            product_k = RegisteredMultiplier(unsigned(half), unsigned(MULTIPLIER_BITS))
            m.submodules[f"partial{k}"] = product_k
            m.d.comb += [product_k.a.eq(x[k * half:(k + 1) * half]), product_k.b.eq(multiplier[1])]
            partial.append(product_k.p)
        negative = _delayed(m, x[-1], 2, "negative")[-1]

        # Stage 4: the product.
        product = Signal(signed(width))
        total = sum(p << (k * half) for k, p in enumerate(partial))
        m.d.sync += product.eq(total - Mux(negative, multiplier[3] << (x_width - 1), 0))

        # Stages 5 and 6: the 10-bit window of u = 2 * product >> shift and whether u overflows it.
        sign = _delayed(m, product[-1], 2, "sign")
        high_shift, low_shift = shift[4][SHIFT_BITS // 2:], shift[5][:SHIFT_BITS // 2]
        steps = lambda value: [(1 << k, value[k]) for k in reversed(range(len(value)))]  # noqa: E731
        low_bits = 10 + (1 << (SHIFT_BITS // 2)) - 1
        coarse, coarse_overflow = Signal(low_bits), Signal()
        kept, dropped = shift_right([Const(0, 1), *product], sign[0],
                                    [(step << SHIFT_BITS // 2, bit) for step, bit in steps(high_shift)], low_bits)
        m.d.sync += [coarse.eq(Cat(*kept)), coarse_overflow.eq(dropped)]
        window, overflow = Signal(10), Signal()
        kept, dropped = shift_right(list(coarse), sign[1], steps(low_shift), 10)
        m.d.sync += [window.eq(Cat(*kept)), overflow.eq(coarse_overflow | dropped | (kept[9] ^ sign[1]))]

        # Stage 7: saturate u to 10 bits, round, ReLU, saturate to int8.
        u10, rounded = Signal(signed(10)), Signal(signed(10))
        m.d.comb += [u10.eq(Mux(overflow, Mux(sign[2], -512, 511), window.as_signed())),
                     rounded.eq((u10 + 1) >> 1)]
        clipped = Mux(rounded > 127, 127, Mux(rounded < -128, -128, rounded))
        m.d.sync += self.y.eq(Mux(relu[6] & rounded[-1], 0, clipped))
        return m


def shift_right(bits: list, sign, stages, keep: int):
    """Part of a barrel shifter ``u = value >> shift`` (arithmetic) whose result is only needed in its low bits:
    ``bits`` (least significant first, sign-extended with ``sign`` beyond them) shifted by the ``stages``
    (``(step, enable)``, largest step first), keeping ``keep`` bits. After each stage only the bits the later stages
    can still bring into the ``keep`` low bits are kept (``keep`` plus the later steps), so a stage of ``2**k`` costs
    ``keep + 2**k - 1`` 2:1 multiplexers instead of a full width. Returns ``(kept bits, whether a dropped bit differs
    from the sign)``: bit ``q`` of ``bits`` is dropped when ``q - shift >= keep``, which is taken from the input bits
    and the shift directly (the bits grouped by the largest shift that still drops them), not stage by stage, so
    that the flag is an OR tree beside the multiplexers rather than behind them."""
    current = list(bits)
    for k, (step, enable) in enumerate(stages):
        width = keep + sum(later for later, _ in stages[k + 1:])
        current += [sign] * max(0, width + step - len(current))
        assert len(current) == width + step  # no bit falls off the top unflagged: each is kept or dropped below
        current = [Mux(enable, current[j + step], current[j]) for j in range(width)]
    shift = sum(step * enable for step, enable in stages)
    shifts = {0}  # the shifts the stages can make
    for step, _ in stages:
        shifts |= {s + step for s in shifts}
    groups = {}  # the largest shift that drops bit q -> those bits
    for q in range(keep, len(bits)):
        groups.setdefault(max(s for s in shifts if s <= q - keep), []).append(bits[q] ^ sign)
    return current, Cat(*[(shift <= most) & Cat(*group).any() for most, group in groups.items()]).any()


def _delayed(m: Module, value, cycles: int, name: str) -> list:
    """``[value, value one cycle ago, ..., value cycles ago]``: a chain of ``cycles`` registers."""
    chain = [value]
    for k in range(1, cycles + 1):
        chain.append(Signal.like(value, name=f"{name}{k}"))
        m.d.sync += chain[k].eq(chain[k - 1])
    return chain


class ActivationUnit(wiring.Component):
    """Executes ACTIVATE commands: loads the ``PARAM_WORDS``-word parameter record at ``WB[wb]`` into per-column
    registers, then for ``i < count`` writes ``UB[ub + i] <- requantize(ACC[acc + i])`` with ``cols`` requantizers.

    Ports
    -----
    cmd : In(stream.Signature(activate_command_layout(..., max_wait)))
        Accepted when the unit is idle (``cmd.ready == ~busy``). ``wait``: the rows have landed in the accumulators
        for reads from ``wait`` cycles after the cycle after acceptance.
    busy : Out(1)
        High from the cycle after a command is accepted until its last UB write has happened (a register).
    wrote : Out(1)
        High from the cycle after the command's first UB write until the next command is accepted.
    phase : In(1)
        The unified buffer's bank phase (``sparq.formats.systolic.timing``, bank slots): the unit writes UB address
        ``x`` only in cycles where ``x % 2 != phase`` (the B slot).
    wb_addr : Out, wb_data : In -- a weight-buffer read port (the memory's 1-cycle latency; the unit registers the
        word once more, ``PARAM_READ_LATENCY`` = 2 in all).
    acc_addr : Out, acc_data : In -- an accumulator read port (``ACC_READ_LATENCY`` = 2 cycles).
    ub_addr, ub_data, ub_en : Out -- a unified-buffer write port.

    Timing (``sparq.formats.systolic.timing``): a command accepted at cycle ``t`` reads parameters at ``t+1 ..
    t+PARAM_WORDS``, each word in the column registers ``PARAM_READ_LATENCY`` + 1 cycles after its read; it reads the
    accumulators at ``r .. r+count-1`` from the first ``r >= t + 1 + max(ACTIVATE_PARAM_CYCLES - 1, wait)`` whose UB
    write, ``ACTIVATE_WRITE_LATENCY`` = 9 cycles later (the read, then the :attr:`Requantizer.LATENCY` = 7 stage
    requantizers), is in the B slot; ``busy`` until the last UB write.
    """

    def __init__(self, cols: int, acc_depth: int, ub_depth: int, wb_depth: int, *, max_wait: int,
                 count_bits: int = COUNT_BITS, acc_width: int = 32):
        self.cols, self.acc_width = cols, acc_width
        self.depths = dict(acc_depth=acc_depth, ub_depth=ub_depth, wb_depth=wb_depth)
        self.max_wait = max(max_wait, ACTIVATE_PARAM_CYCLES - 1)
        super().__init__({
            "cmd": In(stream.Signature(activate_command_layout(acc_depth, ub_depth, wb_depth, max_wait, count_bits))),
            "busy": Out(1),
            "wrote": Out(1),
            "phase": In(1),
            "wb_addr": Out(range(wb_depth)),
            "wb_data": In(vector_layout(cols)),
            "acc_addr": Out(range(acc_depth)),
            "acc_data": In(data.ArrayLayout(signed(acc_width), cols)),
            "ub_addr": Out(range(ub_depth)),
            "ub_data": Out(vector_layout(cols)),
            "ub_en": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        latency = ACTIVATE_WRITE_LATENCY
        assert latency == ACC_READ_LATENCY + Requantizer.LATENCY
        first_read = ACTIVATE_PARAM_CYCLES - 1  # cycles from the cycle after acceptance to the earliest read
        command = Signal(self.cmd.payload.shape())
        params = Signal(data.ArrayLayout(param_layout(self.acc_width), self.cols))
        param_raw = Signal(data.ArrayLayout(data.ArrayLayout(8, PARAM_WORDS), self.cols))  # bytes as they arrive
        param_index = Signal(range(PARAM_WORDS + 1))  # next parameter word to read
        param_reading = Signal(range(PARAM_WORDS + 1))  # 1 + index of the word read in this cycle, 0 if none
        hold = Signal(range(self.max_wait + 1))  # cycles until the rows have landed and the parameters are in
        left = Signal.like(self.cmd.payload.count)  # accumulator rows still to read
        acc_next = Signal(range(self.depths["acc_depth"]))  # the next accumulator row to read
        ub_next = Signal(range(self.depths["ub_depth"]))  # its UB destination
        loading, pending, streaming = Signal(), Signal(), Signal()
        reading = Signal()  # an accumulator row is read in this cycle
        # A streamed row's valid bit and UB address along the read and the requantizers: [k] k cycles after its
        # accumulator read; [latency] in the cycle of its UB write.
        valid = _delayed(m, reading, latency, "valid")[1:]
        ub = _delayed(m, ub_next, latency, "ub")[1:]

        # busy == loading | pending | streaming | any(valid), registered (it gates the controller's dispatch): its
        # next value from this cycle's state (loading implies pending: the first read waits for the parameters;
        # a read this cycle sets valid[0]; valid[-1] leaves).
        accept = self.cmd.valid & self.cmd.ready
        m.d.comb += self.cmd.ready.eq(~self.busy)
        m.d.sync += self.busy.eq(accept | pending | streaming | Cat(*valid[:-1]).any())
        # While idle, the command registers follow the payload (nothing reads them then), so that only the state
        # flags wait for a command's arrival: the last payload before acceptance is the command's.
        with m.If(~self.busy):
            payload = self.cmd.payload
            m.d.sync += [command.eq(payload), param_index.eq(0), left.eq(payload.count), acc_next.eq(payload.acc),
                         ub_next.eq(payload.ub), hold.eq(Mux(payload.wait > first_read, payload.wait, first_read))]
        with m.If(accept):
            m.d.sync += [loading.eq(1), pending.eq(1), self.wrote.eq(0)]

        # Parameter phase: read PARAM_WORDS words; word k carries byte k of every column's record. Each word is
        # registered once after the memory (PARAM_READ_LATENCY) before it fans out to the columns' registers.
        m.d.comb += [self.wb_addr.eq(command.wb + param_index), param_reading.eq(Mux(loading, param_index + 1, 0))]
        with m.If(loading):
            m.d.sync += param_index.eq(param_index + 1)
            with m.If(param_index == PARAM_WORDS - 1):
                m.d.sync += loading.eq(0)
        arriving = _delayed(m, param_reading, PARAM_READ_LATENCY, "param_arriving")[-1]
        word = _delayed(m, self.wb_data, PARAM_READ_LATENCY - 1, "param_word")[-1]
        for k in range(PARAM_WORDS):
            with m.If(arriving == k + 1):
                for lane in range(self.cols):
                    m.d.sync += param_raw[lane][k].eq(word[lane])
        for lane in range(self.cols):
            raw = param_raw[lane]
            m.d.comb += [
                params[lane].bias.eq(raw.as_value()[:32].as_signed()),
                params[lane].multiplier.eq(raw.as_value()[32:32 + MULTIPLIER_BITS]),
                params[lane].shift.eq(raw.as_value()[48:48 + SHIFT_BITS]),
            ]

        # Start: once the rows have landed and the parameters are in, in a cycle whose write `latency` later is in
        # the B slot (ub_next % 2 != phase then; the phase alternates every cycle).
        with m.If(pending & (hold != 0)):
            m.d.sync += hold.eq(hold - 1)
        start = pending & (hold == 0) & (ub_next[0] == (self.phase ^ (latency & 1) ^ 1))

        # Streaming phase: one accumulator row a cycle, requantized, written back to the UB `latency` cycles later.
        m.d.comb += [reading.eq(streaming | start), self.acc_addr.eq(acc_next)]
        with m.If(reading):
            m.d.sync += [left.eq(left - 1), acc_next.eq(acc_next + 1), ub_next.eq(ub_next + 1), pending.eq(0),
                         streaming.eq(left != 1)]
        for lane in range(self.cols):
            requantizer = Requantizer(acc_width=self.acc_width)
            m.submodules[f"requantizer{lane}"] = requantizer
            m.d.comb += [
                requantizer.acc.eq(self.acc_data[lane]),
                requantizer.params.eq(params[lane]),
                requantizer.relu.eq(command.relu),
                self.ub_data[lane].eq(requantizer.y),
            ]
        m.d.comb += [self.ub_addr.eq(ub[-1]), self.ub_en.eq(valid[-1])]
        with m.If(valid[-1]):
            m.d.sync += self.wrote.eq(1)
        return m

"""The Winograd F(2x2, 3x3) transform units: ``V = B^T d B`` in front of the array and ``Y = A^T M A`` behind it,
adds and subtracts only (``sparq.formats.systolic``, Winograd).

Both are one parametric block, :class:`TileTransform`: it takes a 4x4 tile of vectors (``lanes`` lanes each, one
word a cycle, row-major) and gives ``L X L^T`` (``L`` a small matrix of -1 / 0 / +1) one word a cycle, row-major.

Bit growth, per lane: an output is a sum of ``t`` input terms, ``t`` the number of non-zero ``L[a, i] L[b, j]``
(:func:`terms`); exact in ``in_width + ceil(log2(t))`` bits (:func:`exact_width`).

* Input transform (``B^T``, 2 non-zeros a row, so 4 terms): int8 in, **10 bits** out, exact (``-512 .. 510``).
* Output transform (``A^T``, 3 non-zeros a row, so 9 terms): int32 in, int32 out **with wrap-around** -- exact
  growth would be 36 bits, but the accumulators already wrap in int32 and every step from the array to here is
  linear with integer coefficients, so the result is the true ``Y`` modulo ``2**32``, which is the true ``Y``
  whenever it fits int32. The compiler guarantees that (``sparq.compiler.systolic.winograd``: ``|Y| = 4 |conv|`` is bounded by the
  weights).
"""

import math

import numpy as np
from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from sparq.formats.systolic import (
    ACC_READ_LATENCY,
    ACCUMULATE_LATENCY,
    UB_READ_LATENCY,
    WINOGRAD_AT,
    WINOGRAD_BT,
    WINOGRAD_V_BITS,
)

from .layouts import COUNT_BITS, accumulator_write_layout, vector_layout

__all__ = ["terms", "exact_width", "TileTransform", "InputTransform", "OutputTransform", "transform_command_layout",
           "WinogradTransforms"]


def terms(matrix) -> int:
    """The largest number of input terms in one output of ``L X L^T``."""
    nonzero = (np.asarray(matrix) != 0).sum(axis=1)
    return int(nonzero.max()) ** 2


def exact_width(matrix, in_width: int) -> int:
    """Signed width that holds every output of ``L X L^T`` for ``in_width``-bit signed inputs."""
    return in_width + math.ceil(math.log2(terms(matrix)))


class TileTransform(wiring.Component):
    """``Y = L X L^T`` per lane, ``X`` a 4x4 tile of ``lanes``-lane vectors and ``L`` an ``n x 4`` matrix of
    -1 / 0 / +1.

    Ports
    -----
    i : In(stream.Signature(ArrayLayout(signed(in_width), lanes)))
        ``X[r, c]`` in row-major order, 16 words a tile.
    o : Out(stream.Signature(ArrayLayout(signed(out_width), lanes)))
        ``Y[a, b]`` in row-major order, ``n * n`` words a tile, truncated to ``out_width`` bits (two's complement:
        wrap-around when ``out_width < exact_width(L, in_width)``).

    Timing: a tile is collected in a fill register bank and handed to an output bank in the cycle after its 16th
    word (the bank switch also takes the next tile's first word); the output bank emits one word a cycle while
    ``o.ready``. With ``o.ready`` held high ``i.ready`` is always high: one input word a cycle, sustained. First
    output word: 2 cycles after the tile's last input word (latency), then ``n * n`` consecutive words.
    """

    def __init__(self, matrix, lanes: int, in_width: int, out_width: int):
        matrix = np.asarray(matrix, dtype=np.int64)
        if matrix.ndim != 2 or matrix.shape[1] != 4 or not np.isin(matrix, (-1, 0, 1)).all():
            raise ValueError(f"TileTransform takes an n x 4 matrix of -1 / 0 / +1, got {matrix.tolist()}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"TileTransform lanes must be a positive integer, not {lanes!r}")
        if matrix.shape[0] ** 2 > 16:
            raise ValueError("TileTransform emits at most as many words as it takes (n <= 4)")
        self.matrix, self.lanes, self.in_width, self.out_width = matrix, lanes, in_width, out_width
        self.outputs = matrix.shape[0] ** 2
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(signed(in_width), lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(out_width), lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        word = self.i.payload.shape()
        n = self.matrix.shape[0]
        fill = [Signal(word, name=f"fill{k}") for k in range(16)]
        tile = [Signal(word, name=f"tile{k}") for k in range(16)]
        filled = Signal(range(17))
        emitting = Signal()
        index = Signal(range(self.outputs))

        last_out = self.o.valid & self.o.ready & (index == self.outputs - 1)
        switch = (filled == 16) & (~emitting | last_out)
        m.d.comb += self.i.ready.eq((filled != 16) | switch)
        take = self.i.valid & self.i.ready
        position = Signal(range(17))  # where the word taken now goes: the next tile starts over at a switch
        m.d.comb += position.eq(Mux(switch, 0, filled))
        for k in range(16):
            with m.If(take & (position == k)):
                m.d.sync += fill[k].eq(self.i.payload)
        with m.If(switch):
            m.d.sync += [tile[k].eq(fill[k]) for k in range(16)]
            m.d.sync += filled.eq(take)
        with m.Elif(take):
            m.d.sync += filled.eq(filled + 1)

        # Output: Y[a, b] = sum_ij L[a, i] L[b, j] X[i, j], selected by the output index.
        m.d.comb += self.o.valid.eq(emitting)
        wide = signed(exact_width(self.matrix, self.in_width))
        with m.Switch(index):
            for a in range(n):
                for b in range(n):
                    with m.Case(a * n + b):
                        for lane in range(self.lanes):
                            total = 0
                            for i in range(4):
                                for j in range(4):
                                    sign = int(self.matrix[a, i] * self.matrix[b, j])
                                    if sign:
                                        term = tile[4 * i + j][lane].as_signed()
                                        total = total + term if sign > 0 else total - term
                            exact = Signal(wide, name=f"y{a}{b}_lane{lane}")
                            m.d.comb += [exact.eq(total), self.o.payload[lane].eq(exact)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += index.eq(index + 1)
            with m.If(index == self.outputs - 1):
                m.d.sync += [index.eq(0), emitting.eq(0)]
        with m.If(switch):
            m.d.sync += [emitting.eq(1), index.eq(0)]
        return m


class InputTransform(TileTransform):
    """``V = B^T d B``: int8 tiles in, exact 10-bit (``sparq.formats.systolic.WINOGRAD_V_BITS``) words out, 16 a tile.
    Ports and timing: :class:`TileTransform`."""

    def __init__(self, lanes: int):
        assert exact_width(WINOGRAD_BT, 8) == WINOGRAD_V_BITS
        super().__init__(WINOGRAD_BT, lanes, 8, WINOGRAD_V_BITS)


class OutputTransform(TileTransform):
    """``Y = A^T M A``: int32 accumulator tiles in, 4 int32 words out a tile, wrap-around (see the module
    docstring). Ports and timing: :class:`TileTransform`."""

    def __init__(self, lanes: int, acc_width: int = 32):
        super().__init__(WINOGRAD_AT, lanes, acc_width, acc_width)


def transform_command_layout(config) -> data.StructLayout:
    """A TRANSFORM_IN (``output`` = 0) or TRANSFORM_OUT (``output`` = 1) as :class:`WinogradTransforms` takes it."""
    return data.StructLayout({"output": 1, "ub": range(config.ub_depth), "tb": range(config.tb_depth),
                              "acc": range(config.acc_depth), "count": COUNT_BITS})


class WinogradTransforms(wiring.Component):
    """Executes TRANSFORM_IN and TRANSFORM_OUT (``sparq.formats.systolic``): an :class:`InputTransform` fed from the
    unified buffer and drained into the transform buffer, and an :class:`OutputTransform` fed from the accumulators
    and drained back into them, with their address generators.

    Both use one linear and one strided address sequence over ``16 * count`` words: TRANSFORM_IN reads the UB
    linearly (``ub + i``) and writes the TB strided (``tb + e * count + p``, ``e`` the position within tile ``p``);
    TRANSFORM_OUT reads the accumulators strided (``acc + e * count + p``) and writes ``4 * count`` words linearly
    from ``acc + 16 * count``. Reads go out one a cycle from the cycle after the command; the transform's outputs
    are written as they come (its input is never refused, see :class:`TileTransform`).

    Ports
    -----
    cmd : In(stream.Signature(transform_command_layout(config)))
        Taken when idle (``ready = ~busy``).
    busy : Out(1)
        From the cycle after a command until its last write has landed (for TRANSFORM_OUT: until an accumulator
        read sees it, ``ACCUMULATE_LATENCY`` cycles after ``acc_write``).
    ub_read_addr, ub_read_en : Out
        The UB read port (the top level gives it to this unit while ``ub_read_en``); ``ub_data`` is the word read
        ``UB_READ_LATENCY`` = 2 cycles earlier.
    tb_write_addr, tb_write_data, tb_write_en : Out
        The transform buffer's write port.
    acc_read_addr, acc_read_en : Out, acc_data : In
        The accumulators' read port, as for the UB (``ACC_READ_LATENCY`` = 2 cycles).
    acc_write : Out(accumulator_write_layout(cols, acc_depth))
        Overwrites (``accumulate`` = 0) of output words into the accumulators.
    """

    def __init__(self, config):
        self.config = c = config
        super().__init__({
            "cmd": In(stream.Signature(transform_command_layout(c))),
            "busy": Out(1),
            "ub_read_addr": Out(range(c.ub_depth)),
            "ub_read_en": Out(1),
            "ub_data": In(vector_layout(c.lanes)),
            "tb_write_addr": Out(range(c.tb_depth)),
            "tb_write_data": Out(vector_layout(c.lanes, WINOGRAD_V_BITS)),
            "tb_write_en": Out(1),
            "acc_read_addr": Out(range(c.acc_depth)),
            "acc_read_en": Out(1),
            "acc_data": In(data.ArrayLayout(signed(32), c.cols)),
            "acc_write": Out(accumulator_write_layout(c.cols, c.acc_depth)),
        })

    def elaborate(self, platform):
        m = Module()
        c = self.config
        m.submodules.input_transform = xin = InputTransform(c.lanes)
        m.submodules.output_transform = xout = OutputTransform(c.cols)
        output = Signal()
        count = Signal(COUNT_BITS)
        depth = max(c.ub_depth, c.tb_depth, c.acc_depth, 2)
        # Linear sequence: UB reads (in) / accumulator writes (out). Strided: TB writes (in) / accumulator reads (out).
        linear = Signal(range(depth))
        linear_left = Signal(range(16 << COUNT_BITS))  # 16 * count
        strided_base = Signal(range(depth))
        strided_row = Signal(range(16 << COUNT_BITS))  # e * count
        strided_tile = Signal(COUNT_BITS)  # p
        strided_e = Signal(4)
        strided_left = Signal(range(16 << COUNT_BITS))
        landing = Signal(range(ACCUMULATE_LATENCY))  # TRANSFORM_OUT: cycles until the last write has landed
        strided = strided_base + strided_row + strided_tile

        reading = Signal()
        m.d.comb += reading.eq(Mux(output, strided_left, linear_left) != 0)
        assert UB_READ_LATENCY == ACC_READ_LATENCY
        read_valid = reading  # a read's word arrives UB_READ_LATENCY cycles later
        for stage in range(UB_READ_LATENCY):
            delayed = Signal(name=f"read_valid{stage}")
            m.d.sync += delayed.eq(read_valid)
            read_valid = delayed
        step_strided = Signal()
        step_linear = Signal()

        m.d.comb += [
            self.busy.eq((linear_left != 0) | (strided_left != 0) | (landing != 0)),
            self.cmd.ready.eq(~self.busy),
            # TRANSFORM_IN: UB -> input transform -> TB.
            self.ub_read_addr.eq(linear),
            self.ub_read_en.eq(reading & ~output),
            xin.i.valid.eq(read_valid & ~output),
            xin.i.payload.eq(self.ub_data),
            xin.o.ready.eq(1),
            self.tb_write_addr.eq(strided),
            self.tb_write_data.eq(xin.o.payload),
            self.tb_write_en.eq(xin.o.valid),
            # TRANSFORM_OUT: accumulators -> output transform -> accumulators.
            self.acc_read_addr.eq(strided),
            self.acc_read_en.eq(reading & output),
            xout.i.valid.eq(read_valid & output),
            xout.i.payload.eq(self.acc_data),
            xout.o.ready.eq(1),
            self.acc_write.valid.eq(xout.o.valid),
            self.acc_write.accumulate.eq(0),
            self.acc_write.addr.eq(linear),
            self.acc_write.data.eq(xout.o.payload),
            step_linear.eq(Mux(output, xout.o.valid, reading)),
            step_strided.eq(Mux(output, reading, xin.o.valid)),
        ]
        with m.If(step_linear):
            m.d.sync += [linear.eq(linear + 1), linear_left.eq(linear_left - 1)]
        with m.If(step_strided):
            m.d.sync += [strided_left.eq(strided_left - 1), strided_e.eq(strided_e + 1),
                         strided_row.eq(strided_row + count)]
            with m.If(strided_e == 15):
                m.d.sync += [strided_row.eq(0), strided_tile.eq(strided_tile + 1)]
        with m.If(output & xout.o.valid & (linear_left == 1)):
            m.d.sync += landing.eq(ACCUMULATE_LATENCY - 1)
        with m.Elif(landing != 0):
            m.d.sync += landing.eq(landing - 1)

        cmd = self.cmd.payload
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += [
                output.eq(cmd.output),
                count.eq(cmd.count),
                linear.eq(Mux(cmd.output, cmd.acc + 16 * cmd.count, cmd.ub)),
                linear_left.eq(Mux(cmd.output, 4 * cmd.count, 16 * cmd.count)),
                strided_base.eq(Mux(cmd.output, cmd.acc, cmd.tb)),
                strided_row.eq(0),
                strided_tile.eq(0),
                strided_e.eq(0),
                strided_left.eq(16 * cmd.count),
            ]
        return m


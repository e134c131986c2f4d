"""Bit-exact numpy execution of ``sparq.formats.systolic`` programs: the reference the RTL is checked against.

Integer semantics (the format's, restated): int8 x int8 products, exact; sums down the array and into the
accumulators in int32 with two's-complement wrap-around (computed here in int64, then wrapped, which is the same
because wrap-around addition is associative); ACTIVATE computes ``acc + bias`` exactly and then
``sparq.formats.systolic.requantize`` (round to nearest with ties toward +infinity, optional ReLU, saturation to int8).

Winograd builds (``config.winograd``) add the transform buffer and the instructions TRANSFORM_IN, TRANSFORM_OUT,
LOAD_WEIGHTS ``WIDE`` and MATMUL ``FROM_TB`` (``sparq.formats.systolic``, Winograd): transforms are exact in int64 (inputs)
and wrapped to int32 (outputs), wide weights wrap to ``WINOGRAD_U_BITS`` bits; a program using them on a build
without the Winograd datapath is refused.

Instructions execute one after another; the hardware's overlap of units is invisible here by design (the
controller's interlocks make it so). Out-of-range addresses raise :class:`~sparq.formats.systolic.FormatError`, and so
does reading a UB, WB or accumulator word the program has not written: memories are not cleared by reset, so such
a program's result would depend on whatever ran before.
"""

import numpy as np

from sparq.formats.systolic import (
    PARAM_WORDS,
    Flag,
    FormatError,
    Opcode,
    SystolicConfig,
    requantize,
    unpack_params,
    unpack_wide_weight_tile,
    winograd_input_transform,
    winograd_output_transform,
)

_WINOGRAD_ONLY = (Opcode.TRANSFORM_IN, Opcode.TRANSFORM_OUT)

__all__ = ["wrap32", "SystolicGolden", "run_program", "run_network"]


def wrap32(x):
    """Wrap int64 values to int32, two's complement."""
    return ((np.asarray(x, dtype=np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


class SystolicGolden:
    """The architectural state (UB, WB, accumulators, the two weight banks) and an instruction interpreter."""

    def __init__(self, config: SystolicConfig):
        self.config = c = config
        self.ub = np.zeros((c.ub_depth, c.lanes), dtype=np.int8)
        self.wb = np.zeros((c.wb_depth, c.lanes), dtype=np.int8)
        self.acc = np.zeros((c.acc_depth, c.cols), dtype=np.int64)
        self.banks = np.zeros((2, c.rows, c.cols), dtype=np.int64)
        tb_depth = c.tb_depth if c.winograd else 0
        self.tb = np.zeros((tb_depth, c.lanes), dtype=np.int64)
        self.written = {"UB": np.zeros(c.ub_depth, bool), "WB": np.zeros(c.wb_depth, bool),
                        "ACC": np.zeros(c.acc_depth, bool), "TB": np.zeros(tb_depth, bool)}
        self.halted = False
        self.macs = 0  # array MAC slots used: rows * cols per MATMUL row

    def _range(self, ins, memory, start, count, *, write=False):
        depth = len(self.written[memory])
        if start + count > depth:
            raise FormatError(f"{ins.opcode.name} touches {memory} words {start}..{start + count - 1} but the "
                              f"{memory} has {depth} words; recompile for this configuration or raise "
                              f"{memory.lower()}_depth")
        span = slice(start, start + count)
        written = self.written[memory]
        if write:
            written[span] = True
        elif not written[span].all():
            first = start + int(np.flatnonzero(~written[span])[0])
            raise FormatError(f"{ins.opcode.name} reads {memory} word {first}, which the program never wrote")
        return span

    def execute(self, ins, host_in, host_out):
        """Execute one instruction; ``host_in`` is an iterator of words, ``host_out`` a list to append to."""
        if self.halted:
            raise FormatError(f"{ins.opcode.name} after HALT")
        op, n = ins.opcode, ins.count
        if not self.config.winograd and (op in _WINOGRAD_ONLY or ins.flags & (Flag.FROM_TB | Flag.WIDE)):
            raise FormatError(f"{ins.opcode.name} {ins.flags!r} needs a Winograd build (SystolicConfig.winograd=True); "
                              "recompile without winograd=True or build the accelerator with it")
        if op in (Opcode.READ_HOST, Opcode.READ_WEIGHTS):
            memory, start = (self.ub, ins.ub) if op == Opcode.READ_HOST else (self.wb, ins.wb)
            span = self._range(ins, "UB" if op == Opcode.READ_HOST else "WB", start, n, write=True)
            try:
                memory[span] = [next(host_in) for _ in range(n)]
            except StopIteration:
                raise FormatError(f"{op.name} reads past the end of the host input") from None
        elif op == Opcode.WRITE_HOST:
            host_out.extend(self.ub[self._range(ins, "UB", ins.ub, n)].copy())
        elif op == Opcode.LOAD_WEIGHTS:
            rows, bank = self.config.rows, int(ins.flags & Flag.BANK)
            if ins.flags & Flag.WIDE:
                self.banks[bank] = unpack_wide_weight_tile(self.wb[self._range(ins, "WB", ins.wb, 2 * rows)])
            else:
                self.banks[bank] = self.wb[self._range(ins, "WB", ins.wb, rows), :self.config.cols]
        elif op == Opcode.MATMUL:
            if ins.flags & Flag.FROM_TB:
                a = self.tb[self._range(ins, "TB", ins.tb, n), :self.config.rows]
            else:
                a = self.ub[self._range(ins, "UB", ins.ub, n), :self.config.rows].astype(np.int64)
            accumulate = bool(ins.flags & Flag.ACCUMULATE)
            span = self._range(ins, "ACC", ins.acc, n, write=not accumulate)
            product = a @ self.banks[int(ins.flags & Flag.BANK)]
            self.acc[span] = wrap32(product + (self.acc[span] if accumulate else 0))
            self.macs += n * self.config.rows * self.config.cols
        elif op == Opcode.ACTIVATE:
            bias, multiplier, shift = unpack_params(self.wb[self._range(ins, "WB", ins.wb, PARAM_WORDS)])
            acc = self.acc[self._range(ins, "ACC", ins.acc, n)]
            self.ub[self._range(ins, "UB", ins.ub, n, write=True), :self.config.cols] = requantize(
                acc, bias, multiplier, shift, bool(ins.flags & Flag.RELU))
        elif op == Opcode.TRANSFORM_IN:
            d = self.ub[self._range(ins, "UB", ins.ub, 16 * n)].astype(np.int64).reshape(n, 4, 4, -1)
            v = winograd_input_transform(d.transpose(0, 3, 1, 2))  # (tile, lane, 4, 4)
            self.tb[self._range(ins, "TB", ins.tb, 16 * n, write=True)] = v.reshape(n, -1, 16).transpose(2, 0, 1) \
                .reshape(16 * n, -1)
        elif op == Opcode.TRANSFORM_OUT:
            m = self.acc[self._range(ins, "ACC", ins.acc, 16 * n)].reshape(4, 4, n, -1)
            y = wrap32(winograd_output_transform(m.transpose(2, 3, 0, 1)))  # (tile, lane, 2, 2)
            self.acc[self._range(ins, "ACC", ins.acc + 16 * n, 4 * n, write=True)] = \
                y.reshape(n, -1, 4).transpose(0, 2, 1).reshape(4 * n, -1)
        elif op == Opcode.HALT:
            self.halted = True


def run_program(config: SystolicConfig, instructions, host_in_words, *, state: SystolicGolden = None):
    """Execute ``instructions`` on ``state`` (a fresh one by default) reading ``host_in_words`` in order; return the
    ``host_out`` words as an ``(n, lanes)`` int8 array. Every host input word must be consumed."""
    state = state or SystolicGolden(config)
    words = np.asarray(host_in_words, dtype=np.int8).reshape(-1, config.lanes)
    source = iter(words)
    out = []
    for ins in instructions:
        state.execute(ins, source, out)
    if next(source, None) is not None:
        raise FormatError(f"the program left host input words unread ({len(words)} given)")
    return np.array(out, dtype=np.int8).reshape(-1, config.lanes)


def run_network(network, images):
    """Run a ``sparq.compiler.systolic.SystolicNetwork`` on float ``images``, every device call on the golden model;
    return ``(int8 logits, list of (program, input words, output words) of each call)``."""
    calls, log = network.execute(images), []
    try:
        request = next(calls)
        while True:
            program, words = request
            out = run_program(program.config, program.instructions, program.stream(words))
            log.append((program, words, out))
            request = calls.send(out)
    except StopIteration as done:
        return done.value, log

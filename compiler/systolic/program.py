"""The program builder of the systolic back end: :class:`GemmLayer` (one int8 GEMM with its requantization) and
:class:`ProgramBuilder`, which places weight tiles and parameter records in the weight buffer, emits the steps of a
GEMM and schedules the host transfers among them; :class:`CapacityError` when a program does not fit the
configuration."""

import math
from dataclasses import dataclass, field

import numpy as np

from sparq.formats.systolic import (
    MAX_SHIFT,
    Flag,
    Instruction,
    Opcode,
    SystolicConfig,
    SystolicProgram,
    Timeline,
    pack_params,
    pack_weight_tile,
)

from ..errors import CompileError

__all__ = ["CapacityError", "GemmLayer", "need", "PIECE_ROWS", "Item", "ProgramBuilder"]


class CapacityError(CompileError):
    """A program does not fit the hardware configuration; the message names the memory and the parameter to raise."""


@dataclass
class GemmLayer:
    """One int8 GEMM with its requantization: ``Y = requantize(X @ weight + bias, multiplier, shift, relu)``.

    ``weight`` is int8 ``K x N`` (inputs by outputs); ``bias`` int32, ``multiplier`` uint16 and ``shift`` per output
    column (length ``N``).
    """
    name: str
    weight: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    relu: bool = False

    def __post_init__(self):
        self.weight = np.asarray(self.weight)
        if self.weight.ndim != 2 or self.weight.dtype != np.int8:
            raise CompileError(f"layer {self.name!r}: weight must be a 2-D int8 array (K x N), got "
                               f"{self.weight.dtype} {self.weight.shape}")
        n = self.weight.shape[1]
        for what in ("bias", "multiplier", "shift"):
            value = np.broadcast_to(np.asarray(getattr(self, what), dtype=np.int64), (n,)).copy()
            setattr(self, what, value)
        too_far = (self.shift >= MAX_SHIFT) & (self.multiplier != 0)
        if too_far.any():
            raise CompileError(f"layer {self.name!r}: requantization shift {int(self.shift[too_far].max())} is beyond "
                               f"the hardware's {MAX_SHIFT - 1}; the output scale is far too large for this layer "
                               "(recalibrate)")

    @property
    def k(self):
        return self.weight.shape[0]

    @property
    def n(self):
        return self.weight.shape[1]


def need(config, memory, parameter, needed, detail):
    """Raise :class:`CapacityError` unless ``needed`` words fit the memory that ``config.<parameter>`` sizes."""
    available = getattr(config, parameter)
    if needed > available:
        raise CapacityError(f"the {memory} needs {needed} words ({detail}) but {parameter}={available}: short by "
                            f"{needed - available}; raise {parameter} to at least {needed}")


PIECE_ROWS = (8, 32)
"""The first and the largest piece (rows) a MATMUL on host input is cut into, so that it follows the input as it
arrives: small first pieces start the array early, small pieces throughout keep it one piece behind the host when
the host is the bottleneck, and the last piece is all that remains to compute after the last input word."""


@dataclass(eq=False)
class Item:
    """An instruction of a program under construction. A *step* (MATMUL, ACTIVATE, TRANSFORM_*, SYNC, HALT) keeps
    its place in the compute order; a *floating* item (a host read, a LOAD_WEIGHTS, a WRITE_HOST) may go anywhere
    after the step it was emitted behind (``release``, an index into the steps; -1: from the start) and before the
    first step that ``needs`` it (``needed_by``; ``None``: before HALT)."""
    instruction: Instruction
    comment: str
    needs: tuple = ()
    release: int = -1
    needed_by: int = None


@dataclass
class ProgramBuilder:
    """Accumulates the steps and floating items of one program and its weight image, and schedules them into one
    instruction stream (:meth:`schedule`).

    The steps keep their order. Floating items keep their order among their kind (host reads in the order the
    steps first need them, loads and writes in the order emitted); each goes as early as it can within its window
    without delaying the next step (the machine model, :class:`sparq.formats.systolic.timing.Timeline`, decides),
    and otherwise right before the step that needs it. So weights for the next tiles and inputs for the next rows
    stream in while the array computes, the next weight tile shifts in as soon as its bank is free, and outputs
    stream out behind the activation unit.
    """
    config: SystolicConfig
    steps: list = field(default_factory=list)
    reads: list = field(default_factory=list)
    loads: list = field(default_factory=list)
    writes: list = field(default_factory=list)
    weight_chunks: list = field(default_factory=list)
    wb_used: int = 0
    image_used: int = 0
    next_bank: int = 0
    next_region: int = 0

    def emit(self, opcode, comment=None, *, needs=(), **fields):
        """Append a step; ``needs`` are the floating items that must come before it."""
        pending = list(needs)
        while pending:  # the step needs them and what they need
            item = pending.pop()
            if item.needed_by is None:
                item.needed_by = len(self.steps)
                pending += item.needs
        self.steps.append(Item(Instruction(opcode, **fields), comment, tuple(needs)))

    def _floating(self, kind, opcode, comment, *, needs=(), release=True, **fields) -> Item:
        item = Item(Instruction(opcode, **fields), comment, tuple(needs), len(self.steps) - 1 if release else -1)
        getattr(self, kind).append(item)
        return item

    def load(self, comment, *, needs=(), **fields) -> Item:
        """A LOAD_WEIGHTS of ``fields`` floating from behind the last step emitted so far to the first step that
        needs it (which must come after the last MATMUL on its bank)."""
        return self._floating("loads", Opcode.LOAD_WEIGHTS, comment, needs=needs, **fields)

    def write(self, comment, **fields) -> Item:
        """A WRITE_HOST of ``fields`` after the last step emitted so far."""
        return self._floating("writes", Opcode.WRITE_HOST, comment, **fields)

    def weights(self, words, what) -> tuple:
        """Place ``words`` in the weight buffer and the weight image; return their WB address and their read."""
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        address = self.wb_used
        need(self.config, "weight buffer", "wb_depth", address + len(words), f"{what} and everything before it")
        read = self._floating("reads", Opcode.READ_WEIGHTS, f"{what}: {len(words)} words", release=False, wb=address,
                              count=len(words), src=self.image_used)
        self.weight_chunks.append(words)
        self.wb_used += len(words)
        self.image_used += len(words)
        return address, read

    def read_input(self, comment, *, ub, count, src) -> Item:
        """A READ_HOST of run-time input words ``src .. src + count`` into ``UB[ub ..]``."""
        return self._floating("reads", Opcode.READ_HOST, comment, release=False, ub=ub, count=count, src=src)

    def place_layer(self, layer: GemmLayer):
        """Put ``layer``'s weight tiles and parameter records in the weight buffer, one read each; return
        ``{(n, k): (address, read)}`` of the tiles and ``{n: (address, read)}`` of the records."""
        c = self.config
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        tiles = {(n, k): self.weights(pack_weight_tile(layer.weight[k * c.rows:(k + 1) * c.rows,
                                                                    n * c.cols:(n + 1) * c.cols], c.rows, c.cols),
                                      f"layer {layer.name}: weight tile N{n} K{k}")
                 for n in range(nt) for k in range(kt)}
        records = {n: self.weights(pack_params(layer.bias[n * c.cols:(n + 1) * c.cols],
                                               layer.multiplier[n * c.cols:(n + 1) * c.cols],
                                               layer.shift[n * c.cols:(n + 1) * c.cols], c.lanes),
                                   f"layer {layer.name}: parameter record N{n}")
                   for n in range(nt)}
        return tiles, records

    def gemm(self, layer: GemmLayer, m: int, x_ub: int, y_ub: int, placed, *, from_host: bool = False,
             to_host: bool = False):
        """Emit the steps of ``layer`` on ``m`` rows at UB ``x_ub`` (KT blocks), writing UB ``y_ub``.

        For each output tile and chunk of rows (at most half the accumulators, two regions alternated): for each K
        tile a MATMUL on the bank its weight tile was loaded into, then the ACTIVATE. Each load goes into the other
        bank, emitted behind the first MATMUL on the current bank (so it floats from there to its MATMUL). The last
        output tile written to the host tapers its chunks (:func:`_chunks`), so that what is left to do after the
        last MATMUL is one small ACTIVATE and WRITE_HOST.

        ``from_host``: the input is the run-time input, read piece by piece (word ``k * m + row`` of the input is
        row ``row`` of block ``k``, at ``UB[x_ub + k * m + row]``) as the first output tile needs it, its MATMULs cut
        into the same pieces (:data:`PIECE_ROWS`). ``to_host``: each output tile is written to the host after its
        ACTIVATE (the output words in order).
        """
        c = self.config
        tiles, records = placed
        kt, nt = math.ceil(layer.k / c.rows), math.ceil(layer.n / c.cols)
        region = max(1, min(m, c.acc_depth // 2))
        groups = [(n, m0, rows) for n in range(nt)
                  for m0, rows in _chunks(m, region, taper=to_host and n == nt - 1 and kt > 1)]
        load = None  # the load of the next tile: (bank, item)
        for g, (n, m0, rows) in enumerate(groups):
            acc = (self.next_region % 2) * region if c.acc_depth >= 2 * region else 0
            self.next_region += 1
            load = load or self._load(layer, tiles, n, 0)
            for k in range(kt):
                (bank, loaded), load = load, None
                flags = Flag(bank) | (Flag.ACCUMULATE if k else Flag(0))
                for r0, r1 in _pieces(rows) if from_host and n == 0 else [(0, rows)]:
                    needs = (loaded,) if r0 == 0 else ()
                    if from_host and n == 0:
                        needs += (self.read_input(f"input: block {k}, rows {m0 + r0}..{m0 + r1 - 1}",
                                                  ub=x_ub + k * m + m0 + r0, count=r1 - r0, src=k * m + m0 + r0),)
                    self.emit(Opcode.MATMUL, f"{layer.name}: rows {m0 + r0}..{m0 + r1 - 1}, K tile {k}, N tile {n}",
                              needs=needs, flags=flags, ub=x_ub + k * m + m0 + r0, acc=acc + r0, count=r1 - r0)
                    if r0 == 0 and (k + 1 < kt or g + 1 < len(groups)):
                        load = self._load(layer, tiles, *((n, k + 1) if k + 1 < kt else (groups[g + 1][0], 0)))
            address, read = records[n]
            self.emit(Opcode.ACTIVATE, f"{layer.name}: N tile {n}, rows {m0}..{m0 + rows - 1}"
                      + (" + ReLU" if layer.relu else ""), needs=(read,), flags=Flag.RELU if layer.relu else Flag(0),
                      acc=acc, ub=y_ub + n * m + m0, wb=address, count=rows)
            if to_host:
                self.write(f"output: N tile {n}, rows {m0}..{m0 + rows - 1}", ub=y_ub + n * m + m0, count=rows)

    def _load(self, layer, tiles, n, k) -> tuple:
        """``(bank, item)``: a floating LOAD_WEIGHTS of tile ``(n, k)`` into the next bank."""
        bank = self.next_bank
        self.next_bank ^= 1
        address, read = tiles[(n, k)]
        return bank, self.load(f"{layer.name}: tile N{n} K{k} -> bank {bank}", needs=(read,), flags=Flag(bank),
                               wb=address)

    def schedule(self) -> tuple:
        """``(instructions, comments)``: the steps in order with the floating items placed among them (see the
        class docstring)."""
        timeline = Timeline(self.config, history=False)
        last = len(self.steps)
        queues = [self.loads, sorted(self.reads, key=lambda r: last if r.needed_by is None else r.needed_by),
                  self.writes]
        queue_of = {id(item): queue for queue in queues for item in queue}
        position = {id(item): k for queue in queues for k, item in enumerate(queue)}
        done = {id(queue): 0 for queue in queues}  # items of each queue placed so far
        instructions, comments = [], {}

        def placed(item):
            return position[id(item)] < done[id(queue_of[id(item)])]

        def place(item):
            if item.comment:
                comments[len(instructions)] = item.comment
            instructions.append(item.instruction)
            timeline.step(item.instruction)

        def force(item):
            """Place ``item``, with everything before it in its queue and everything they need, first."""
            queue = queue_of[id(item)]
            while not placed(item):
                head = queue[done[id(queue)]]
                for need in head.needs:
                    force(need)
                done[id(queue)] += 1
                place(head)

        def harmless(item, step):
            """Whether ``item`` placed now does not delay ``step``."""
            trial = timeline.fork()
            trial.step(item.instruction)
            return trial.step(step.instruction) <= timeline.fork().step(step.instruction)

        for index, step in enumerate(self.steps):
            for need in step.needs:
                force(need)
            if step.instruction.opcode in (Opcode.HALT, Opcode.SYNC):
                for queue in queues:
                    if done[id(queue)] < len(queue):
                        force(queue[-1])
            while True:  # the floating items that can dispatch before the step, earliest first, while harmless
                due = timeline.ready(step.instruction)
                heads = [(timeline.ready(head.instruction), k, head) for k, queue in enumerate(queues)
                         if done[id(queue)] < len(queue)
                         for head in [queue[done[id(queue)]]]
                         if head.release < index and all(placed(n) for n in head.needs)]
                chosen = next((head for ready, _, head in sorted(heads, key=lambda h: h[:2])
                               if ready < due and harmless(head, step)), None)
                if chosen is None:
                    break
                done[id(queue_of[id(chosen)])] += 1
                place(chosen)
            place(step)
        for queue in queues:
            if done[id(queue)] < len(queue):
                force(queue[-1])
        return instructions, comments

    def program(self, input_words: int, output_words: int, meta=None) -> SystolicProgram:
        lanes = self.config.lanes
        weights = np.concatenate(self.weight_chunks) if self.weight_chunks else np.zeros((0, lanes), np.int8)
        instructions, comments = self.schedule()
        return SystolicProgram(self.config, instructions, weights, input_words, output_words, comments, meta or {})


TAPER_ROWS = 32
"""The smallest row chunk of a tapered output tile (:func:`_chunks`)."""


def _chunks(m: int, region: int, *, taper: bool) -> list:
    """``(start, rows)`` chunks of ``m`` rows of at most ``region`` rows. Tapered: towards the end each chunk is half
    of what is left (at least :data:`TAPER_ROWS`), so that each chunk's ACTIVATE, which can only start once its
    chunk's last MATMUL has dispatched, takes about as long as the next, smaller chunk's MATMULs (at least two K
    tiles of rows), and the last is small."""
    chunks, start = [], 0
    while start < m:
        rest = m - start
        rows = min(region, rest)
        if taper and rest > 2 * TAPER_ROWS:
            rows = min(rows, -(-rest // 2))
        chunks.append((start, rows))
        start += rows
    return chunks


def _pieces(rows: int, first: int = PIECE_ROWS[0], most: int = PIECE_ROWS[1]):
    """``(start, end)`` row ranges of growing size (``first``, ``2 first``, ... up to ``most``) that cover ``rows``."""
    pieces, start, size = [], 0, first
    while start < rows:
        pieces.append((start, min(rows, start + size)))
        start, size = start + size, min(2 * size, most)
    return pieces

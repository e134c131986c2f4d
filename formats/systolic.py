"""The systolic accelerator's program format, shared by ``compiler.systolic`` (which writes it) and ``hw.systolic``
and ``sim.systolic`` (which execute it). Pure Python plus numpy; imports neither ``compiler`` nor ``hw``.

Format version
--------------
:data:`FORMAT_VERSION` is written into every saved program and checked on load. Any change to the encoding, the
field widths, the parameter-record layout or the integer semantics below bumps it. Version 2 added the Winograd
instructions (TRANSFORM_IN, TRANSFORM_OUT, wide weight tiles, MATMUL from the transform buffer) and the ``tb``
field; a version-1 file is refused with a message to recompile.

Machine model
-------------
A ``rows x cols`` weight-stationary array (TPU v1 style) with three on-chip memories, all sized by
:class:`SystolicConfig`:

* **unified buffer** (UB): ``ub_depth`` words of ``rows`` int8 lanes -- layer inputs and outputs;
* **weight buffer** (WB): ``wb_depth`` words of ``cols`` int8 lanes -- weight tiles and activation parameters;
* **accumulators** (ACC): ``acc_depth`` words of ``cols`` int32 lanes;
* with ``winograd=True`` only, the **transform buffer** (TB): ``tb_depth`` words of ``rows`` lanes of
  :data:`WINOGRAD_V_BITS` bits -- transformed input tiles ``V = B^T d B`` (see Winograd below).

The accelerator as built requires ``rows == cols`` (one host word fits both buffers, and an output tile is the next
layer's input tile); the array blocks themselves take any ``rows x cols``.

Host side: an instruction stream (128-bit words, :func:`encode`), a data stream in (``host_in``, one UB/WB word per
transfer) and a data stream out (``host_out``). The words a program reads from ``host_in`` come in program order:
each ``READ_WEIGHTS`` takes the next ``count`` words of the static weight image, each ``READ_HOST`` the next
``count`` words of the run-time input (:func:`host_stream`).

Instruction set (version 2)
---------------------------
Every instruction has the fields ``opcode`` (8 bits), ``flags`` (8), ``acc``, ``ub``, ``wb`` (addresses, 24 bits
each), ``count`` (24 bits) and ``tb`` (a transform-buffer address, 16 bits); unused fields are zero.

=============  =====================================================================================================
READ_HOST      ``UB[ub + i] <- host_in`` for ``i < count``.
WRITE_HOST     ``host_out <- UB[ub + i]`` for ``i < count``.
READ_WEIGHTS   ``WB[wb + i] <- host_in`` for ``i < count``.
LOAD_WEIGHTS   Shift the tile ``WB[wb .. wb + rows)`` (word ``r`` = weight row ``r``, the K index) into weight bank
               ``BANK`` of the array. The other bank keeps computing meanwhile (double buffering). With ``WIDE``
               (Winograd builds only) the tile is ``2 * rows`` words: weight row ``r`` is
               ``256 * WB[wb + 2r + 1] + (WB[wb + 2r] as unsigned)`` wrapped to :data:`WINOGRAD_U_BITS` bits
               (:func:`pack_wide_weight_tile`).
MATMUL         For ``i < count``: ``ACC[acc + i] <- (ACCUMULATE ? ACC[acc + i] : 0) + UB[ub + i] @ W[BANK]``, a row of
               ``rows`` int8 activations times the ``rows x cols`` int8 weight tile, int32 with wrap-around. With
               ``FROM_TB`` (Winograd builds only) the row is ``TB[tb + i]`` instead (``ub`` unused).
TRANSFORM_IN   (Winograd builds) For each tile ``p < count``: ``d`` is the 4x4 block of words ``UB[ub + 16p + 4i + j]``
               (lane = channel); ``TB[tb + e*count + p] <- V[e]`` for ``e = 4*xi + nu``, with ``V = B^T d B`` per
               lane (exact, :data:`WINOGRAD_V_BITS` bits), so position ``e`` of all tiles is one contiguous run.
TRANSFORM_OUT  (Winograd builds) For each tile ``p < count``: ``M[e] = ACC[acc + e*count + p]`` (``e = 4*xi + nu``),
               ``ACC[acc + 16*count + 4p + 2a + b] <- (A^T M A)[a, b]`` per lane, int32 with wrap-around.
ACTIVATE       For ``i < count``: ``UB[ub + i] <- requantize(ACC[acc + i], params)`` with optional ReLU, where the
               per-column ``params`` (bias, multiplier, shift) are the :data:`PARAM_WORDS` words at ``WB[wb]``.
SYNC           Wait until every unit is idle and the array has drained.
HALT           SYNC, wait for ``host_out`` to empty, then stop (the ``halted`` output goes high).
=============  =====================================================================================================

Flags: ``BANK`` (bit 0), ``ACCUMULATE`` (bit 1), ``RELU`` (bit 2), ``FROM_TB`` (bit 3, MATMUL), ``WIDE`` (bit 4,
LOAD_WEIGHTS).

Ordering: the result of a program is the result of executing its instructions one after another. The hardware
overlaps LOAD_WEIGHTS, MATMUL and ACTIVATE and enforces that ordering itself with interlocks; READ_HOST,
WRITE_HOST, READ_WEIGHTS, TRANSFORM_IN and TRANSFORM_OUT wait for every unit to go idle first, and nothing
dispatches while a transform runs.

Integer semantics
-----------------
* Products are int8 x int8, exact. Sums (down the array and into the accumulators) are int32 with two's-complement
  **wrap-around**, so they do not depend on the order of summation or on the tiling.
* ACTIVATE forms ``x = acc + bias`` exactly (33 bits), then :func:`requantize`:
  ``y = (x * multiplier + 2**(shift-1)) >> shift`` (``>>`` is the arithmetic shift, i.e. floor division), which is
  **round to nearest, ties toward +infinity**; with ``shift == 0`` it is ``x * multiplier``. ``multiplier`` is
  unsigned :data:`MULTIPLIER_BITS` bits, ``shift`` is below :data:`MAX_SHIFT`. Then ReLU (if the flag is set) and
  saturation to ``[-128, 127]``.

Winograd F(2x2, 3x3)
--------------------
``Y = A^T [U * V] A`` with ``V = B^T d B`` (:data:`WINOGRAD_BT`, adds only: 4 terms of +-1, so int8 ``d`` gives
``|V| <= 512``, 10 bits) and ``U = G' g G'^T`` with the integer ``G' = 2 G`` (:data:`WINOGRAD_G2`: up to 9 terms of
weight 1, 2 or 4, so int8 ``g`` gives ``|U| <= 1152``, 12 bits). The array multiplies 10-bit by 12-bit operands into
int32 in Winograd builds; ``A^T`` (:data:`WINOGRAD_AT`, adds only) sums 9 of the 16 ``M = sum_c U * V`` per output,
and ``Y = 4 * (g conv d)`` exactly (the scale of ``G'`` is ``2 * 2``). All sums wrap in int32, which is exact
whenever ``4 * (g conv d)`` fits int32 (wrap-around is arithmetic modulo ``2**32`` and every step is linear with
integer coefficients); the compiler checks that bound and removes the factor 4 exactly in requantization.

Parameter record
----------------
:data:`PARAM_WORDS` (7) consecutive WB words; lane ``j`` holds column ``j``'s parameters as little-endian bytes:
words 0-3 the int32 bias, words 4-5 the uint16 multiplier, word 6 the shift (:func:`pack_params`).

Data layout
-----------
A matrix ``X`` of ``M x K`` int8 is held as ``ceil(K / lanes)`` blocks of ``M`` words: word ``k * M + m`` holds
``X[m, k*lanes : (k+1)*lanes]``, zero-padded (:func:`pack_matrix`). A weight matrix ``W`` of ``K x N`` is cut into
``rows x cols`` tiles, each ``rows`` WB words (:func:`pack_weight_tile`). A host word is an integer with lane 0 in
the least significant byte (:func:`words_to_ints`).
"""

import enum
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

__all__ = ["WINOGRAD_BT", "WINOGRAD_G2", "WINOGRAD_AT", "WINOGRAD_V_BITS", "WINOGRAD_U_BITS",
           "pack_wide_weight_tile", "unpack_wide_weight_tile", "winograd_input_transform",
           "winograd_output_transform", "FORMAT_VERSION", "FormatError", "Opcode", "Flag", "FIELDS",
           "INSTRUCTION_BITS", "Instruction", "encode",
           "decode", "listing", "parse_listing", "SystolicConfig", "MULTIPLIER_BITS", "MAX_SHIFT", "PARAM_WORDS",
           "requantize", "pack_params", "unpack_params", "pack_matrix", "unpack_matrix", "pack_weight_tile",
           "words_to_ints", "ints_to_words", "host_stream", "SystolicProgram", "save_program", "load_program"]

FORMAT_VERSION = 2
"""Version of everything this module defines; bumped on any incompatible change."""


class FormatError(ValueError):
    """A program, configuration or image that does not follow this format; the message says what and how to fix it."""


class Opcode(enum.IntEnum):
    """Instruction opcodes (8 bits)."""
    READ_HOST = 1
    WRITE_HOST = 2
    READ_WEIGHTS = 3
    LOAD_WEIGHTS = 4
    MATMUL = 5
    ACTIVATE = 6
    SYNC = 7
    HALT = 8
    TRANSFORM_IN = 9
    TRANSFORM_OUT = 10


class Flag(enum.IntFlag):
    """Instruction flag bits."""
    BANK = 1
    ACCUMULATE = 2
    RELU = 4
    FROM_TB = 8
    WIDE = 16


FIELDS = (("opcode", 8), ("flags", 8), ("acc", 24), ("ub", 24), ("wb", 24), ("count", 24), ("tb", 16))
"""Instruction fields, least significant first, with their widths in bits."""

INSTRUCTION_BITS = 128
"""Width of an encoded instruction; the fields fill it exactly."""

_USED = {  # fields each opcode uses, besides opcode and flags; the others must be zero
    Opcode.READ_HOST: ("ub", "count"),
    Opcode.WRITE_HOST: ("ub", "count"),
    Opcode.READ_WEIGHTS: ("wb", "count"),
    Opcode.LOAD_WEIGHTS: ("wb",),
    Opcode.MATMUL: ("acc", "ub", "tb", "count"),
    Opcode.ACTIVATE: ("acc", "ub", "wb", "count"),
    Opcode.SYNC: (),
    Opcode.HALT: (),
    Opcode.TRANSFORM_IN: ("ub", "tb", "count"),
    Opcode.TRANSFORM_OUT: ("acc", "count"),
}
_FLAGS = {Opcode.LOAD_WEIGHTS: Flag.BANK | Flag.WIDE, Opcode.MATMUL: Flag.BANK | Flag.ACCUMULATE | Flag.FROM_TB,
          Opcode.ACTIVATE: Flag.RELU}


@dataclass(frozen=True)
class Instruction:
    """One instruction; see the module docstring for what each opcode does with the fields."""
    opcode: Opcode
    flags: Flag = Flag(0)
    acc: int = 0
    ub: int = 0
    wb: int = 0
    count: int = 0
    tb: int = 0

    def __post_init__(self):
        try:
            object.__setattr__(self, "opcode", Opcode(self.opcode))
        except ValueError:
            raise FormatError(f"unknown opcode {self.opcode!r}; known: "
                              f"{', '.join(f'{o.name}={o.value}' for o in Opcode)}") from None
        object.__setattr__(self, "flags", Flag(int(self.flags)))
        extra = self.flags & ~_FLAGS.get(self.opcode, Flag(0))
        if extra:
            raise FormatError(f"{self.opcode.name} does not take flag(s) {extra!r}")
        for name, width in FIELDS[2:]:
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or not 0 <= value < (1 << width):
                raise FormatError(f"{self.opcode.name}: field {name}={value!r} must be an integer in "
                                  f"[0, {1 << width}) ({width} bits)")
            object.__setattr__(self, name, int(value))
            if name not in _USED[self.opcode] and value:
                raise FormatError(f"{self.opcode.name} does not use field {name} (got {value}); leave it 0")
        if "count" in _USED[self.opcode] and self.count == 0:
            raise FormatError(f"{self.opcode.name} needs count >= 1")
        if self.opcode == Opcode.MATMUL and (self.ub if self.flags & Flag.FROM_TB else self.tb):
            raise FormatError("MATMUL reads the UB (field ub) or, with from_tb, the TB (field tb), not both; "
                              "leave the other field 0")


def encode(instruction: Instruction) -> int:
    """The :data:`INSTRUCTION_BITS`-bit integer of ``instruction``."""
    word, offset = 0, 0
    for name, width in FIELDS:
        word |= int(getattr(instruction, name)) << offset
        offset += width
    return word


def decode(word: int) -> Instruction:
    """The :class:`Instruction` encoded in ``word``; raises :class:`FormatError` on a malformed word."""
    if not 0 <= word < (1 << INSTRUCTION_BITS):
        raise FormatError(f"instruction word {word:#x} is not a {INSTRUCTION_BITS}-bit unsigned integer")
    values, offset = {}, 0
    for name, width in FIELDS:
        values[name] = (word >> offset) & ((1 << width) - 1)
        offset += width
    return Instruction(**values)


def _format_line(ins: Instruction) -> str:
    used = _USED[ins.opcode]
    if ins.opcode == Opcode.MATMUL:
        used = tuple(name for name in used if name != ("ub" if ins.flags & Flag.FROM_TB else "tb"))
    parts = [f"{ins.opcode.name:<13}"] + [f"{name}={getattr(ins, name)}" for name in used]
    parts += [flag.name.lower() for flag in Flag if ins.flags & flag]
    return " ".join(parts).rstrip()


def listing(instructions, comments=None) -> str:
    """A readable listing, one instruction a line: ``index  OPCODE  field=value ...  flags  ; comment``.

    ``comments`` maps an instruction index to a comment. :func:`parse_listing` reads it back.
    """
    comments = comments or {}
    lines = [f"; sparq systolic program, format version {FORMAT_VERSION}"]
    for i, ins in enumerate(instructions):
        line = f"{i:6d}  {_format_line(ins)}"
        if i in comments:
            line = f"{line:<60} ; {comments[i]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def parse_listing(text: str) -> list:
    """The instructions of a listing written by :func:`listing` (comments and the leading index are optional)."""
    instructions = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if tokens[0].isdigit():
            tokens = tokens[1:]
        try:
            opcode = Opcode[tokens[0].upper()]
        except KeyError:
            raise FormatError(f"listing line {number}: unknown opcode {tokens[0]!r}") from None
        values, flags = {}, Flag(0)
        for token in tokens[1:]:
            match = re.fullmatch(r"(\w+)=(\d+)", token)
            if match:
                values[match[1]] = int(match[2])
            elif token.upper() in Flag.__members__:
                flags |= Flag[token.upper()]
            else:
                raise FormatError(f"listing line {number}: cannot read {token!r} (expected field=value or a flag)")
        unknown = set(values) - {name for name, _ in FIELDS[2:]}
        if unknown:
            raise FormatError(f"listing line {number}: unknown field(s) {sorted(unknown)}")
        try:
            instructions.append(Instruction(opcode, flags, **values))
        except FormatError as error:
            raise FormatError(f"listing line {number}: {error}") from None
    return instructions


@dataclass(frozen=True)
class SystolicConfig:
    """Parameters of one accelerator build. Every depth is a number of words.

    ``instr_depth`` is the instruction queue, ``out_depth`` the host output queue (at least 3; WRITE_HOST streams
    one word a cycle from 5 on). ``winograd`` builds the Winograd datapath (transform units, transform buffer of
    ``tb_depth`` words, 10 x 12-bit PE operands); without it ``tb_depth`` is ignored and the Winograd instructions
    are refused.
    """
    rows: int = 8
    cols: int = 8
    ub_depth: int = 1024
    wb_depth: int = 1024
    acc_depth: int = 256
    instr_depth: int = 16
    out_depth: int = 8
    winograd: bool = False
    tb_depth: int = 1024

    def __post_init__(self):
        if not isinstance(self.winograd, bool):
            raise FormatError(f"SystolicConfig.winograd must be True or False, not {self.winograd!r}")
        for f in fields(self):
            if f.name == "winograd":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FormatError(f"SystolicConfig.{f.name} must be a positive integer, not {value!r}")
            limit = 16 if f.name == "tb_depth" else 24
            if f.name.endswith("depth") and value >= 1 << limit:
                raise FormatError(f"SystolicConfig.{f.name}={value} does not fit the {limit}-bit address fields")
        if self.rows != self.cols:
            raise FormatError(f"the accelerator needs a square array (rows == cols, got {self.rows} x {self.cols}): "
                              "a unified-buffer word is one array row and an output tile is the next layer's input")
        if self.out_depth < 3:
            raise FormatError(f"SystolicConfig.out_depth must be at least 3 (got {self.out_depth})")
        if self.wb_depth < max(self.rows, PARAM_WORDS):
            raise FormatError(f"SystolicConfig.wb_depth={self.wb_depth} cannot hold one weight tile "
                              f"({self.rows} words); raise wb_depth")

    @property
    def lanes(self) -> int:
        """int8 lanes in a UB, WB or host word."""
        return self.rows

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "SystolicConfig":
        return cls(**json.loads(text))


MULTIPLIER_BITS = 16
"""Width of the unsigned requantization multiplier."""

MAX_SHIFT = 48
"""Shifts are ``0 <= shift < MAX_SHIFT``: past 48 bits ``(acc + bias) * multiplier`` (49 bits) rounds to 0."""

SHIFT_BITS = 6
"""Width of the shift field of a parameter record."""

PARAM_WORDS = 7
"""WB words in one parameter record (4 bias bytes, 2 multiplier bytes, 1 shift byte)."""


def requantize(acc, bias, multiplier, shift, relu):
    """The ACTIVATE arithmetic on int arrays (broadcast): int32 ``acc``, int32 ``bias``, uint16 ``multiplier``,
    ``shift`` in ``[0, MAX_SHIFT)``; returns int8. See the module docstring."""
    x = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    product = x * np.asarray(multiplier, dtype=np.int64)  # |x| < 2**32, multiplier < 2**16: exact in int64
    shift = np.asarray(shift, dtype=np.int64)
    rounding = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    y = np.right_shift(product + rounding, shift)
    if relu:
        y = np.maximum(y, 0)
    return np.clip(y, -128, 127).astype(np.int8)


def _check_params(bias, multiplier, shift):
    bias, multiplier, shift = (np.asarray(v, dtype=np.int64) for v in (bias, multiplier, shift))
    if bias.min(initial=0) < -(1 << 31) or bias.max(initial=0) >= 1 << 31:
        raise FormatError("an ACTIVATE bias does not fit int32")
    if multiplier.min(initial=0) < 0 or multiplier.max(initial=0) >= 1 << MULTIPLIER_BITS:
        raise FormatError(f"an ACTIVATE multiplier is outside [0, 2**{MULTIPLIER_BITS})")
    if shift.min(initial=0) < 0 or shift.max(initial=0) >= MAX_SHIFT:
        raise FormatError(f"an ACTIVATE shift is outside [0, {MAX_SHIFT})")
    return bias, multiplier, shift


def pack_params(bias, multiplier, shift, lanes: int) -> np.ndarray:
    """The :data:`PARAM_WORDS` x ``lanes`` int8 words of one parameter record (missing columns are zero)."""
    bias, multiplier, shift = _check_params(bias, multiplier, shift)
    if not len(bias) == len(multiplier) == len(shift) <= lanes:
        raise FormatError(f"parameter record: bias, multiplier and shift must have the same length <= {lanes}")
    raw = np.zeros((PARAM_WORDS, lanes), dtype=np.uint8)
    n = len(bias)
    raw[0:4, :n] = (bias.astype(np.int32).view(np.uint32)[None, :] >> (8 * np.arange(4))[:, None]) & 0xFF
    raw[4:6, :n] = (multiplier[None, :] >> (8 * np.arange(2))[:, None]) & 0xFF
    raw[6, :n] = shift
    return raw.view(np.int8)


def unpack_params(words) -> tuple:
    """``(bias, multiplier, shift)`` int64 arrays from the :data:`PARAM_WORDS` words of a parameter record."""
    raw = np.asarray(words, dtype=np.int8).view(np.uint8).astype(np.int64)
    if raw.shape[0] != PARAM_WORDS:
        raise FormatError(f"a parameter record has {PARAM_WORDS} words, got {raw.shape[0]}")
    bias = (raw[0:4] << (8 * np.arange(4))[:, None]).sum(axis=0)
    bias = np.where(bias >= 1 << 31, bias - (1 << 32), bias)
    multiplier = (raw[4:6] << (8 * np.arange(2))[:, None]).sum(axis=0)
    return bias, multiplier, raw[6] & ((1 << SHIFT_BITS) - 1)


def pack_matrix(x, lanes: int) -> np.ndarray:
    """An ``M x K`` int8 matrix as ``ceil(K / lanes) * M`` words of ``lanes`` int8 (see Data layout)."""
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype != np.int8:
        raise FormatError(f"pack_matrix takes a 2-D int8 matrix, got {x.dtype} of shape {x.shape}")
    m, k = x.shape
    blocks = math.ceil(k / lanes)
    padded = np.zeros((m, blocks * lanes), dtype=np.int8)
    padded[:, :k] = x
    return padded.reshape(m, blocks, lanes).transpose(1, 0, 2).reshape(blocks * m, lanes)


def unpack_matrix(words, m: int, k: int) -> np.ndarray:
    """Inverse of :func:`pack_matrix`: the ``m x k`` matrix held in ``ceil(k / lanes) * m`` words."""
    words = np.asarray(words, dtype=np.int8)
    lanes = words.shape[1]
    blocks = math.ceil(k / lanes)
    if words.shape[0] != blocks * m:
        raise FormatError(f"an {m} x {k} matrix takes {blocks * m} words of {lanes} lanes, got {words.shape[0]}")
    return words.reshape(blocks, m, lanes).transpose(1, 0, 2).reshape(m, blocks * lanes)[:, :k]


def pack_weight_tile(w, rows: int, cols: int) -> np.ndarray:
    """A weight tile (at most ``rows x cols``, int8, K by N) as ``rows`` words of ``cols`` lanes, zero-padded."""
    w = np.asarray(w)
    if w.ndim != 2 or w.dtype != np.int8 or w.shape[0] > rows or w.shape[1] > cols:
        raise FormatError(f"a weight tile is an int8 matrix of at most {rows} x {cols}, got {w.dtype} {w.shape}")
    tile = np.zeros((rows, cols), dtype=np.int8)
    tile[:w.shape[0], :w.shape[1]] = w
    return tile


WINOGRAD_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.int64)
"""Winograd F(2x2, 3x3) input transform ``B^T`` (4 x 4): ``V = B^T d B``."""

WINOGRAD_G2 = np.array([[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]], dtype=np.int64)
"""The weight transform ``G' = 2 G`` (4 x 3), integer: ``U = G' g G'^T = 4 G g G^T``."""

WINOGRAD_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.int64)
"""The output transform ``A^T`` (2 x 4): ``Y = A^T M A``."""

WINOGRAD_V_BITS = 10
"""Width of a transformed input ``V = B^T d B`` of int8 ``d``: 4 terms of +-1, ``-512 <= V <= 510``."""

WINOGRAD_U_BITS = 12
"""Width of a transformed weight ``U = G' g G'^T`` of int8 ``g``: ``|U| <= 9 * 128 = 1152``; the PE weight width
of Winograd builds."""


def winograd_input_transform(d):
    """``B^T d B`` over the last two axes (each 4) of an integer array; exact in int64."""
    d = np.asarray(d, dtype=np.int64)
    return np.einsum("ai,...ij,bj->...ab", WINOGRAD_BT, d, WINOGRAD_BT)


def winograd_output_transform(m):
    """``A^T m A`` over the last two axes (4 x 4 -> 2 x 2) of an integer array, in int64 (not wrapped)."""
    m = np.asarray(m, dtype=np.int64)
    return np.einsum("ai,...ij,bj->...ab", WINOGRAD_AT, m, WINOGRAD_AT)


def pack_wide_weight_tile(u, rows: int, cols: int) -> np.ndarray:
    """A Winograd weight tile (at most ``rows x cols`` integers of :data:`WINOGRAD_U_BITS` bits, K by N) as the
    ``2 * rows`` words a WIDE LOAD_WEIGHTS takes: word ``2r`` the low bytes of row ``r``, word ``2r + 1`` the high
    bytes (two's complement), zero-padded."""
    u = np.asarray(u)
    limit = 1 << (WINOGRAD_U_BITS - 1)
    if u.ndim != 2 or u.shape[0] > rows or u.shape[1] > cols or not np.issubdtype(u.dtype, np.integer):
        raise FormatError(f"a wide weight tile is an integer matrix of at most {rows} x {cols}, got {u.dtype} "
                          f"{u.shape}")
    if u.size and (u.min() < -limit or u.max() >= limit):
        raise FormatError(f"a wide weight tile holds {WINOGRAD_U_BITS}-bit weights, [{-limit}, {limit - 1}]; got "
                          f"[{u.min()}, {u.max()}]")
    tile = np.zeros((rows, cols), dtype=np.int64)
    tile[:u.shape[0], :u.shape[1]] = u
    raw = (tile & 0xFFFF).astype(np.uint16)
    words = np.empty((2 * rows, cols), dtype=np.uint8)
    words[0::2] = raw & 0xFF
    words[1::2] = raw >> 8
    return words.view(np.int8)


def unpack_wide_weight_tile(words) -> np.ndarray:
    """The ``rows x cols`` weights of a WIDE LOAD_WEIGHTS of ``2 * rows`` words: ``256 * high + low`` (``low``
    unsigned), wrapped to :data:`WINOGRAD_U_BITS` bits, as the hardware's weight registers hold them."""
    raw = np.asarray(words, dtype=np.int8)
    low, high = raw[0::2].view(np.uint8).astype(np.int64), raw[1::2].astype(np.int64)
    value = high * 256 + low
    half = 1 << (WINOGRAD_U_BITS - 1)
    return (value + half) % (1 << WINOGRAD_U_BITS) - half


def words_to_ints(words) -> list:
    """Host-port integers of int8 words (lane 0 in the least significant byte)."""
    raw = np.asarray(words, dtype=np.int8).view(np.uint8)
    return [int.from_bytes(row.tobytes(), "little") for row in raw]


def ints_to_words(values, lanes: int) -> np.ndarray:
    """Inverse of :func:`words_to_ints`: an ``(n, lanes)`` int8 array."""
    data = b"".join(int(v).to_bytes(lanes, "little") for v in values)
    return np.frombuffer(data, dtype=np.int8).reshape(len(values), lanes).copy()


def host_stream(instructions, weight_words, input_words) -> np.ndarray:
    """The words a program reads from ``host_in``, in order: READ_WEIGHTS draws from ``weight_words`` and READ_HOST
    from ``input_words``; both must be used up exactly."""
    sources = {Opcode.READ_WEIGHTS: [np.asarray(weight_words, dtype=np.int8), 0],
               Opcode.READ_HOST: [np.asarray(input_words, dtype=np.int8), 0]}
    out = []
    for ins in instructions:
        if ins.opcode in sources:
            words, used = sources[ins.opcode]
            if used + ins.count > len(words):
                raise FormatError(f"{ins.opcode.name} wants words {used}..{used + ins.count - 1} but only "
                                  f"{len(words)} were given")
            out.append(words[used:used + ins.count])
            sources[ins.opcode][1] += ins.count
    for opcode, (words, used) in sources.items():
        if used != len(words):
            raise FormatError(f"{len(words)} words were given for {opcode.name} but the program reads {used}")
    lanes = next((len(w[0]) for w in sources.values() if len(w[0])), 1)
    return np.concatenate(out) if out else np.zeros((0, lanes), dtype=np.int8)


@dataclass
class SystolicProgram:
    """A compiled program: the configuration it was checked against, its instructions, the static weight image (the
    words its READ_WEIGHTS instructions take, in order) and the number of run-time input and output words.

    ``comments`` maps instruction indices to listing comments; ``meta`` is free JSON-able metadata.
    """
    config: SystolicConfig
    instructions: list
    weight_words: np.ndarray
    input_words: int
    output_words: int
    comments: dict = None
    meta: dict = None

    def __post_init__(self):
        self.comments = {int(k): v for k, v in (self.comments or {}).items()}
        self.meta = self.meta or {}
        self.weight_words = np.asarray(self.weight_words, dtype=np.int8).reshape(-1, self.config.lanes)

    def encoded(self) -> list:
        """The instruction words, as integers."""
        return [encode(ins) for ins in self.instructions]

    def listing(self) -> str:
        return listing(self.instructions, self.comments)

    def stream(self, input_words) -> np.ndarray:
        """The ``host_in`` words for one run, given the run-time input words."""
        input_words = np.asarray(input_words, dtype=np.int8).reshape(-1, self.config.lanes)
        if len(input_words) != self.input_words:
            raise FormatError(f"the program reads {self.input_words} input words, got {len(input_words)}")
        return host_stream(self.instructions, self.weight_words, input_words)


def save_program(program: SystolicProgram, path) -> None:
    """Write ``program`` to an ``.npz`` file (format version, config, binary instructions, weight image, metadata)."""
    words = np.array([[(w >> (64 * i)) & ((1 << 64) - 1) for i in range(INSTRUCTION_BITS // 64)]
                      for w in program.encoded()], dtype=np.uint64).reshape(-1, INSTRUCTION_BITS // 64)
    header = dict(format="sparq-systolic", version=FORMAT_VERSION, config=json.loads(program.config.to_json()),
                  input_words=program.input_words, output_words=program.output_words,
                  comments={str(k): v for k, v in program.comments.items()}, meta=program.meta)
    with open(path, "wb") as f:
        np.savez(f, header=np.array(json.dumps(header)), instructions=words, weight_words=program.weight_words)


def load_program(path) -> SystolicProgram:
    """Read a program written by :func:`save_program`, checking the format and its version."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            words, weight_words = data["instructions"], data["weight_words"]
    except (OSError, KeyError, ValueError) as error:
        raise FormatError(f"{path}: not a systolic program file ({error}); write one with save_program") from None
    if header.get("format") != "sparq-systolic":
        raise FormatError(f"{path}: not a systolic program file (format {header.get('format')!r})")
    if header.get("version") != FORMAT_VERSION:
        raise FormatError(f"{path}: systolic format version {header.get('version')}, this sparq reads version "
                          f"{FORMAT_VERSION}; recompile the model")
    instructions = [decode(sum(int(part) << (64 * i) for i, part in enumerate(row))) for row in words]
    return SystolicProgram(SystolicConfig(**header["config"]), instructions, weight_words, header["input_words"],
                           header["output_words"], header["comments"], header["meta"])

"""The systolic instruction set: opcodes, flags, fields, the 128-bit encoding and the text listing.

Instruction set (version 3)
---------------------------
Every instruction has the fields ``opcode`` (8 bits), ``flags`` (8), ``acc``, ``ub``, ``wb`` (addresses, 24 bits
each), ``count`` (24 bits) and ``tb`` (a transform-buffer address, 16 bits); unused fields are zero. ``src`` (24
bits, READ_HOST and READ_WEIGHTS only) is a word index into the host-side data and occupies the bits of ``acc``
(:data:`SHARED_FIELDS`), which those two do not use.

=============  =====================================================================================================
READ_HOST      ``UB[ub + i] <- input[src + i]`` for ``i < count``: words of the run-time input.
WRITE_HOST     ``host_out <- UB[ub + i]`` for ``i < count``.
READ_WEIGHTS   ``WB[wb + i] <- image[src + i]`` for ``i < count``: words of the static weight image.
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

Any other opcode is an error (:func:`decode` refuses it). The hardware stops on one, or on TRANSFORM_IN /
TRANSFORM_OUT in a build without Winograd, as on HALT and raises its sticky ``error`` output (STATUS bit ``error``
on a board, :mod:`sparq.formats.uart`); nothing after it runs.

Flags: ``BANK`` (bit 0), ``ACCUMULATE`` (bit 1), ``RELU`` (bit 2), ``FROM_TB`` (bit 3, MATMUL), ``WIDE`` (bit 4,
LOAD_WEIGHTS).

Host streams: the accelerator's ``host_in`` port carries, in program order, the words each READ_HOST and
READ_WEIGHTS copies (``count`` words each); the host sends them in that order (:func:`sparq.formats.systolic.host_stream`
gathers them by ``src``). So a program may read its input in any order, in pieces, or more than once, whatever
layout the host holds it in. ``host_out`` carries the WRITE_HOST words in program order.

Ordering: the result of a program is the result of executing its instructions one after another. The hardware
dispatches them in program order, at most one a cycle, to six units that then run concurrently -- the host input
(READ_HOST, READ_WEIGHTS), the host output (WRITE_HOST), the weight loader, the matrix unit, the activation unit
and (Winograd builds) the transform unit -- and enforces that ordering itself with interlocks on the address
ranges the units touch (:mod:`sparq.formats.systolic.timing`). So host transfers overlap computation: weights for
the next tile and inputs for the next rows stream in while the array works on the current ones, and outputs
stream out behind the activation unit. SYNC, HALT and the transforms wait for every unit to go idle, and nothing
dispatches while a transform runs.

Version 3 added ``src`` (version 2 READ_HOST and READ_WEIGHTS took the next words of their source, in order) and
the overlapped host transfers; a version-2 file is refused with a message to recompile.
"""

import enum
import re
from dataclasses import dataclass

import numpy as np

from ..common import pack_fields, unpack_fields

__all__ = ["FORMAT_VERSION", "FormatError", "Opcode", "Flag", "FIELDS", "SHARED_FIELDS", "INSTRUCTION_BITS",
           "Instruction", "encode", "decode", "listing", "parse_listing"]

FORMAT_VERSION = 3
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

SHARED_FIELDS = {"src": "acc"}
"""Fields that occupy the bits of another field of :data:`FIELDS`: no opcode uses both."""

INSTRUCTION_BITS = 128
"""Width of an encoded instruction; the fields fill it exactly."""

_USED = {  # fields each opcode uses, besides opcode and flags; the others must be zero
    Opcode.READ_HOST: ("ub", "count", "src"),
    Opcode.WRITE_HOST: ("ub", "count"),
    Opcode.READ_WEIGHTS: ("wb", "count", "src"),
    Opcode.LOAD_WEIGHTS: ("wb",),
    Opcode.MATMUL: ("acc", "ub", "tb", "count"),
    Opcode.ACTIVATE: ("acc", "ub", "wb", "count"),
    Opcode.SYNC: (),
    Opcode.HALT: (),
    Opcode.TRANSFORM_IN: ("ub", "tb", "count"),
    Opcode.TRANSFORM_OUT: ("acc", "count"),
}
_WIDTHS = {**dict(FIELDS[2:]), **{alias: dict(FIELDS)[field] for alias, field in SHARED_FIELDS.items()}}
"""Every field an instruction may set (besides opcode and flags), with its width."""
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
    src: int = 0

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
        for name, width in _WIDTHS.items():
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
    values = {name: getattr(instruction, name) for name, _ in FIELDS}
    for alias, field in SHARED_FIELDS.items():
        values[field] |= getattr(instruction, alias)  # at most one of the two is set (Instruction checks)
    return pack_fields(FIELDS, values, what="instruction")


def decode(word: int) -> Instruction:
    """The :class:`Instruction` encoded in ``word``; raises :class:`FormatError` on a malformed word."""
    if not 0 <= word < (1 << INSTRUCTION_BITS):
        raise FormatError(f"instruction word {word:#x} is not a {INSTRUCTION_BITS}-bit unsigned integer")
    values = unpack_fields(FIELDS, word)
    try:
        used = _USED[Opcode(values["opcode"])]
    except ValueError:
        used = ()  # Instruction refuses the opcode
    for alias, field in SHARED_FIELDS.items():
        if alias in used:
            values[alias], values[field] = values[field], 0
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
        unknown = set(values) - set(_WIDTHS)
        if unknown:
            raise FormatError(f"listing line {number}: unknown field(s) {sorted(unknown)}")
        try:
            instructions.append(Instruction(opcode, flags, **values))
        except FormatError as error:
            raise FormatError(f"listing line {number}: {error}") from None
    return instructions

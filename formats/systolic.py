"""The systolic accelerator's program format, shared by ``compiler.systolic`` (which writes it) and ``hw.systolic``
and ``sim.systolic`` (which execute it). Pure Python plus numpy; imports neither ``compiler`` nor ``hw``.

Format version
--------------
:data:`FORMAT_VERSION` is written into every saved program and checked on load. Any change to the encoding, the
field widths, the parameter-record layout or the integer semantics below bumps it.

Machine model
-------------
A ``rows x cols`` weight-stationary array (TPU v1 style) with three on-chip memories, all sized by
:class:`SystolicConfig`:

* **unified buffer** (UB): ``ub_depth`` words of ``rows`` int8 lanes -- layer inputs and outputs;
* **weight buffer** (WB): ``wb_depth`` words of ``cols`` int8 lanes -- weight tiles and activation parameters;
* **accumulators** (ACC): ``acc_depth`` words of ``cols`` int32 lanes.

The accelerator as built requires ``rows == cols`` (one host word fits both buffers, and an output tile is the next
layer's input tile); the array blocks themselves take any ``rows x cols``.

Host side: an instruction stream (128-bit words, :func:`encode`), a data stream in (``host_in``, one UB/WB word per
transfer) and a data stream out (``host_out``). The words a program reads from ``host_in`` come in program order:
each ``READ_WEIGHTS`` takes the next ``count`` words of the static weight image, each ``READ_HOST`` the next
``count`` words of the run-time input (:func:`host_stream`).

Instruction set (version 1)
---------------------------
Every instruction has the fields ``opcode`` (8 bits), ``flags`` (8), ``acc``, ``ub``, ``wb`` (addresses, 24 bits
each) and ``count`` (24 bits); unused fields are zero.

=============  =====================================================================================================
READ_HOST      ``UB[ub + i] <- host_in`` for ``i < count``.
WRITE_HOST     ``host_out <- UB[ub + i]`` for ``i < count``.
READ_WEIGHTS   ``WB[wb + i] <- host_in`` for ``i < count``.
LOAD_WEIGHTS   Shift the tile ``WB[wb .. wb + rows)`` (word ``r`` = weight row ``r``, the K index) into weight bank
               ``BANK`` of the array. The other bank keeps computing meanwhile (double buffering).
MATMUL         For ``i < count``: ``ACC[acc + i] <- (ACCUMULATE ? ACC[acc + i] : 0) + UB[ub + i] @ W[BANK]``, a row of
               ``rows`` int8 activations times the ``rows x cols`` int8 weight tile, int32 with wrap-around.
ACTIVATE       For ``i < count``: ``UB[ub + i] <- requantize(ACC[acc + i], params)`` with optional ReLU, where the
               per-column ``params`` (bias, multiplier, shift) are the :data:`PARAM_WORDS` words at ``WB[wb]``.
SYNC           Wait until every unit is idle and the array has drained.
HALT           SYNC, wait for ``host_out`` to empty, then stop (the ``halted`` output goes high).
=============  =====================================================================================================

Flags: ``BANK`` (bit 0), ``ACCUMULATE`` (bit 1), ``RELU`` (bit 2).

Ordering: the result of a program is the result of executing its instructions one after another. The hardware
overlaps LOAD_WEIGHTS, MATMUL and ACTIVATE and enforces that ordering itself with interlocks; READ_HOST,
WRITE_HOST and READ_WEIGHTS wait for every unit to go idle first.

Integer semantics
-----------------
* Products are int8 x int8, exact. Sums (down the array and into the accumulators) are int32 with two's-complement
  **wrap-around**, so they do not depend on the order of summation or on the tiling.
* ACTIVATE forms ``x = acc + bias`` exactly (33 bits), then :func:`requantize`:
  ``y = (x * multiplier + 2**(shift-1)) >> shift`` (``>>`` is the arithmetic shift, i.e. floor division), which is
  **round to nearest, ties toward +infinity**; with ``shift == 0`` it is ``x * multiplier``. ``multiplier`` is
  unsigned :data:`MULTIPLIER_BITS` bits, ``shift`` is below :data:`MAX_SHIFT`. Then ReLU (if the flag is set) and
  saturation to ``[-128, 127]``.

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

__all__ = ["FORMAT_VERSION", "FormatError", "Opcode", "Flag", "FIELDS", "INSTRUCTION_BITS", "Instruction", "encode",
           "decode", "listing", "parse_listing", "SystolicConfig", "MULTIPLIER_BITS", "MAX_SHIFT", "PARAM_WORDS",
           "requantize", "pack_params", "unpack_params", "pack_matrix", "unpack_matrix", "pack_weight_tile",
           "words_to_ints", "ints_to_words", "host_stream", "SystolicProgram", "save_program", "load_program"]

FORMAT_VERSION = 1
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


class Flag(enum.IntFlag):
    """Instruction flag bits."""
    BANK = 1
    ACCUMULATE = 2
    RELU = 4


FIELDS = (("opcode", 8), ("flags", 8), ("acc", 24), ("ub", 24), ("wb", 24), ("count", 24))
"""Instruction fields, least significant first, with their widths in bits."""

INSTRUCTION_BITS = 128
"""Width of an encoded instruction; the bits above the fields are zero."""

_USED = {  # fields each opcode uses, besides opcode and flags; the others must be zero
    Opcode.READ_HOST: ("ub", "count"),
    Opcode.WRITE_HOST: ("ub", "count"),
    Opcode.READ_WEIGHTS: ("wb", "count"),
    Opcode.LOAD_WEIGHTS: ("wb",),
    Opcode.MATMUL: ("acc", "ub", "count"),
    Opcode.ACTIVATE: ("acc", "ub", "wb", "count"),
    Opcode.SYNC: (),
    Opcode.HALT: (),
}
_FLAGS = {Opcode.LOAD_WEIGHTS: Flag.BANK, Opcode.MATMUL: Flag.BANK | Flag.ACCUMULATE, Opcode.ACTIVATE: Flag.RELU}


@dataclass(frozen=True)
class Instruction:
    """One instruction; see the module docstring for what each opcode does with the fields."""
    opcode: Opcode
    flags: Flag = Flag(0)
    acc: int = 0
    ub: int = 0
    wb: int = 0
    count: int = 0

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
    if word >> offset:
        raise FormatError(f"instruction word {word:#x} has bits set above bit {offset - 1}")
    return Instruction(**values)


def _format_line(ins: Instruction) -> str:
    parts = [f"{ins.opcode.name:<12}"] + [f"{name}={getattr(ins, name)}" for name in _USED[ins.opcode]]
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
    one word a cycle from 5 on).
    """
    rows: int = 8
    cols: int = 8
    ub_depth: int = 1024
    wb_depth: int = 1024
    acc_depth: int = 256
    instr_depth: int = 16
    out_depth: int = 8

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FormatError(f"SystolicConfig.{f.name} must be a positive integer, not {value!r}")
            if f.name.endswith("depth") and value >= 1 << 24:
                raise FormatError(f"SystolicConfig.{f.name}={value} does not fit the 24-bit address fields")
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

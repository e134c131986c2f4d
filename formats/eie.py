"""The EIE memory image, format version 1: what ``sparq.compiler.eie`` writes and ``hw`` and ``sparq.sim.eie`` read;
and the words of the EIE's host ports, which ``sparq.hw.eie`` builds its layouts from and ``sparq.sim`` and
``sparq.fpga`` pack here.

Pure Python and numpy; imports neither ``compiler`` nor ``hw``.

Numbers (every one a two's-complement integer; "Qm.f" has f fraction bits)
-------------------------------------------------------------------------
* Activation: ``ACT_BITS`` = 16 bits, Q8.8 (``ACT_FRAC`` = 8): real value ``a / 256``, range [-128, 128).
  A float input is converted by :func:`to_fixed` (round to nearest, ties to even, then saturate); an image's
  :meth:`EieImage.inputs` first divides it by the image's ``input_scale`` and refuses a value that would saturate,
  and :meth:`EieImage.outputs` multiplies the outputs by its ``output_scale``. The compiler chooses both (powers of
  two, 1 when the data fits Q8.8) by calibration, so that inputs in the hundreds fit too.
* Codebook: ``CODEBOOK_SIZE`` = 16 entries of ``WEIGHT_BITS`` = 16 bits per layer, real value ``c / 2**f`` where
  ``f`` is the layer's ``w_frac`` (0..15) in the layer table. Entry 0 is 0: padding entries add nothing.
* Bias: one per output row, 16 bits in the activation format Q8.8. Deviation from the paper (which has no bias):
  each PE has a bias memory and an accumulator starts at ``bias << f``.
* Product: ``a * c``, 16 x 16 -> 32 bits signed, exact, in Q.(8+f). One multiplier per PE.
* Accumulator: ``ACC_BITS`` = 40 bits signed, Q.(8+f), one per output row of the PE. It starts at ``bias << f`` and
  adds every product exactly. The lowering chooses ``f`` so that ``|bias| * 2**f + 2**15 * sum_j |c_ij|`` fits in
  40 bits for every row: no input can overflow it, so the accumulator neither wraps nor saturates, and the order of
  the additions does not matter.
* Output (:func:`finish`), once per row after the layer's last column: ``y = (acc + ((1 << f) >> 1)) >> f``
  (arithmetic shift: round half up, towards +inf on a tie), then saturate to [-2**15, 2**15 - 1], then, if the
  layer's ``relu`` flag is set, ``y = max(y, 0)``. ReLU sits between the destination registers and the leading
  non-zero detector, so ``y`` (Q8.8) is the next layer's sparse input. The last layer of a classifier has
  ``relu = 0`` and its raw outputs are read back.

Storage, for ``N = n_pe`` PEs
-----------------------------
* Rows: row ``i`` of a layer (output ``i``) lives in PE ``i % N`` as local row ``i // N``; so does activation ``i``
  of every vector, at local address ``i // N`` of the PE's activation buffer. Layer ``l`` reads ping-pong buffer
  ``l % 2`` and writes buffer ``(l + 1) % 2``; each buffer holds ``act_depth`` activations per PE.
* Entries: each column of a PE's slice is a run of 8-bit entries ``v | z << 4``: ``v`` the 4-bit codebook index,
  ``z`` the 4-bit count of zeros before it inside the PE's slice of the column, so local row
  ``r_k = r_(k-1) + z_k + 1`` with ``r_(-1) = -1``. A gap of more than 15 zeros is broken by padding entries
  ``(v=0, z=15)``. Trailing zeros of a column need no entry.
* Sparse-matrix memory: 64-bit words of 8 entries, entry ``e`` of a word in bits ``[8e+7 : 8e]`` (entry 0 in the
  least significant byte). Layer ``l`` of every PE starts at word ``spmat_base`` of the layer table; words past a
  PE's last entry are 0.
* Pointers: layer ``l`` owns pointer indices ``g = ptr_base + j`` for ``j = 0 .. in_len``; column ``j``'s entries
  are the entry addresses ``8 * spmat_base + p[j] .. 8 * spmat_base + p[j+1] - 1`` (pointers are relative to the
  layer, ``ptr_width`` bits, padding included). Index ``g`` is in the even bank at ``g >> 1`` if ``g`` is even,
  else in the odd bank at ``g >> 1``, so ``p[j]`` and ``p[j+1]`` are always read in the same cycle.
* Bias memory: layer ``l``'s bias of local row ``r`` is at ``bias_base + r`` (0 for rows the PE does not have).
* Codebook memory (shared by all PEs, each keeps a copy): layer ``l``'s entry ``c`` at ``16 * l + c``.
* Layer table: one ``LAYER_BITS``-bit word per layer, fields :data:`LAYER_FIELDS` packed from the least
  significant bit. Layer ``l + 1``'s ``in_len`` is layer ``l``'s ``out_len``.

Host ports (:class:`sparq.hw.eie.EIE`)
-------------------------------------
* Load port: one word per memory word, fields :func:`load_fields` packed from the least significant bit:
  ``target`` (a :class:`LoadTarget`), ``pe`` (``ceil(log2(n_pe))`` bits), ``addr`` (:data:`ADDR_BITS`, enough for
  any memory the layer table can address) and ``data`` (:data:`LOAD_DATA_BITS`, the widest memory word; a
  narrower memory takes the low bits, two's complement for codebook, bias and activation words).
  :func:`load_word` packs one; :func:`image_words`, :func:`spmat_words` and :func:`input_words` pack an image, one
  PE's sparse matrix and an input vector.
* Read port: a request for the activation at local address ``addr`` of PE ``pe`` (vector element
  ``addr * n_pe + pe``), fields :func:`read_fields`; :func:`read_requests` asks for a whole vector.
* Counters: :data:`COUNTER_BITS`-bit counters of the last run, named :data:`COUNTERS` (the whole array) and
  :data:`PE_COUNTERS` (one per PE, only in builds with per-PE counters); the CCU's docstring
  (:class:`sparq.hw.eie.CentralControlUnit`) defines what each one counts.

Files (:meth:`EieImage.save`)
-----------------------------
A directory with ``manifest.json`` (format name and version, the constants above, the hardware configuration, the
layer count, the input and output scales -- absent in images written before they existed, which then read as 1 --
and, per file, its memory, width, depth and SHA-256) and one ``$readmemh`` file per memory:
``layers.hex``, ``codebook.hex`` and, per PE ``k``, ``pe{k:03d}_ptr_even.hex``, ``pe{k:03d}_ptr_odd.hex``,
``pe{k:03d}_spmat.hex``, ``pe{k:03d}_bias.hex``. A ``.hex`` file is a ``//`` comment line, then one word per line
in fixed-width lower-case hex (two's complement for signed memories), address 0 first, and no more words than the
memory's depth: Verilog ``$readmemh`` reads it as is, and :func:`read_hex` gives the list for Amaranth's
``Memory(init=...)``.
"""

import enum
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .common import check_positive_ints, pack_fields, unpack_fields

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "ACT_BITS", "ACT_FRAC", "WEIGHT_BITS", "W_FRAC_MAX", "ACC_BITS", "CODE_BITS",
    "ZERO_BITS", "MAX_ZEROS", "ENTRY_BITS", "ENTRIES_PER_WORD", "WORD_BITS", "CODEBOOK_SIZE", "LAYER_FIELDS",
    "LAYER_BITS", "CONFIG_LIMITS", "ImageError", "ImageFormatError", "CapacityError", "EieConfig", "LayerEntry",
    "EieImage", "to_fixed", "finish", "pack_entries", "unpack_entries", "write_hex", "read_hex",
    "LoadTarget", "ADDR_BITS", "LOAD_DATA_BITS", "COUNTER_BITS", "COUNTERS", "PE_COUNTERS", "load_fields",
    "read_fields", "load_word", "image_words", "spmat_words", "input_words", "read_requests",
]

FORMAT_NAME = "sparq-eie-image"
FORMAT_VERSION = 1

ACT_BITS = 16
ACT_FRAC = 8
WEIGHT_BITS = 16
W_FRAC_MAX = 15
ACC_BITS = 40
CODE_BITS = 4
ZERO_BITS = 4
MAX_ZEROS = (1 << ZERO_BITS) - 1
ENTRY_BITS = CODE_BITS + ZERO_BITS
ENTRIES_PER_WORD = 8
WORD_BITS = ENTRY_BITS * ENTRIES_PER_WORD
CODEBOOK_SIZE = 1 << CODE_BITS

LAYER_FIELDS = (("in_len", 16), ("out_len", 16), ("ptr_base", 20), ("spmat_base", 20), ("bias_base", 16),
                ("w_frac", 4), ("relu", 1))
"""Layer-table word fields, ``(name, bits)``, packed from the least significant bit."""
LAYER_BITS = sum(bits for _, bits in LAYER_FIELDS)

ADDR_BITS = max(bits for name, bits in LAYER_FIELDS if name.endswith("_base"))
"""Bits of a load-port address: enough for any memory the layer table can address."""
LOAD_DATA_BITS = max(WORD_BITS, LAYER_BITS)
"""Bits of a load-port word's data: the widest memory word (a sparse-matrix or layer-table word)."""

COUNTER_BITS = 32
"""Width of every EIE performance counter."""
COUNTERS = ("cycles", "compute_cycles")
"""The counters of the whole array, in the order a board reports them."""
PE_COUNTERS = ("busy_cycles", "starve_cycles", "stall_cycles")
"""The counters kept per PE, in the order a board reports them (each for PE 0 .. N - 1)."""


class LoadTarget(enum.IntEnum):
    """Which memory a load-port word writes (field ``target`` of :func:`load_fields`)."""
    LAYER = 0     #: layer-table word ``addr`` (the layer index)
    CODEBOOK = 1  #: codebook word ``addr`` = ``16 * layer + code`` (of every PE: each keeps a copy)
    PTR = 2       #: pointer ``addr`` = ``g`` of PE ``pe`` (the bank is ``g``'s parity)
    SPMAT = 3     #: sparse-matrix word ``addr`` of PE ``pe``
    BIAS = 4      #: bias word ``addr`` of PE ``pe``
    ACT = 5       #: input activation at local address ``addr`` of PE ``pe`` (layer 0's source registers)


def _index_bits(n):
    """Bits of an index in ``range(n)``."""
    return (n - 1).bit_length()


def load_fields(n_pe):
    """The fields of a load-port word for ``n_pe`` PEs, ``(name, bits)``, least significant first."""
    return (("target", max(LoadTarget).bit_length()), ("pe", _index_bits(n_pe)), ("addr", ADDR_BITS),
            ("data", LOAD_DATA_BITS))


def read_fields(n_pe, act_depth):
    """The fields of a read-port request, ``(name, bits)``, least significant first."""
    return (("pe", _index_bits(n_pe)), ("addr", _index_bits(act_depth)))


CONFIG_LIMITS = {"n_pe": 1024, "fifo_depth": 1 << 16, "act_depth": 1 << 16, "max_layers": 1024}
"""Upper bounds of the :class:`EieConfig` fields the layer table does not bound (it bounds ``ptr_depth``,
``spmat_depth`` and ``bias_depth``): far beyond any build, and small enough that a configuration read from a file is
checked before anything is allocated for it."""

_CONSTANTS = {name: globals()[name] for name in (
    "ACT_BITS", "ACT_FRAC", "WEIGHT_BITS", "W_FRAC_MAX", "ACC_BITS", "CODE_BITS", "ZERO_BITS", "ENTRIES_PER_WORD",
    "CODEBOOK_SIZE", "LAYER_BITS")}


class ImageError(ValueError):
    """Base class of the errors about an EIE image; raised itself for a bad :class:`EieConfig`."""


class ImageFormatError(ImageError):
    """An image or image file is corrupt, inconsistent, of another format version or for another configuration."""


class CapacityError(ImageError):
    """An image does not fit the memories of a hardware configuration."""


def _field_limit(name):
    return (1 << dict(LAYER_FIELDS)[name]) - 1


@dataclass(frozen=True)
class EieConfig:
    """The EIE hardware parameters an image is lowered for. Depths count words of the memory, per PE.

    Defaults follow the paper where it gives a number: 64 PEs, FIFO depth 8, Ptr SRAM 32 KB (16 K pointers over both
    banks), Spmat SRAM 128 KB (16 K 64-bit words), Act SRAM 2 KB (two ping-pong buffers of 512 x 16 bit).
    ``bias_depth`` (biases per PE over all layers) and ``max_layers`` are sparq's.
    """

    n_pe: int = 64
    fifo_depth: int = 8
    ptr_depth: int = 16384
    spmat_depth: int = 16384
    act_depth: int = 512
    bias_depth: int = 1024
    max_layers: int = 16

    def __post_init__(self):
        check_positive_ints(self, ImageError)
        limits = {"ptr_depth": _field_limit("ptr_base") + 1, "spmat_depth": _field_limit("spmat_base") + 1,
                  "bias_depth": _field_limit("bias_base") + 1}
        for name, limit in limits.items():
            if getattr(self, name) > limit:
                raise ImageError(f"EieConfig.{name}={getattr(self, name)} is more than the layer table can "
                                       f"address ({limit}); lower it")
        for name, limit in CONFIG_LIMITS.items():
            if getattr(self, name) > limit:
                raise ImageError(f"EieConfig.{name}={getattr(self, name)} is over sparq's limit of {limit}; lower it")
        if self.ptr_depth % 2:
            raise ImageError(f"EieConfig.ptr_depth={self.ptr_depth} must be even (two banks of equal depth)")

    @property
    def ptr_width(self):
        """Bits of a pointer: enough for ``8 * spmat_depth``, one past the last entry address."""
        return (ENTRIES_PER_WORD * self.spmat_depth).bit_length()

    def rows_per_pe(self, length):
        """Local rows (or activations) per PE of a ``length``-long vector: ``ceil(length / n_pe)``."""
        return -(-length // self.n_pe)


@dataclass(frozen=True)
class LayerEntry:
    """One row of the layer table; see the module docstring for the meaning of each field."""

    in_len: int
    out_len: int
    ptr_base: int
    spmat_base: int
    bias_base: int
    w_frac: int
    relu: bool

    def __post_init__(self):
        for name, bits in LAYER_FIELDS:
            value = int(getattr(self, name))
            if not 0 <= value < (1 << bits):
                raise ImageFormatError(f"layer-table field {name}={value} does not fit its {bits} bits")
        if self.in_len < 1 or self.out_len < 1:
            raise ImageFormatError(f"a layer needs in_len and out_len >= 1, got {self.in_len}x{self.out_len}")

    def pack(self):
        """The layer-table word (an int of :data:`LAYER_BITS` bits)."""
        return pack_fields(LAYER_FIELDS, self, what="layer-table")

    @classmethod
    def unpack(cls, word):
        """The entry held in a layer-table word."""
        values = unpack_fields(LAYER_FIELDS, word)
        values["relu"] = bool(values["relu"])
        return cls(**values)


def to_fixed(x, frac, bits=ACT_BITS):
    """Float ``x`` as ``bits``-bit two's-complement integers with ``frac`` fraction bits (int64 array).

    Rounds to nearest (ties to even) and saturates to [-2**(bits-1), 2**(bits-1) - 1].
    """
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 2.0 ** frac), lo, hi).astype(np.int64)


def finish(acc, w_frac, relu):
    """Accumulators (Q.(8+w_frac), int64) to output activations (Q8.8): round half up, saturate, then ReLU.

    Returns ``(y, saturated)``: int64 outputs and a bool array marking the ones the saturation changed.
    """
    rounded = (np.asarray(acc, dtype=np.int64) + ((1 << w_frac) >> 1)) >> w_frac
    y = np.clip(rounded, -(1 << (ACT_BITS - 1)), (1 << (ACT_BITS - 1)) - 1)
    return (np.maximum(y, 0) if relu else y), y != rounded


def pack_entries(v, z):
    """Entries ``(v, z)`` packed 8 to a 64-bit word along the last axis (uint64, shape ``(..., ceil(n / 8))``).

    The last word of each row is filled with zero entries.
    """
    v, z = np.asarray(v), np.asarray(z)
    if v.shape != z.shape or v.ndim < 1:
        raise ImageFormatError(f"v and z must be arrays of one shape, got shapes {v.shape} and {z.shape}")
    if np.any(v < 0) or np.any(v > MAX_ZEROS) or np.any(z < 0) or np.any(z > MAX_ZEROS):
        raise ImageFormatError("codes v and zero counts z must be 4-bit (0..15)")
    n = v.shape[-1]
    entries = np.zeros(v.shape[:-1] + (-(-n // ENTRIES_PER_WORD) * ENTRIES_PER_WORD,), dtype=np.uint8)
    entries[..., :n] = v.astype(np.uint8) | (z.astype(np.uint8) << CODE_BITS)
    return entries.view("<u8").astype(np.uint64)


def unpack_entries(words):
    """The entries ``(v, z)`` (two uint8 arrays, shape ``(..., 8 * words)``) of 64-bit ``words``."""
    entries = np.ascontiguousarray(np.asarray(words, dtype=np.uint64), dtype="<u8").view(np.uint8)
    return entries & MAX_ZEROS, entries >> CODE_BITS


def _hex_digits(width):
    return -(-width // 4)


def write_hex(path, words, width, comment):
    """Write ``words`` (non-negative ints below ``2**width``) as a ``$readmemh`` file with a ``//`` comment line."""
    digits = _hex_digits(width)
    lines = [f"// {comment}"] + [f"{int(w):0{digits}x}" for w in np.asarray(words, dtype=object).tolist()]
    Path(path).write_text("\n".join(lines) + "\n")


def read_hex(path, width):
    """The words (list of ints) of a ``$readmemh`` file written by :func:`write_hex`; a bad line raises an error."""
    digits = _hex_digits(width)
    words = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("//"):
            continue
        try:
            value = int(line, 16)
        except ValueError:
            value = -1
        if len(line) != digits or not 0 <= value < (1 << width):
            raise ImageFormatError(f"{path}:{number}: {line!r} is not a {width}-bit word of {digits} hex digits; "
                                   f"the file is corrupt -- lower the model again")
        words.append(value)
    return words


def _signed(words, bits):
    """Two's-complement ``bits``-bit words as signed int64."""
    words = np.asarray(words, dtype=np.int64)
    return words - ((words >> (bits - 1)) & 1) * (1 << bits)


_MANIFEST_BYTES = 1 << 22
"""Bytes a ``manifest.json`` may take (one of :data:`CONFIG_LIMITS`' 1,024 PEs takes about 0.7 MB)."""
_HEX_HEADER_BYTES = 256
"""Bytes a ``.hex`` file may take besides its words: the comment line."""


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(eq=False)
class EieImage:
    """Every memory of an EIE network for ``config.n_pe`` PEs.

    ``layers``: the layer table (tuple of :class:`LayerEntry`). ``codebooks``: (layers, 16) int64, Q.w_frac.
    ``ptr``: (n_pe, pointers) int64, both banks merged (index ``g`` as in the module docstring).
    ``spmat``: (n_pe, words) uint64. ``bias``: (n_pe, biases) int64, Q8.8. ``input_scale``, ``output_scale``: real
    units of one input and one output activation unit (see the module docstring). Building one checks it is
    consistent (shapes, chaining, ranges, codebook entry 0 = 0), not that it fits ``config``: see :meth:`check_fits`.
    """

    config: EieConfig
    layers: tuple
    codebooks: np.ndarray
    ptr: np.ndarray
    spmat: np.ndarray
    bias: np.ndarray
    input_scale: float = 1.0
    output_scale: float = 1.0

    def __post_init__(self):
        for name in ("input_scale", "output_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not 0 < float(value) < np.inf:
                raise ImageFormatError(f"image {name} must be a positive finite number, got {value!r}")
            setattr(self, name, float(value))
        self.layers = tuple(self.layers)
        self.codebooks = np.asarray(self.codebooks, dtype=np.int64)
        self.ptr = np.asarray(self.ptr, dtype=np.int64)
        self.spmat = np.asarray(self.spmat, dtype=np.uint64)
        self.bias = np.asarray(self.bias, dtype=np.int64)
        n, n_layers = self.config.n_pe, len(self.layers)
        if not n_layers:
            raise ImageFormatError("an image needs at least one layer")
        for name, array, rows in (("codebooks", self.codebooks, n_layers), ("ptr", self.ptr, n),
                                  ("spmat", self.spmat, n), ("bias", self.bias, n)):
            if array.ndim != 2 or array.shape[0] != rows:
                raise ImageFormatError(f"image {name} must have {rows} rows, got shape {array.shape}")
        if self.codebooks.shape[1] != CODEBOOK_SIZE or np.any(self.codebooks[:, 0] != 0):
            raise ImageFormatError(f"each layer needs a {CODEBOOK_SIZE}-entry codebook with entry 0 = 0")
        half = 1 << (WEIGHT_BITS - 1)
        if np.any(self.codebooks < -half) or np.any(self.codebooks >= half) or \
                np.any(self.bias < -half) or np.any(self.bias >= half):
            raise ImageFormatError("codebook and bias words must be 16-bit two's complement")
        for l, (layer, nxt) in enumerate(zip(self.layers, self.layers[1:])):
            if nxt.in_len != layer.out_len:
                raise ImageFormatError(f"layer {l + 1} takes {nxt.in_len} inputs but layer {l} gives {layer.out_len}")
        for l, layer in enumerate(self.layers):
            p = self.pointers(l)
            words = self.spmat.shape[1] - layer.spmat_base
            if p.shape[1] != layer.in_len + 1 or words < 0 or \
                    self.bias.shape[1] < layer.bias_base + self.config.rows_per_pe(layer.out_len):
                raise ImageFormatError(f"layer {l}: its pointers, entries or biases run past the end of the memory")
            if np.any(p[:, 0] != 0) or np.any(np.diff(p, axis=1) < 0) or np.any(p[:, -1] > ENTRIES_PER_WORD * words):
                raise ImageFormatError(f"layer {l}: pointers must start at 0, not decrease and stay inside the "
                                       f"sparse-matrix memory")

    @property
    def input_len(self):
        """Length of the network's input vector."""
        return self.layers[0].in_len

    @property
    def output_len(self):
        """Length of the network's output vector."""
        return self.layers[-1].out_len

    def inputs(self, x):
        """Float inputs (a vector of :attr:`input_len` values, or a batch of them) as the Q8.8 integers the hardware
        reads: ``x / input_scale`` rounded to nearest. A value that would saturate raises :class:`ImageError`."""
        scaled = np.asarray(x, dtype=np.float64) / self.input_scale
        if scaled.shape[-1:] != (self.input_len,):
            raise ImageError(f"the image takes inputs of {self.input_len} values, got an array of shape "
                             f"{scaled.shape}")
        fixed = np.rint(scaled * 2.0 ** ACT_FRAC)
        bad = ~(np.abs(scaled) < np.inf) | (fixed < -(1 << (ACT_BITS - 1))) | (fixed > (1 << (ACT_BITS - 1)) - 1)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ImageError(f"input value {np.asarray(x, dtype=np.float64)[where]:.6g} at index {where} is outside "
                             f"the image's input range (Q8.8 [-128, 128) times its input scale {self.input_scale:g}); "
                             f"lower the model again, calibrating on data that covers such inputs")
        return fixed.astype(np.int64)

    def outputs(self, y):
        """The real values of Q8.8 outputs ``y`` of the last layer: ``y / 256 * output_scale``."""
        return np.asarray(y, dtype=np.float64) / 2.0 ** ACT_FRAC * self.output_scale

    def pointers(self, l):
        """Layer ``l``'s pointers, (n_pe, in_len + 1), relative to its ``spmat_base``."""
        layer = self.layers[l]
        return self.ptr[:, layer.ptr_base:layer.ptr_base + layer.in_len + 1]

    def entries(self, l, k):
        """Layer ``l``'s entries ``(v, z)`` in PE ``k``, in memory order (padding included)."""
        layer = self.layers[l]
        end = int(self.pointers(l)[k, -1])
        v, z = unpack_entries(self.spmat[k, layer.spmat_base:layer.spmat_base + -(-end // ENTRIES_PER_WORD)])
        return v[:end], z[:end]

    def requirements(self):
        """Words needed per PE in each memory (and the layer count), keyed by the EieConfig field that bounds it."""
        lengths = [self.input_len] + [layer.out_len for layer in self.layers]
        return {"ptr_depth": self.ptr.shape[1], "spmat_depth": self.spmat.shape[1], "bias_depth": self.bias.shape[1],
                "act_depth": max(self.config.rows_per_pe(n) for n in lengths), "max_layers": len(self.layers)}

    def check_fits(self, config=None):
        """Raise :class:`CapacityError` unless the image fits ``config`` (default: its own), naming every memory
        that overflows, by how much, and the parameter to raise."""
        config = config or self.config
        if config.n_pe != self.config.n_pe:
            raise CapacityError(f"the image is for {self.config.n_pe} PEs but the hardware has {config.n_pe}; "
                                f"lower the model again with n_pe={config.n_pe}")
        what = {"ptr_depth": "pointer memory (words over both banks)", "spmat_depth": "sparse-matrix memory "
                "(64-bit words)", "bias_depth": "bias memory (words)", "act_depth": "activation buffer (16-bit "
                "words per ping-pong half)", "max_layers": "layer table (layers)"}
        problems = [f"{what[name]} needs {need} per PE but EieConfig.{name}={have}: {need - have} over; raise "
                    f"{name} to at least {need}"
                    for name, need in self.requirements().items() if need > (have := getattr(config, name))]
        if problems:
            more = " (or use more PEs)" if any(not p.startswith("layer table") for p in problems) else ""
            raise CapacityError("the image does not fit the hardware" + more + ":\n  " + "\n  ".join(problems))

    def _memories(self):
        """``{file name: words}`` of every memory file (names as in :meth:`_expected_files`)."""
        memories = {"layers.hex": [layer.pack() for layer in self.layers],
                    "codebook.hex": self.codebooks.ravel() % (1 << WEIGHT_BITS)}
        for k in range(self.config.n_pe):
            memories[f"pe{k:03d}_ptr_even.hex"] = self.ptr[k, 0::2]
            memories[f"pe{k:03d}_ptr_odd.hex"] = self.ptr[k, 1::2]
            memories[f"pe{k:03d}_spmat.hex"] = self.spmat[k]
            memories[f"pe{k:03d}_bias.hex"] = self.bias[k] % (1 << ACT_BITS)
        return memories

    def save(self, directory):
        """Write the manifest and the ``.hex`` files into ``directory`` (created if needed); return its Path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.check_fits()
        entries = {}
        memories = self._memories()
        for name, (memory, width) in self._expected_files(self.config).items():
            write_hex(directory / name, memories[name], width, f"{FORMAT_NAME} v{FORMAT_VERSION} {name}: {memory}, "
                                                      f"{width}-bit words")
            entries[name] = {"memory": memory, "width": width, "depth": len(memories[name]),
                             "sha256": _sha256(directory / name)}
        manifest = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "constants": _CONSTANTS,
                    "config": asdict(self.config), "n_layers": len(self.layers),
                    "scales": {"input": self.input_scale, "output": self.output_scale}, "files": entries}
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory, config=None):
        """Read an image written by :meth:`save`; with ``config``, also check it fits that hardware.

        A missing, corrupt (hash mismatch), old-version or inconsistent image raises :class:`ImageFormatError`. Every
        count is checked before it is used: the configuration against :data:`CONFIG_LIMITS` and the layer table,
        each file's depth against its memory's and each file's size against its depth, so that a crafted manifest
        is refused before anything is allocated or read for it.
        """
        directory = Path(directory)
        redo = "lower the model again with sparq.compiler.eie"
        manifest_path = directory / "manifest.json"
        try:
            size = manifest_path.stat().st_size
            manifest = json.loads(manifest_path.read_text()) if size <= _MANIFEST_BYTES else None
        except (OSError, ValueError) as exc:
            raise ImageFormatError(f"{directory}: no readable manifest.json ({exc}); {redo}") from None
        if size > _MANIFEST_BYTES:
            raise ImageFormatError(f"{manifest_path}: {size} bytes, more than a manifest of the largest "
                                   f"configuration; {redo}")
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
            raise ImageFormatError(f"{directory}/manifest.json is not a {FORMAT_NAME} manifest; {redo}")
        if manifest.get("version") != FORMAT_VERSION:
            raise ImageFormatError(f"{directory}: image format version {manifest.get('version')!r} but this sparq "
                                   f"reads version {FORMAT_VERSION!r}; {redo}")
        if manifest.get("constants") != _CONSTANTS:
            raise ImageFormatError(f"{directory}: the image's constants {manifest.get('constants')} differ from this "
                                   f"format's {_CONSTANTS}; {redo}")
        try:
            image_config = EieConfig(**manifest["config"])
            n_layers, listed = manifest["n_layers"], manifest["files"]
            scales = manifest.get("scales", {"input": 1.0, "output": 1.0})  # absent before scales were recorded
            scales = {"input_scale": float(scales["input"]), "output_scale": float(scales["output"])}
        except ImageError as exc:
            raise ImageFormatError(f"{directory}/manifest.json: {exc}; {redo}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageFormatError(f"{directory}/manifest.json lacks or garbles a field ({exc}); {redo}") from None
        if not isinstance(n_layers, int) or isinstance(n_layers, bool) or not 1 <= n_layers <= image_config.max_layers:
            raise ImageFormatError(f"{directory}/manifest.json: n_layers={n_layers!r} is not a layer count of 1 to "
                                   f"max_layers={image_config.max_layers}; {redo}")
        if not isinstance(listed, dict):
            raise ImageFormatError(f"{directory}/manifest.json: files is not an object; {redo}")
        words = {}
        expected = cls._expected_files(image_config)
        if set(listed) != set(expected):
            missing, extra = sorted(set(expected) - set(listed)), sorted(set(listed) - set(expected))
            raise ImageFormatError(f"{directory}: the manifest lists the wrong files for {image_config.n_pe} PEs "
                                   f"(missing {missing[:3]}, unexpected {extra[:3]}); {redo}")
        depths = {"layers": image_config.max_layers, "codebook": CODEBOOK_SIZE * image_config.max_layers,
                  "ptr_even": image_config.ptr_depth // 2, "ptr_odd": image_config.ptr_depth // 2,
                  "spmat": image_config.spmat_depth, "bias": image_config.bias_depth}
        for name, (memory, width) in expected.items():
            path = directory / name
            entry = listed[name]
            if not isinstance(entry, dict):
                raise ImageFormatError(f"{directory}/manifest.json: the entry of {name} is {entry!r}, not an object; "
                                       f"{redo}")
            if (entry.get("memory"), entry.get("width")) != (memory, width):
                raise ImageFormatError(f"{path}: the manifest says {entry.get('memory')}/{entry.get('width')} bits, "
                                       f"the format says {memory}/{width} bits; {redo}")
            depth = entry.get("depth")
            if not isinstance(depth, int) or isinstance(depth, bool) or not 0 <= depth <= depths[memory]:
                raise ImageFormatError(f"{path}: the manifest gives a depth of {depth!r} words, not 0 to the "
                                       f"{depths[memory]} of its memory; {redo}")
            if not path.is_file():
                raise ImageFormatError(f"{path}: missing; {redo}")
            if path.stat().st_size > _HEX_HEADER_BYTES + depth * (_hex_digits(width) + 1):
                raise ImageFormatError(f"{path}: {path.stat().st_size} bytes, more than {depth} words of "
                                       f"{width} bits take; the file is corrupt or from another image; {redo}")
            if _sha256(path) != entry.get("sha256"):
                raise ImageFormatError(f"{path}: SHA-256 does not match the manifest: the file is corrupt or from "
                                       f"another image; {redo}")
            words[name] = read_hex(path, width)
            if len(words[name]) != depth:
                raise ImageFormatError(f"{path}: {len(words[name])} words but the manifest says {depth}; {redo}")
        n = image_config.n_pe
        if len(words["layers.hex"]) != n_layers or len(words["codebook.hex"]) != n_layers * CODEBOOK_SIZE:
            raise ImageFormatError(f"{directory}: layer table or codebook length disagrees with n_layers={n_layers}; "
                                   f"{redo}")

        def per_pe(memory):
            rows = [words[f"pe{k:03d}_{memory}.hex"] for k in range(n)]
            if len({len(r) for r in rows}) > 1:
                raise ImageFormatError(f"{directory}: the PEs' {memory} files differ in length; {redo}")
            return rows

        even, odd = per_pe("ptr_even"), per_pe("ptr_odd")
        if len(odd[0]) not in (len(even[0]) - 1, len(even[0])):
            raise ImageFormatError(f"{directory}: the even and odd pointer banks hold {len(even[0])} and "
                                   f"{len(odd[0])} words, which no pointer memory gives; {redo}")
        ptr = np.zeros((n, len(even[0]) + len(odd[0])), dtype=np.int64)
        ptr[:, 0::2], ptr[:, 1::2] = even, odd
        spmat = np.array(per_pe("spmat"), dtype=np.uint64).reshape(n, -1)
        bias = _signed(np.array(per_pe("bias"), dtype=np.int64).reshape(n, -1), ACT_BITS)
        codebooks = _signed(words["codebook.hex"], WEIGHT_BITS).reshape(n_layers, CODEBOOK_SIZE)
        image = cls(image_config, [LayerEntry.unpack(w) for w in words["layers.hex"]], codebooks, ptr, spmat, bias,
                    **scales)
        if config is not None:
            image.check_fits(config)
        return image

    @staticmethod
    def _expected_files(config):
        """``{file name: (memory, width)}`` of an image for ``config``."""
        files = {"layers.hex": ("layers", LAYER_BITS), "codebook.hex": ("codebook", WEIGHT_BITS)}
        for k in range(config.n_pe):
            for memory, width in (("ptr_even", config.ptr_width), ("ptr_odd", config.ptr_width),
                                  ("spmat", WORD_BITS), ("bias", ACT_BITS)):
                files[f"pe{k:03d}_{memory}.hex"] = (memory, width)
        return files


_MASK16 = (1 << ACT_BITS) - 1


def load_word(n_pe, target, pe, addr, data):
    """One load-port word: write ``data`` at ``addr`` of memory ``target`` (a :class:`LoadTarget`) of PE ``pe``.
    ``data`` is the memory word as an unsigned integer (a signed 16-bit word masked to 16 bits)."""
    return pack_fields(load_fields(n_pe), {"target": LoadTarget(target), "pe": pe, "addr": addr, "data": int(data)},
                       what="load-port")


def spmat_words(image, k):
    """Load-port words writing PE ``k``'s sparse matrix of ``image``."""
    return [load_word(image.config.n_pe, LoadTarget.SPMAT, k, a, int(w)) for a, w in enumerate(image.spmat[k])]


def image_words(image):
    """Load-port words writing every memory of ``image`` (not the input), in the order layer table, codebooks,
    then per PE its pointers, sparse matrix and biases."""
    n = image.config.n_pe
    words = [load_word(n, LoadTarget.LAYER, 0, l, entry.pack()) for l, entry in enumerate(image.layers)]
    words += [load_word(n, LoadTarget.CODEBOOK, 0, i, int(w) & _MASK16)
              for i, w in enumerate(image.codebooks.ravel())]
    for k in range(n):
        words += [load_word(n, LoadTarget.PTR, k, g, int(p)) for g, p in enumerate(image.ptr[k])]
        words += spmat_words(image, k)
        words += [load_word(n, LoadTarget.BIAS, k, a, int(b) & _MASK16) for a, b in enumerate(image.bias[k])]
    return words


def input_words(n_pe, x):
    """Load-port words writing the Q8.8 input vector ``x``: element ``i`` to PE ``i % n_pe``, local address
    ``i // n_pe`` (target ACT)."""
    return [load_word(n_pe, LoadTarget.ACT, i % n_pe, i // n_pe, int(v) & _MASK16) for i, v in enumerate(x)]


def read_requests(n_pe, act_depth, length):
    """Read-port requests for elements ``0 .. length - 1`` of the current vector."""
    fields = read_fields(n_pe, act_depth)
    return [pack_fields(fields, {"pe": i % n_pe, "addr": i // n_pe}, what="read-port") for i in range(length)]

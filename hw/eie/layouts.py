"""Packed-word layouts shared by the EIE blocks; every width comes from ``sparq.formats.eie``."""

import enum

from amaranth import signed, unsigned
from amaranth.lib import data

from sparq.formats.eie import (
    ACC_BITS,
    ACT_BITS,
    CODE_BITS,
    ENTRIES_PER_WORD,
    LAYER_BITS,
    LAYER_FIELDS,
    WORD_BITS,
    ZERO_BITS,
)

__all__ = ["LoadTarget", "INDEX_BITS", "ADDR_BITS", "entry_layout", "word_layout", "layer_layout",
           "broadcast_layout", "run_layout", "au_entry_layout", "load_layout", "read_layout",
           "act", "acc"]

INDEX_BITS = dict(LAYER_FIELDS)["in_len"]
"""Bits of a broadcast activation index ``j`` (``in_len`` is a 16-bit layer-table field)."""
ADDR_BITS = max(bits for name, bits in LAYER_FIELDS if name.endswith("_base"))
"""Bits of a load-port address: enough for any memory the layer table can address."""

act = signed(ACT_BITS)
"""An activation, Q8.8."""
acc = signed(ACC_BITS)
"""An accumulator, Q.(8 + w_frac)."""


class LoadTarget(enum.IntEnum):
    """Which memory a load-port word writes (``load_layout().target``)."""
    LAYER = 0     #: layer-table word ``addr`` (the layer index)
    CODEBOOK = 1  #: codebook word ``addr`` = ``16 * layer + code`` (of every PE: each keeps a copy)
    PTR = 2       #: pointer ``addr`` = ``g`` of PE ``pe`` (the bank is ``g``'s parity)
    SPMAT = 3     #: sparse-matrix word ``addr`` of PE ``pe``
    BIAS = 4      #: bias word ``addr`` of PE ``pe``
    ACT = 5       #: input activation at local address ``addr`` of PE ``pe`` (layer 0's source registers)


def entry_layout() -> data.StructLayout:
    """One 8-bit sparse-matrix entry: codebook index ``code`` (low nibble) and zero count ``zeros``."""
    return data.StructLayout({"code": unsigned(CODE_BITS), "zeros": unsigned(ZERO_BITS)})


def word_layout() -> data.ArrayLayout:
    """A 64-bit sparse-matrix word: entry ``e`` in bits ``[8e+7 : 8e]``."""
    layout = data.ArrayLayout(entry_layout(), ENTRIES_PER_WORD)
    assert layout.size == WORD_BITS
    return layout


def layer_layout() -> data.StructLayout:
    """A layer-table word (``sparq.formats.eie.LAYER_FIELDS``, least significant first)."""
    layout = data.StructLayout({name: unsigned(bits) for name, bits in LAYER_FIELDS})
    assert layout.size == LAYER_BITS
    return layout


def broadcast_layout() -> data.StructLayout:
    """What the CCU broadcasts into every activation queue: a non-zero activation and its index ``j``."""
    return data.StructLayout({"value": act, "index": unsigned(INDEX_BITS)})


def run_layout(ptr_width: int) -> data.StructLayout:
    """A column's run of entries, ``[start, end)`` relative to the layer, with its activation."""
    return data.StructLayout({"value": act, "start": unsigned(ptr_width), "end": unsigned(ptr_width)})


def au_entry_layout() -> data.StructLayout:
    """One entry on its way into the arithmetic unit; ``first`` marks the first entry of a column."""
    return data.StructLayout({"value": act, "entry": entry_layout(), "first": 1})


def load_layout(n_pe: int) -> data.StructLayout:
    """A load-port word: write ``data`` at ``addr`` of memory ``target`` (of PE ``pe`` for per-PE memories)."""
    return data.StructLayout({"target": LoadTarget, "pe": range(n_pe), "addr": unsigned(ADDR_BITS),
                              "data": unsigned(max(WORD_BITS, LAYER_BITS))})


def read_layout(n_pe: int, act_depth: int) -> data.StructLayout:
    """An output-port request: the activation at local address ``addr`` of PE ``pe`` (output ``addr * N + pe``)."""
    return data.StructLayout({"pe": range(n_pe), "addr": range(act_depth)})

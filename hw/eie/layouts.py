"""Packed-word layouts shared by the EIE blocks; every field and width comes from ``sparq.formats.eie``."""

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
    load_fields,
    read_fields,
)

__all__ = ["INDEX_BITS", "entry_layout", "word_layout", "layer_layout",
           "broadcast_layout", "run_layout", "au_entry_layout", "load_layout", "read_layout",
           "act", "acc"]

INDEX_BITS = dict(LAYER_FIELDS)["in_len"]
"""Bits of a broadcast activation index ``j`` (``in_len`` is a 16-bit layer-table field)."""

act = signed(ACT_BITS)
"""An activation, Q8.8."""
acc = signed(ACC_BITS)
"""An accumulator, Q.(8 + w_frac)."""


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


def _fields_layout(field_list) -> data.StructLayout:
    return data.StructLayout({name: unsigned(bits) for name, bits in field_list})


def load_layout(n_pe: int) -> data.StructLayout:
    """A load-port word (``sparq.formats.eie.load_fields``): write ``data`` at ``addr`` of memory ``target`` (a
    :class:`~sparq.formats.eie.LoadTarget`), of PE ``pe`` for per-PE memories."""
    return _fields_layout(load_fields(n_pe))


def read_layout(n_pe: int, act_depth: int) -> data.StructLayout:
    """An output-port request (``sparq.formats.eie.read_fields``): the activation at local address ``addr`` of PE
    ``pe`` (output ``addr * N + pe``)."""
    return _fields_layout(read_fields(n_pe, act_depth))

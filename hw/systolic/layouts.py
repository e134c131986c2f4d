"""Packed-word layouts shared between the systolic blocks; field widths come from ``sparq.formats.systolic``."""

from amaranth import signed, unsigned
from amaranth.lib import data

from sparq.formats.systolic import FIELDS, INSTRUCTION_BITS, MULTIPLIER_BITS, SHARED_FIELDS, SHIFT_BITS, Flag

__all__ = ["COUNT_BITS", "flags_layout", "instruction_layout", "issue_layout", "accumulator_tag_layout",
           "accumulator_write_layout", "param_layout", "activate_command_layout", "vector_layout"]

COUNT_BITS = dict(FIELDS)["count"]
"""Bits of an instruction's ``count`` field, and so of every counter of rows, words or tiles still to do."""


def flags_layout() -> data.FlexibleLayout:
    """An instruction's ``flags`` field: one bit per ``sparq.formats.systolic.Flag``, named in lower case (``bank``,
    ``accumulate``, ``relu``, ``from_tb``, ``wide``), at the flag's bit."""
    return data.FlexibleLayout(dict(FIELDS)["flags"], {
        flag.name.lower(): data.Field(unsigned(1), flag.value.bit_length() - 1) for flag in Flag})


def instruction_layout() -> data.FlexibleLayout:
    """An encoded instruction (``sparq.formats.systolic.FIELDS``, least significant first, zero-padded to 128 bits);
    ``flags`` is :func:`flags_layout`, and each ``sparq.formats.systolic.SHARED_FIELDS`` alias (``src``) views the
    bits of its field (``acc``)."""
    fields, offset = {}, 0
    for name, width in FIELDS:
        fields[name] = data.Field(flags_layout() if name == "flags" else unsigned(width), offset)
        offset += width
    for alias, name in SHARED_FIELDS.items():
        fields[alias] = data.Field(unsigned(dict(FIELDS)[name]), fields[name].offset)
    return data.FlexibleLayout(INSTRUCTION_BITS, fields)


def vector_layout(lanes: int, width: int = 8) -> data.ArrayLayout:
    """A word of ``lanes`` signed ``width``-bit lanes: a unified-buffer, weight-buffer or host word."""
    return data.ArrayLayout(signed(width), lanes)


def issue_layout(acc_depth: int) -> data.StructLayout:
    """The tag of an activation vector entering the matrix unit: where its result goes in the accumulators."""
    return data.StructLayout({"valid": 1, "bank": 1, "accumulate": 1, "addr": range(acc_depth)})


def accumulator_tag_layout(acc_depth: int) -> data.StructLayout:
    """Where a result vector goes in the accumulators (the fields of :func:`accumulator_write_layout` but the data)."""
    return data.StructLayout({"valid": 1, "accumulate": 1, "addr": range(acc_depth)})


def accumulator_write_layout(cols: int, acc_depth: int, acc_width=32) -> data.StructLayout:
    """A result vector leaving the matrix unit for the accumulators; ``acc_width`` is a signed width or a shape
    (``unsigned(32)`` for the fp32 bit patterns of a float matrix unit)."""
    shape = signed(acc_width) if isinstance(acc_width, int) else acc_width
    return data.StructLayout({"valid": 1, "accumulate": 1, "addr": range(acc_depth),
                              "data": data.ArrayLayout(shape, cols)})


def param_layout(acc_width: int = 32) -> data.StructLayout:
    """One column's activation parameters (``sparq.formats.systolic`` parameter record)."""
    return data.StructLayout({"bias": signed(acc_width), "multiplier": unsigned(MULTIPLIER_BITS),
                              "shift": unsigned(SHIFT_BITS)})


def activate_command_layout(acc_depth: int, ub_depth: int, wb_depth: int, max_wait: int,
                            count_bits: int = COUNT_BITS) -> data.StructLayout:
    """An ACTIVATE instruction as the activation unit takes it, with ``wait``: the cycles (at most ``max_wait``)
    from the cycle after it is taken until its accumulator rows have landed."""
    return data.StructLayout({"acc": range(acc_depth), "ub": range(ub_depth), "wb": range(wb_depth),
                              "count": count_bits, "relu": 1, "wait": range(max_wait + 1)})

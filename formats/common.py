"""What the formats share: named bit fields packed into an integer word, and the check of a configuration's integer
fields. Pure Python and numpy; imports nothing of sparq.

A field list is a sequence of ``(name, bits)`` pairs, least significant field first, as
:data:`sparq.formats.eie.LAYER_FIELDS`, :func:`sparq.formats.eie.load_fields` and :data:`sparq.formats.systolic.FIELDS`
are; ``sparq.hw`` builds its ``amaranth.lib.data`` layouts from the same lists, so a word packed here is the word the
hardware sees.
"""

from dataclasses import fields

import numpy as np

__all__ = ["pack_fields", "unpack_fields", "check_positive_ints"]


def pack_fields(field_list, values, *, what="word") -> int:
    """The integer whose fields (``field_list``, least significant first) hold ``values`` (a mapping by name, or
    an object whose attributes are the fields). A value that is negative or does not fit its field raises
    ``ValueError`` naming ``what``, the field and its width."""
    get = values.__getitem__ if isinstance(values, dict) else lambda name: getattr(values, name)
    word, shift = 0, 0
    for name, bits in field_list:
        value = int(get(name))
        if not 0 <= value < 1 << bits:
            raise ValueError(f"{what} field {name}={value} does not fit its {bits} bits")
        word |= value << shift
        shift += bits
    return word


def unpack_fields(field_list, word) -> dict:
    """``{name: value}`` of the fields of ``word`` (the inverse of :func:`pack_fields`; bits above the last field
    are ignored)."""
    values, shift = {}, 0
    for name, bits in field_list:
        values[name] = (word >> shift) & ((1 << bits) - 1)
        shift += bits
    return values


def check_positive_ints(config, error, *, skip=()):
    """Check that every dataclass field of ``config`` but those in ``skip`` is a positive integer, and store it as a
    plain ``int`` (a numpy integer is accepted and converted, so the configuration compares and hashes equal to one
    built from ints and goes into JSON as it is). A ``bool`` is refused. ``config`` may be a frozen dataclass:
    call this from its ``__post_init__``.

    A bad value raises ``error("<Class>.<field> must be a positive integer, not <value>")``.
    """
    for f in fields(config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise error(f"{type(config).__name__}.{f.name} must be a positive integer, not {value!r}")
        object.__setattr__(config, f.name, int(value))

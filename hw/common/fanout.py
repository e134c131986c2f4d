"""Registered copies of a signal, one per destination, that synthesis keeps apart: the fan-out tree of a signal
that many blocks spread over the die read."""

from amaranth import Signal

__all__ = ["KEEP_COPY", "registered_copies"]

#: ``Signal(attrs=KEEP_COPY)``: the flip-flops that drive this signal are a deliberate copy of others with the same
#: input; Yosys would merge identical flip-flops back into one (``opt_merge``), so :mod:`sparq.fpga.build` marks
#: them ``keep`` first.
KEEP_COPY = {"sparq_keep_copy": 1}


def registered_copies(m, value, n: int, name: str, *, copies: int | None = None, enables=None) -> list:
    """Registers loaded with ``value`` (in every cycle, or in the cycles their enable is high), lagging it by one
    cycle, for ``n`` destinations: ``copies`` of them (default ``n``, one per destination), destination ``k`` reading
    copy ``k * copies // n``. A signal read across the die then leaves several flip-flops, each placed near its
    readers, instead of one flip-flop routed to all of them. ``enables``: the ``n`` destinations' enables (as this
    function returns them for a 1-bit value with the same ``copies``, so that no one enable drives every copy's
    clock enable across the die); copy ``c`` loads with the enable of its first destination. Returns the ``n``
    destinations' registers."""
    copies = n if copies is None else copies
    registers = [Signal.like(value, name=f"{name}_copy{c}", attrs=KEEP_COPY if copies > 1 else {})
                 for c in range(copies)]
    for c, register in enumerate(registers):
        if enables is None:
            m.d.sync += register.eq(value)
        else:
            with m.If(enables[-(-c * n // copies)]):
                m.d.sync += register.eq(value)
    return [registers[k * copies // n] for k in range(n)]

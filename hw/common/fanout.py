"""Registered copies of a signal, one per destination, that synthesis keeps apart: the fan-out tree of a signal
that many blocks spread over the die read."""

from amaranth import Signal

__all__ = ["KEEP_COPY", "registered_copies"]

#: ``Signal(attrs=KEEP_COPY)``: the flip-flops that drive this signal are a deliberate copy of others with the same
#: input; Yosys would merge identical flip-flops back into one (``opt_merge``), so :mod:`sparq.fpga.build` marks
#: them ``keep`` first.
KEEP_COPY = {"sparq_keep_copy": 1}


def registered_copies(m, value, n: int, name: str, *, enable=None) -> list:
    """``n`` registers, each loaded with ``value`` (in every cycle, or in the cycles ``enable`` is high), so each
    copy lags ``value`` by one cycle and drives one destination: a signal read across the die leaves ``n``
    flip-flops, each placed near its reader, instead of one flip-flop routed to all of them."""
    copies = [Signal.like(value, name=f"{name}_copy{k}", attrs=KEEP_COPY) for k in range(n)]
    for copy in copies:
        if enable is None:
            m.d.sync += copy.eq(value)
        else:
            with m.If(enable):
                m.d.sync += copy.eq(value)
    return copies

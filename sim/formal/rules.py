"""Building blocks of the property wrappers: free inputs, the stream rules, a one-cycle delay.

The stream rules are those of ``amaranth.lib.stream``: once ``valid`` is high it stays high until the transfer
(``valid & ready``), and ``payload`` does not change meanwhile. :func:`stream_rules` states them for one port, as an
``Assert`` on a port the block drives and as an ``Assume`` on a port its environment drives (the environment keeps
the same rules). :func:`all_stream_rules` does that for every stream port of a component, found from its signature, and
:class:`StreamRules` proves them for a block with every other input free.
"""

from amaranth import Module, ResetSignal, Signal, Value
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Const
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from .prove import Property

__all__ = ["no_reset", "free_inputs", "stream_ports", "stream_rules", "all_stream_rules", "delayed", "transfer",
           "StreamRules"]


def no_reset(m):
    """Assume the ``sync`` reset stays low: the run starts in the reset state (every register at its reset value)
    and is never reset again. Without this, the solver may also reset the design in any cycle."""
    m.d.comb += Assume(~ResetSignal())


def free_inputs(m, component: wiring.Component, *, skip=()):
    """Drive every input port of ``component`` with a free value (``AnySeq``: any value in any cycle), except the
    ports named in ``skip`` (dotted paths such as ``"o.ready"``, or a whole port such as ``"act_data"``) and the
    constant members (the ``ready`` of an ``always_ready`` stream), which have no value to choose."""
    skip = set(skip)
    for path, member, value in component.signature.flatten(component):
        dotted = [".".join(map(str, path[:k])) for k in range(1, len(path) + 1)]
        if member.flow == In and not skip.intersection(dotted) and not isinstance(value, Const):
            m.d.comb += value.eq(AnySeq(len(Value.cast(value))))


def stream_ports(component: wiring.Component):
    """``(name, port, flow)`` for each ``lib.stream`` member of ``component``'s signature, also inside nested
    signatures (named ``"bundle.port"``); ``flow`` is as seen from ``component`` (``In``: its environment drives
    ``valid`` and ``payload``)."""
    def walk(obj, signature, prefix):
        for name, member in signature.members.items():
            if not member.is_signature:
                continue
            port = getattr(obj, name)
            if isinstance(member.signature, stream.Signature):
                yield prefix + name, port, member.flow
            else:
                yield from walk(port, member.signature, f"{prefix}{name}.")
    return list(walk(component, component.signature, ""))


def transfer(port) -> Value:
    """``valid & ready`` of a stream port (``ready`` is the constant 1 of an ``always_ready`` one)."""
    return port.valid & port.ready


def stream_rules(m, port, name: str, *, assume: bool):
    """State the stream rules for ``port``: ``Assume`` them (``assume=True``, the environment drives it) or
    ``Assert`` them (the block drives it). A port without ``ready`` (``always_ready``) has no rule to keep."""
    if not hasattr(port, "ready"):
        return
    check = Assume if assume else Assert
    payload = Value.cast(port.payload)
    stalled = Signal(name=f"{name}_stalled")  # last cycle: valid and not ready
    m.d.sync += stalled.eq(port.valid & ~port.ready)
    held = delayed(m, payload, f"{name}_payload_was")
    with m.If(stalled):
        m.d.comb += check(port.valid, f"{name}: valid dropped before its transfer")
        if len(payload):
            m.d.comb += check(payload == held, f"{name}: payload changed while valid and not ready")


def all_stream_rules(m, component: wiring.Component, prefix: str = ""):
    """:func:`stream_rules` for every stream port of ``component``: asserted on its outputs, assumed on its
    inputs. Messages name the port as ``prefix + name``."""
    for name, port, flow in stream_ports(component):
        stream_rules(m, port, prefix + name, assume=flow == In)


def delayed(m, value, name: str) -> Signal:
    """A register holding ``value`` of the previous cycle (its reset value in the first cycle)."""
    value = Value.cast(value)
    register = Signal(len(value), name=name)
    m.d.sync += register.eq(value)
    return register


class StreamRules(Property):
    """Every stream port of ``block`` keeps the stream rules, with all its other inputs free: proved by
    k-induction of length ``depth`` (default 4). The environment keeps the rules on the block's input streams.

    Also the base of the wrappers that add properties to that environment: they override :meth:`check`."""

    def __init__(self, block: wiring.Component, *, mode: str = "prove", depth: int = 4):
        self.block, self.mode, self.depth = block, mode, depth

    @property
    def name(self):
        return f"{type(self).__name__}[{type(self.block).__name__}]"

    def elaborate(self, platform):
        m = Module()
        m.submodules.block = self.block
        free_inputs(m, self.block)
        all_stream_rules(m, self.block)
        self.check(m, self.block)
        return m

    def check(self, m, block):
        """Add properties of ``block`` to ``m`` (nothing here: the stream rules only)."""

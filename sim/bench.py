"""One testbench API over two simulators: cocotb + Verilator, and Amaranth's own Python simulator.

A testbench body is a plain ``async def body(bench, **params)`` that talks to the design only through a
:class:`Bench`. The same body therefore runs under Verilator (through cocotb, see :mod:`sparq.sim.harness`) and under
Amaranth's simulator, for quick unit tests that need no C++ build.

Ports are named by their dotted path in the component's signature: ``"a"``, ``"i.payload"``, ``"o.valid"``,
``"counters.0"``. Values are Python integers with the signedness of the Amaranth shape: a ``signed(8)`` port reads
``-1``, not ``255``. Packed payloads (``amaranth.lib.data`` views) read and write as their raw bits.

Timing contract, identical on both simulators:

* :meth:`Bench.tick` returns just after a rising clock edge, with every register updated.
* :meth:`Bench.set` drives an input; the value is sampled at the next rising edge.
* :meth:`Bench.settle` lets combinational logic settle after :meth:`Bench.set`, so that :meth:`Bench.get` sees the
  outputs that depend on the new inputs. Reading right after :meth:`Bench.tick` needs no settle.

Cycle-accurate stream agents (:class:`StreamSource`, :class:`StreamSink`, :class:`StreamMonitor`) run in lock step
under :meth:`Bench.run`: every cycle all agents drive, the bench settles once, all agents sample, and the clock
ticks. A transfer happens on an edge where ``valid`` and ``ready`` were both high just before it. Every agent checks
the stream rules on its port (:class:`StreamRules`: ``valid`` held until the transfer, ``payload`` steady meanwhile)
and counts the pressure it saw: a source its gaps (an item waiting, ``valid`` low) and its blocked cycles (``valid``
and not ``ready``), a sink its stalls (``valid`` and not ``ready``), so a test can assert that the pressure it asked
for happened.
"""

import random
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass

__all__ = ["PortInfo", "port_map", "Bench", "AmaranthBench", "CocotbBench", "resolve_body", "Agent",
           "StreamRuleViolation", "StreamRules", "StreamSource", "StreamSink", "StreamMonitor", "CLOCK_PERIOD_NS"]

CLOCK_PERIOD_NS = 10


@dataclass(frozen=True)
class PortInfo:
    """A port of the design: its name in the generated Verilog, its width and its signedness."""
    verilog_name: str
    width: int
    signed: bool

    def to_int(self, raw: int) -> int:
        """Interpret ``raw`` bits as this port's Python integer."""
        raw &= (1 << self.width) - 1
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw

    def to_raw(self, value: int) -> int:
        """The bits that drive ``value`` onto this port; raises if it does not fit."""
        lo, hi = (-(1 << (self.width - 1)), (1 << (self.width - 1)) - 1) if self.signed else (0, (1 << self.width) - 1)
        if not lo <= value <= hi:
            raise ValueError(f"value {value} does not fit port {self.verilog_name!r} "
                             f"({'signed' if self.signed else 'unsigned'} {self.width} bits)")
        return value & ((1 << self.width) - 1)


def port_map(component) -> dict[str, PortInfo]:
    """Map each dotted signature path of the ``wiring.Component`` to its :class:`PortInfo`.

    The Verilog names are those Amaranth's ``verilog.convert`` gives the ports of a component: the path joined by ``__``.
    """
    from amaranth.hdl import Value  # imported here: the cocotb side of the bench runs without Amaranth
    ports = {}
    for path, _member, value in component.signature.flatten(component):
        value = Value.cast(value)
        shape = value.shape()
        ports[".".join(map(str, path))] = PortInfo("__".join(map(str, path)), shape.width, shape.signed)
    return ports


class Bench(metaclass=ABCMeta):
    """A clocked design under test; see the module docstring for the timing contract."""

    def __init__(self, ports: dict[str, PortInfo]):
        self.ports = ports
        self.cycle = 0

    def _port(self, name: str) -> PortInfo:
        try:
            return self.ports[name]
        except KeyError:
            raise KeyError(f"the design has no port {name!r}; it has {', '.join(sorted(self.ports))}") from None

    @abstractmethod
    def set(self, name: str, value: int) -> None:
        """Drive input port ``name`` with ``value``."""

    @abstractmethod
    def get(self, name: str) -> int:
        """Read port ``name`` as a Python integer with the port's signedness."""

    @abstractmethod
    async def _edge(self) -> None:
        """Wait for one rising clock edge and for the registers to update."""

    @abstractmethod
    async def settle(self) -> None:
        """Let combinational logic settle after :meth:`set`."""

    @abstractmethod
    def _set_reset(self, value: int) -> None:
        """Drive the clock domain's synchronous reset."""

    async def tick(self, count: int = 1) -> None:
        """Advance ``count`` clock cycles."""
        for _ in range(count):
            await self._edge()
        self.cycle += count

    async def reset(self, cycles: int = 2) -> None:
        """Hold the synchronous reset for ``cycles`` clock cycles."""
        self._set_reset(1)
        await self.tick(cycles)
        self._set_reset(0)

    async def run(self, agents, *, until=None, max_cycles: int = 1_000_000) -> int:
        """Run ``agents`` in lock step until ``until()`` is true (or every agent is done), and return the cycle count.

        Raises :class:`TimeoutError` after ``max_cycles`` cycles, naming the agents still busy.
        """
        until = until or (lambda: all(agent.done for agent in agents))
        for cycle in range(max_cycles):
            if until():
                return cycle
            for agent in agents:
                agent.drive(self)
            await self.settle()
            for agent in agents:
                agent.sample(self)
            await self.tick()
        busy = ", ".join(repr(agent) for agent in agents if not agent.done)
        raise TimeoutError(f"no completion after {max_cycles} cycles; still busy: {busy or 'none'}")


class AmaranthBench(Bench):
    """A :class:`Bench` over an Amaranth simulator testbench context (``amaranth.sim``)."""

    def __init__(self, ctx, component, domain):
        from amaranth.hdl import Value
        super().__init__(port_map(component))
        self._ctx = ctx
        self._domain = domain
        self._values = {".".join(map(str, path)): Value.cast(value)
                        for path, _member, value in component.signature.flatten(component)}

    def set(self, name, value):
        self._ctx.set(self._values[name], self._port(name).to_raw(value))

    def get(self, name):
        return self._port(name).to_int(self._ctx.get(self._values[name]))

    async def _edge(self):
        await self._ctx.tick(self._domain.name)

    async def settle(self):
        pass  # Amaranth testbenches see settled values after every ``ctx.set``.

    def _set_reset(self, value):
        self._ctx.set(self._domain.rst, value)


class CocotbBench(Bench):
    """A :class:`Bench` over a cocotb ``dut`` handle (Verilator), with a free-running clock on ``clk``."""

    def __init__(self, dut, ports: dict[str, PortInfo]):
        super().__init__(ports)
        self._dut = dut
        self._handles = {name: getattr(dut, info.verilog_name) for name, info in ports.items()}

    def set(self, name, value):
        self._handles[name].value = self._port(name).to_raw(value)

    def get(self, name):
        return self._port(name).to_int(int(self._handles[name].value))

    async def _edge(self):
        from cocotb.triggers import RisingEdge, Timer
        await RisingEdge(self._dut.clk)
        await Timer(1, unit="ps")

    async def tick(self, count: int = 1) -> None:
        # Long waits skip the per-cycle Python callbacks: the simulator runs free between the two triggers.
        from cocotb.triggers import Timer
        if count > 1:
            await Timer((count - 1) * CLOCK_PERIOD_NS, unit="ns")
        await self._edge()
        self.cycle += count

    async def settle(self):
        from cocotb.triggers import Timer
        await Timer(1, unit="ps")

    def _set_reset(self, value):
        self._dut.rst.value = value


def resolve_body(body):
    """Return ``(function, "module:qualname")`` for a testbench body given as either."""
    if callable(body):
        return body, f"{body.__module__}:{body.__qualname__}"
    import importlib
    module, _, name = body.partition(":")
    return getattr(importlib.import_module(module), name), body


class Agent:
    """A cycle-accurate participant in :meth:`Bench.run`: it drives inputs, then samples outputs, every cycle."""
    done = True

    def drive(self, bench: Bench) -> None:
        """Set this cycle's inputs."""

    def sample(self, bench: Bench) -> None:
        """Observe this cycle's settled outputs; a transfer seen here happens at the coming edge."""


class StreamRuleViolation(AssertionError):
    """A stream port broke a rule of ``amaranth.lib.stream``; the message names the port, the cycle and the rule."""


class StreamRules:
    """The rules of ``amaranth.lib.stream`` on one port, checked cycle by cycle with :meth:`check`: once ``valid`` is
    high it stays high until the transfer (``valid`` and ``ready``), and ``payload`` does not change meanwhile."""

    def __init__(self, port: str):
        self.port = port
        self._held = None  # the payload of an offer that was not taken last cycle

    def check(self, cycle: int, valid: int, ready: int, payload) -> None:
        """This cycle's settled ``valid``, ``ready`` and ``payload`` (None when ``valid`` is low); raises
        :class:`StreamRuleViolation` when the port breaks a rule."""
        if self._held is not None:
            if not valid:
                raise StreamRuleViolation(f"{self.port}: cycle {cycle}: valid dropped before its transfer (rule: "
                                          f"valid stays high until ready; the offer held payload {self._held:#x})")
            if payload != self._held:
                raise StreamRuleViolation(f"{self.port}: cycle {cycle}: payload changed from {self._held:#x} to "
                                          f"{payload:#x} while valid and not ready (rule: payload steady until the "
                                          f"transfer)")
        self._held = payload if valid and not ready else None


class StreamSource(Agent):
    """Drives ``items`` into an ``amaranth.lib.stream`` input port, with seeded random valid gaps.

    ``gap_probability`` is the chance that ``valid`` stays low in a cycle where an item is waiting. While ``valid`` is
    high the payload is held until the transfer, as the stream contract requires (and :class:`StreamRules` checks).
    ``gap_cycles`` counts the cycles an item waited with ``valid`` low, ``blocked_cycles`` those ``valid`` was high
    and ``ready`` low.
    """

    def __init__(self, port: str, items, *, rng: random.Random, gap_probability: float = 0.0):
        self.port, self.items, self.rng, self.gap_probability = port, list(items), rng, gap_probability
        self.sent = 0
        self.transfer_cycles = []
        self.gap_cycles = self.blocked_cycles = 0
        self.rules = StreamRules(port)
        self._valid = False

    @property
    def done(self):
        return self.sent == len(self.items)

    def drive(self, bench):
        if not self._valid and not self.done:
            self._valid = self.rng.random() >= self.gap_probability
        bench.set(f"{self.port}.valid", int(self._valid))
        if self._valid:
            bench.set(f"{self.port}.payload", self.items[self.sent])

    def sample(self, bench):
        ready = bool(self._valid and bench.get(f"{self.port}.ready"))
        self.rules.check(bench.cycle, self._valid, ready, self.items[self.sent] if self._valid else None)
        if ready:
            self.transfer_cycles.append(bench.cycle)
            self.sent += 1
            self._valid = False
        elif self._valid:
            self.blocked_cycles += 1
        elif not self.done:
            self.gap_cycles += 1

    def __repr__(self):
        return f"StreamSource({self.port!r}, sent {self.sent} of {len(self.items)})"


class StreamSink(Agent):
    """Collects ``count`` payloads from an ``amaranth.lib.stream`` output port, with seeded random back-pressure.

    ``stall_probability`` is the chance that ``ready`` is low in a given cycle. The design's ``valid`` and
    ``payload`` are checked against the stream rules (:class:`StreamRules`); ``stall_cycles`` counts the cycles an
    offer waited (``valid`` and not ``ready``).
    """

    def __init__(self, port: str, count: int, *, rng: random.Random, stall_probability: float = 0.0):
        self.port, self.count, self.rng, self.stall_probability = port, count, rng, stall_probability
        self.items = []
        self.transfer_cycles = []
        self.stall_cycles = 0
        self.rules = StreamRules(port)
        self._ready = False

    @property
    def done(self):
        return len(self.items) == self.count

    def drive(self, bench):
        self._ready = self.rng.random() >= self.stall_probability
        bench.set(f"{self.port}.ready", int(self._ready))

    def sample(self, bench):
        valid = bench.get(f"{self.port}.valid")
        payload = bench.get(f"{self.port}.payload") if valid else None
        self.rules.check(bench.cycle, valid, self._ready, payload)
        if valid and self._ready:
            if self.done:
                raise AssertionError(f"{self.port}: unexpected extra item {payload} after the {self.count} expected")
            self.items.append(payload)
            self.transfer_cycles.append(bench.cycle)
        elif valid:
            self.stall_cycles += 1

    def __repr__(self):
        return f"StreamSink({self.port!r}, got {len(self.items)} of {self.count})"


class StreamMonitor(Agent):
    """Watches a stream port that other agents or the design drive: checks the stream rules and counts its
    ``transfers`` and ``stall_cycles`` (``valid`` and not ``ready``). A port without ``ready`` (``always_ready``)
    takes every offer."""

    def __init__(self, port: str):
        self.port = port
        self.transfers = self.stall_cycles = 0
        self.rules = StreamRules(port)

    def sample(self, bench):
        valid = bench.get(f"{self.port}.valid")
        ready = bench.get(f"{self.port}.ready") if f"{self.port}.ready" in bench.ports else 1
        self.rules.check(bench.cycle, valid, ready, bench.get(f"{self.port}.payload") if valid else None)
        if valid and ready:
            self.transfers += 1
        elif valid:
            self.stall_cycles += 1

    def __repr__(self):
        return f"StreamMonitor({self.port!r}, {self.transfers} transfers)"
